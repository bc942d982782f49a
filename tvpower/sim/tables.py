"""The tables of simulation runs: a summary, and files an analyst can open.

Instants in CSV are UTC with ``Z``, as everywhere else in tvpower, in
whole seconds as the publisher stamps them, unless a scenario put some
between seconds: then every instant of that table shows its microseconds.
Parquet keeps them as UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from tvpower.sim import SimResult

__all__ = ["CSV_TIME", "TABLES", "check_names", "summarize", "write_tables"]

CSV_TIME = "%Y-%m-%dT%H:%M:%SZ"
_CSV_TIME_FINE = "%Y-%m-%dT%H:%M:%S.%fZ"
TABLES = ("received", "power", "violations")
FORMATS = ("csv", "parquet")


def check_names(names: Sequence[str]) -> None:
    """Refuse two runs of one name: their tables would overwrite each other."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"two scenarios named {twice[0]}: their tables would overwrite each other"
        )


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
    if file_format not in FORMATS:
        raise ValueError(f"file_format: expected csv or parquet, got {file_format!r}")
    check_names([r.scenario for r in results])
    if not str(out):
        raise ValueError("out: expected a directory, got an empty path")
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
            frame.to_csv(path, index=False, date_format=_csv_time(frame))
        written.append(path)
    return written


def _csv_time(frame: pd.DataFrame) -> str:
    """Whole seconds, unless some instant of ``frame`` lies between them."""
    for _, column in frame.select_dtypes("datetimetz").items():
        if (column.dropna().dt.microsecond != 0).any():
            return _CSV_TIME_FINE
    return CSV_TIME
