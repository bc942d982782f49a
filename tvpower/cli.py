"""What the entry points share: log output, instants on the command line, errors.

Only entry points configure logging; library modules just log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tvpower.errors import TvpowerError, UsageError

__all__ = ["configure_logging", "parse_instant", "run_cli"]

LogFormat = Literal["auto", "json", "pretty"]

# The instants schedules may hold (the engine counts nanoseconds in 64 bits).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class PrettyFormatter(logging.Formatter):
    """``HH:MM:SS level event key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = getattr(record, "fields", {})
        details = " ".join(f"{k}={_pretty(v)}" for k, v in fields.items())
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()} {details}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


def configure_logging(
    log_format: LogFormat = "auto", level: int = logging.INFO
) -> None:
    """Log to stderr: pretty on a terminal, JSON lines otherwise."""
    if log_format == "auto":
        log_format = "pretty" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    formatter = PrettyFormatter() if log_format == "pretty" else JsonFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tvpower").setLevel(level)
    # amqtt warns about every refused MQTT 5 attempt of the version probe;
    # its errors still show.
    logging.getLogger("amqtt").setLevel(logging.ERROR)


def parse_instant(text: str, zone: ZoneInfo, *, option: str) -> datetime:
    """An instant given as ISO 8601 with ``Z``, an offset, or local time in ``zone``.

    Local times follow RFC 5545 on a DST change (``fold=0``): a time in the
    gap is moved forward by it, an ambiguous one is its first occurrence.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option}: expected an ISO 8601 instant such as 2019-03-05T17:59:50Z,"
            f" got {text!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone, fold=0)
    if not _EARLIEST <= value.astimezone(UTC) < _LATEST:
        raise UsageError(
            f"{option}: expected an instant from 1970 to 2199, got {text!r}"
        )
    return value.replace(microsecond=0)


def run_cli(prog: str, main: Callable[[], int]) -> int:
    """Run ``main``; a tvpower error becomes one line on stderr and status 2."""
    try:
        return main()
    except TvpowerError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _pretty(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
