"""``python -m tvpower.timeline``: what the engine decided, as CSV, without a broker.

Prints every client's segments between two instants, clipped to that range:
``client_id,group_id,start,end,desired_state,reason``, times in UTC with ``Z``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from tvpower.cli import parse_instant, run_cli
from tvpower.engine import compute_timeline
from tvpower.errors import UsageError
from tvpower.intents import format_instant
from tvpower.schedule import load_schedule

COLUMNS = ["client_id", "group_id", "start", "end", "desired_state", "reason"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tvpower.timeline",
        description="Print every client's power segments between two instants as CSV.",
        epilog="Instants: ISO 8601 with Z or an offset, or local wall time in the "
        "schedule's zone (e.g. 2019-03-05T14:00).",
    )
    parser.add_argument("--schedule", required=True, help="schedule file (YAML)")
    parser.add_argument("--from", dest="start", required=True, metavar="INSTANT")
    parser.add_argument("--to", dest="end", required=True, metavar="INSTANT")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("tvpower.timeline", lambda: _print(args, out or sys.stdout))


def _print(args: argparse.Namespace, out: TextIO) -> int:
    schedule = load_schedule(args.schedule)
    start = parse_instant(args.start, schedule.timezone, option="--from")
    end = parse_instant(args.end, schedule.timezone, option="--to")
    if end <= start:
        raise UsageError(
            f"--to must be after --from, got --from {format_instant(start)}"
            f" and --to {format_instant(end)}"
        )
    timeline = compute_timeline(schedule, start, end)
    rows = timeline.client_segments(timeline.start, timeline.end)
    for column in ("start", "end"):
        rows[column] = (
            rows[column].astype("datetime64[ns]").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    rows[COLUMNS].to_csv(out, index=False, lineterminator="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
