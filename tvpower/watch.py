"""Schedule edits while running: watch the schedule file and its calendars.

An edit is loaded and checked in full before it replaces the schedule in
force; a bad edit is logged and counted, and the last good schedule stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import watchfiles

from tvpower.engine import timeline_around
from tvpower.errors import ScheduleError
from tvpower.publisher import Publisher
from tvpower.schedule import Schedule, load_schedule

__all__ = ["reload_schedule", "watch_schedule"]

logger = logging.getLogger(__name__)

# Editors save in bursts (write, rename, chmod): wait this long for quiet.
_DEBOUNCE_MS = 300


def watched_files(path: Path, schedule: Schedule) -> set[str]:
    """The schedule file and every calendar file it names, resolved."""
    files = {path.resolve()}
    for group in schedule.groups.values():
        files.update(source.path.resolve() for source in group.calendars)
    return {str(f) for f in files}


def reload_schedule(path: Path, publisher: Publisher) -> bool:
    """Load ``path`` again; use it if it is good. Whether it was accepted.

    Good means it loads and the engine can compute every client's intent
    from it now: an edit that only fails later must not reach the publisher.
    """
    try:
        schedule = load_schedule(path)
        timeline_around(schedule, publisher.clock.now())
    except ScheduleError as exc:
        _reject(publisher, str(exc))
        return False
    except Exception as exc:
        # Not a known kind of bad input, so a bug of ours: still, the last
        # good schedule stays in force, and the log says what happened.
        _reject(publisher, f"{path}: cannot be used: {type(exc).__name__}: {exc}")
        return False
    publisher.metrics.schedule_loads.labels(outcome="accepted").inc()
    publisher.replace_schedule(schedule)
    logger.info("schedule reloaded", extra={"fields": {"schedule": str(path)}})
    return True


def _reject(publisher: Publisher, error: str) -> None:
    publisher.metrics.schedule_loads.labels(outcome="rejected").inc()
    fields = {"error": error, "in_force": str(publisher.schedule.path)}
    logger.error("schedule rejected", extra={"fields": fields})


async def watch_schedule(path: Path, publisher: Publisher, stop: asyncio.Event) -> None:
    """Reload the schedule whenever it or one of its calendars changes."""
    while not stop.is_set():
        try:
            await _watch_files(path, publisher, stop)
        except Exception as exc:
            # A vanished directory, say: keep watching once it is back.
            fields = {"error": f"{type(exc).__name__}: {exc}", "retry_in_seconds": 5}
            logger.error("schedule watch failed", extra={"fields": fields})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)


async def _watch_files(path: Path, publisher: Publisher, stop: asyncio.Event) -> None:
    """Watch until ``stop``, or until the schedule names other calendars."""
    files = watched_files(path, publisher.schedule)
    directories = sorted({str(Path(f).parent) for f in files})
    async for changes in watchfiles.awatch(
        *directories,
        stop_event=stop,
        debounce=_DEBOUNCE_MS,
        recursive=False,
    ):
        if any(name in files for _, name in changes):
            reload_schedule(path, publisher)
        if watched_files(path, publisher.schedule) != files:
            return
