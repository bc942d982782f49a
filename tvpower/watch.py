"""Schedule edits while running: watch the schedule file and its calendars.

An edit is loaded and checked in full before it replaces the schedule in
force; a bad edit is logged and counted, and the last good schedule stays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import watchfiles

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
    """Load ``path`` again; use it if it is good. Whether it was accepted."""
    try:
        schedule = load_schedule(path)
    except ScheduleError as exc:
        publisher.metrics.schedule_loads.labels(outcome="rejected").inc()
        fields = {"error": str(exc), "in_force": str(publisher.schedule.path)}
        logger.error("schedule rejected", extra={"fields": fields})
        return False
    publisher.metrics.schedule_loads.labels(outcome="accepted").inc()
    publisher.replace_schedule(schedule)
    logger.info("schedule reloaded", extra={"fields": {"schedule": str(path)}})
    return True


async def watch_schedule(path: Path, publisher: Publisher, stop: asyncio.Event) -> None:
    """Reload the schedule whenever it or one of its calendars changes."""
    while not stop.is_set():
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
                break  # the calendars changed: watch the new set
