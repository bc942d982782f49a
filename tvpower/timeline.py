"""``python -m tvpower.timeline``: each client's timeline as CSV, without a broker.

Three ways to run it; times are UTC with ``Z``:

- ``--schedule FILE --from INSTANT --to INSTANT``: what the engine decided.
  Every client's segments between the two instants, clipped to that range:
  ``client_id,group_id,start,end,desired_state,reason``.
- ``--from-log FILE`` (``-`` for stdin): what was published. Each client's
  intent timeline rebuilt from the publisher's JSON log (see
  :mod:`tvpower.audit`): ``client_id,group_id,start,end,desired_state,
  reason,intent_id``.
- ``--from-log FILE --schedule FILE``: where the two disagree, one CSV row
  per stretch (see :func:`tvpower.audit.compare`), a summary on stderr, and
  exit status 1 if there is any difference, 0 if none.

With ``--from-log``, ``--from`` and ``--to`` are optional and default to
the span of the log: its first and its last ``issued_at``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tvpower.audit import compare, read_publish_log, rebuild
from tvpower.cli import parse_instant, run_cli
from tvpower.engine import compute_timeline
from tvpower.errors import UsageError
from tvpower.intents import format_instant
from tvpower.schedule import Schedule, load_schedule

COLUMNS = ["client_id", "group_id", "start", "end", "desired_state", "reason"]
LOG_COLUMNS = [*COLUMNS, "intent_id"]

_UTC = ZoneInfo("UTC")
_STDIN = "<stdin>"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tvpower.timeline",
        description="Print every client's power segments between two instants as "
        "CSV; or, with --from-log, each client's intent timeline rebuilt from the "
        "publisher's JSON log, and with --schedule as well, where the two differ "
        "(exit status 1 if they do).",
        epilog="Instants: ISO 8601 with Z or an offset, or local wall time in the "
        "schedule's zone (UTC without --schedule), e.g. 2019-03-05T14:00.",
    )
    parser.add_argument("--schedule", metavar="FILE", help="schedule file (YAML)")
    parser.add_argument(
        "--from-log",
        metavar="FILE",
        help="the publisher's log in JSON lines (its stderr), - for stdin",
    )
    parser.add_argument(
        "--from",
        dest="start",
        metavar="INSTANT",
        help="required without --from-log; with it, default: the log's start",
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="INSTANT",
        help="required without --from-log; with it, default: the log's end",
    )
    parser.add_argument(
        "--tolerance",
        default="5",
        metavar="SECONDS",
        help="with --from-log and --schedule: ignore differences that last no "
        "longer than this, as publishes follow transitions a little later "
        "(default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("tvpower.timeline", lambda: _run(args, out or sys.stdout))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    if args.from_log is not None:
        return _audit(args, out)
    if args.schedule is None:
        raise UsageError("give --schedule, --from-log, or both")
    if args.start is None or args.end is None:
        raise UsageError("--from and --to are required without --from-log")
    return _print_segments(args, out)


def _print_segments(args: argparse.Namespace, out: TextIO) -> int:
    schedule = load_schedule(args.schedule)
    start = parse_instant(args.start, schedule.timezone, option="--from")
    end = parse_instant(args.end, schedule.timezone, option="--to")
    _check_order(start, end)
    timeline = compute_timeline(schedule, start, end)
    rows = timeline.client_segments(timeline.start, timeline.end)
    _write_csv(rows[COLUMNS], out)
    return 0


def _audit(args: argparse.Namespace, out: TextIO) -> int:
    """Rebuild the timeline from the log; compare it if there is a schedule."""
    tolerance = _tolerance(args.tolerance)
    schedule = load_schedule(args.schedule) if args.schedule else None
    zone = schedule.timezone if schedule is not None else _UTC
    start = _option_ns(args.start, zone, "--from")
    end = _option_ns(args.end, zone, "--to")
    if start is not None and end is not None:
        _check_order(_datetime(start), _datetime(end))
    records, source = _read_log(args.from_log)
    rebuilt = rebuild(records, start=start, end=end)
    if schedule is None:
        _write_csv(rebuilt[LOG_COLUMNS], out)
        return 0
    span = _audited_span(records, source, start, end)
    return _print_differences(rebuilt, schedule, span, tolerance, out)


def _print_differences(
    rebuilt: pd.DataFrame,
    schedule: Schedule,
    span: tuple[int, int],
    tolerance: float,
    out: TextIO,
) -> int:
    """Compare with the engine over ``span``: 1 if there are differences."""
    timeline = compute_timeline(schedule, _datetime(span[0]), _datetime(span[1]))
    expected = timeline.client_segments(*span)
    differences = compare(rebuilt, expected, tolerance_seconds=tolerance, span=span)
    _write_csv(differences, out)
    print(_summary(len(differences), span), file=sys.stderr)
    return 1 if len(differences) else 0


def _read_log(path: str) -> tuple[pd.DataFrame, str]:
    """The publish records of the log at ``path``, and the name errors use."""
    source = _STDIN if path == "-" else path
    try:
        if path == "-":
            records = read_publish_log(sys.stdin, source=source)
        else:
            with open(path, encoding="utf-8", errors="replace") as lines:
                records = read_publish_log(lines, source=source)
    except OSError as exc:
        raise UsageError(f"--from-log: cannot read {path}: {exc.strerror}") from None
    if records.empty:
        raise UsageError(
            f"{source}: no publish records (the publisher logs them as JSON "
            "lines when stderr is not a terminal, or with --log-format json)"
        )
    return records, source


def _audited_span(
    records: pd.DataFrame, source: str, start: int | None, end: int | None
) -> tuple[int, int]:
    """``--from`` and ``--to``, each defaulting to that end of the log."""
    issued = records["issued_at"]
    lo = start if start is not None else int(issued.min())
    hi = end if end is not None else int(issued.max())
    if hi <= lo:
        raise UsageError(
            f"{source}: nothing to compare from {format_instant(_datetime(lo))} "
            f"to {format_instant(_datetime(hi))}: give --from and --to"
        )
    return lo, hi


def _summary(count: int, span: tuple[int, int]) -> str:
    what = "no differences" if count == 0 else f"{count} difference"
    what += "s" if count > 1 else ""
    first, last = (format_instant(_datetime(ns)) for ns in span)
    return f"{what} from {first} to {last}"


def _tolerance(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise UsageError(
            f"--tolerance: expected a number of seconds >= 0, got {text!r}"
        )
    return seconds


def _option_ns(text: str | None, zone: ZoneInfo, option: str) -> int | None:
    if text is None:
        return None
    instant = parse_instant(text, zone, option=option)
    return int(pd.Timestamp(instant).as_unit("ns").value)


def _check_order(start: datetime, end: datetime) -> None:
    # In UTC: datetimes sharing one ZoneInfo compare by wall time.
    if end.astimezone(UTC) <= start.astimezone(UTC):
        raise UsageError(
            f"--to must be after --from, got --from {format_instant(start)}"
            f" and --to {format_instant(end)}"
        )


def _datetime(ns: int) -> datetime:
    return pd.Timestamp(ns, tz="UTC").to_pydatetime()


def _write_csv(rows: pd.DataFrame, out: TextIO) -> None:
    """``rows`` as CSV, ``start`` and ``end`` as UTC instants with ``Z``."""
    rows = rows.copy()
    for column in ("start", "end"):
        ns = rows[column].to_numpy(dtype=np.int64)
        rows[column] = pd.Series(ns.astype("datetime64[ns]"), index=rows.index)
        rows[column] = rows[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows.to_csv(out, index=False, lineterminator="\n")


if __name__ == "__main__":
    sys.exit(main())
