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
from typing import Literal

from tqdm import tqdm

from tvpower.cli import configure_logging, run_cli
from tvpower.errors import UsageError
from tvpower.intents import format_instant
from tvpower.sim import load_scenario, simulate
from tvpower.sim.tables import check_names, summarize, write_tables

PROG = "python -m tvpower.sim"
_PROGRESS_FROM = 3


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.format is not None and args.out is None:
        parser.error("--format: there are no tables to write without --out")
    return run_cli(PROG, lambda: _run(args.scenarios, args.out, args.format or "csv"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, allow_abbrev=False)
    parser.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO")
    parser.add_argument(
        "--out",
        type=_directory,
        help="write the summary and each scenario's received, power and violations "
        "tables into this directory",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "parquet"],
        help="file format of the tables written by --out (default: csv)",
    )
    return parser


def _directory(text: str) -> Path:
    if not text:
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    return Path(text)


def _run(
    paths: list[Path], out: Path | None, file_format: Literal["csv", "parquet"]
) -> int:
    configure_logging(level=logging.WARNING)
    scenarios = [load_scenario(path) for path in paths]  # all checked first
    if out is not None:
        _check_out(out, [s.name for s in scenarios])
    # A progress bar on a terminal when there are many; never in a pipe.
    quiet = len(paths) < _PROGRESS_FROM or not sys.stderr.isatty()
    results = [
        asyncio.run(simulate(scenario))
        for scenario in tqdm(
            scenarios, desc="scenarios", unit="scenario", disable=quiet
        )
    ]
    print(summarize(results).to_string(index=False))
    for result in results:
        times = result.violations["at"].map(format_instant)
        for v, at in zip(result.violations.itertuples(), times, strict=True):
            client = v.client_id if isinstance(v.client_id, str) else "-"
            print(f"{result.scenario}: {v.check} {client} {at}: {v.detail}")
    if out is not None:
        try:
            write_tables(results, out, file_format)
        except OSError as error:
            where = error.filename or out
            raise UsageError(
                f"--out: cannot write {where}: {error.strerror or error}"
            ) from error
    return 0 if all(r.passed for r in results) else 1


def _check_out(out: Path, names: list[str]) -> None:
    """Refuse, before any run, an --out the tables could not be written to."""
    try:
        check_names(names)
    except ValueError as error:
        raise UsageError(f"--out: {error}") from error
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out: cannot make {out}: {error.strerror}") from error
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out: cannot write into {out}")


if __name__ == "__main__":
    sys.exit(main())
