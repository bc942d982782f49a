"""The tables of simulation runs: a summary, and files an analyst can open.

Instants in CSV are UTC with ``Z``, as everywhere else in tvpower (the
simulated clock moves in whole seconds); Parquet keeps them as UTC
timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from tvpower.sim import SimResult

__all__ = ["CSV_TIME", "TABLES", "summarize", "write_tables"]

CSV_TIME = "%Y-%m-%dT%H:%M:%SZ"
TABLES = ("received", "power", "violations")


def summarize(results: Sequence[SimResult]) -> pd.DataFrame:
    """One row per run: its name, whether it passed, its size and duration."""
    return pd.DataFrame(
        {
            "scenario": [r.scenario for r in results],
            "passed": [r.passed for r in results],
            "clients": [r.clients for r in results],
            "intents received": [len(r.received) for r in results],
            "violations": [len(r.violations) for r in results],
            "seconds": [round(r.seconds, 1) for r in results],
        }
    )


def write_tables(
    results: Sequence[SimResult],
    out: str | Path,
    file_format: Literal["csv", "parquet"] = "csv",
) -> list[Path]:
    """Write ``summary`` and each run's three tables into ``out``; the paths."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    frames = {"summary": summarize(results)}
    for result in results:
        for name in TABLES:
            frames[f"{result.scenario}-{name}"] = getattr(result, name)
    written = []
    for stem, frame in frames.items():
        path = directory / f"{stem}.{file_format}"
        if file_format == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, date_format=CSV_TIME)
        written.append(path)
    return written
