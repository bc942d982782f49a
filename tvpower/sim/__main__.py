"""python -m tvpower.sim SCENARIO...: run scenarios, print a summary.

Exit status 0 if every check of every scenario passed, 1 if one failed, 2
on bad input (one line naming the file, entry and field).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from tvpower.cli import configure_logging, run_cli
from tvpower.errors import UsageError
from tvpower.sim import SimResult, load_scenario, simulate

PROG = "python -m tvpower.sim"
_PROGRESS_FROM = 3


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    return run_cli(PROG, lambda: _run(args.scenarios, args.out, args.format))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO")
    parser.add_argument(
        "--out", type=Path, help="write the received, power and violations tables here"
    )
    parser.add_argument(
        "--format",
        choices=["csv", "parquet"],
        default="csv",
        help="file format of the tables (default: %(default)s)",
    )
    return parser


def _run(paths: list[Path], out: Path | None, file_format: str) -> int:
    configure_logging(level=logging.WARNING)
    names = [load_scenario(path).name for path in paths]  # all checked first
    if out is not None:
        _check_out(out, names)
    # A progress bar on a terminal when there are many; never in a pipe.
    quiet = len(paths) < _PROGRESS_FROM or not sys.stderr.isatty()
    results = [
        asyncio.run(simulate(path))
        for path in tqdm(paths, desc="scenarios", unit="scenario", disable=quiet)
    ]
    print(_summary(results).to_string(index=False))
    for result in results:
        for v in result.violations.itertuples():
            at = _utc_text(v.at)
            print(f"{result.scenario}: {v.check} {v.client_id} {at}: {v.detail}")
        if out is not None:
            _write(result, out, file_format)
    return 0 if all(r.passed for r in results) else 1


def _summary(results: list[SimResult]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scenario": [r.scenario for r in results],
            "clients": [r.clients for r in results],
            "intents received": [len(r.received) for r in results],
            "violations": [len(r.violations) for r in results],
            "seconds": [round(r.seconds, 1) for r in results],
        }
    )


def _check_out(out: Path, names: list[str]) -> None:
    """Refuse, before any run, an --out the tables could not be written to."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(
            f"--out: two scenarios named {twice[0]}: their tables would "
            "overwrite each other"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out: cannot make {out}: {error.strerror}") from error
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out: cannot write into {out}")


def _write(result: SimResult, out: Path, file_format: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("received", "power", "violations"):
        frame: pd.DataFrame = getattr(result, name)
        path = out / f"{result.scenario}-{name}.{file_format}"
        if file_format == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, date_format=_CSV_TIME)


# Instants in CSV as everywhere else in tvpower: UTC with Z (the
# simulated clock moves in whole seconds).
_CSV_TIME = "%Y-%m-%dT%H:%M:%SZ"


def _utc_text(instant: object) -> str:
    return pd.Timestamp(instant).tz_convert("UTC").strftime(_CSV_TIME)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
