"""Clocks the publisher runs on: the wall clock, or one started at a chosen instant."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ShiftedClock", "SteppedClock", "SystemClock"]

# Long sleeps are cut into pieces of at most this much, so that a wall clock
# that jumps (NTP, a suspended VM) is noticed within that time.
_MAX_SLEEP_SECONDS = 60.0


class Clock(Protocol):
    """What the publisher needs of time: read it, and wait for an instant."""

    def now(self) -> datetime:
        """The current instant, time-zone aware."""
        ...

    async def sleep_until(self, instant: datetime) -> None:
        """Return at ``instant`` or soon after; possibly earlier after a jump."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, instant: datetime) -> None:
        await _sleep_towards(self, instant)


class ShiftedClock:
    """A clock that reads ``start`` when created and runs at normal speed.

    It replays a past (or future) schedule: the publisher behaves as if the
    wall clock said ``start`` when it began.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the start of a clock needs a time zone")
        self._start = start.astimezone(UTC)
        self._began = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._began)

    async def sleep_until(self, instant: datetime) -> None:
        await _sleep_towards(self, instant)


async def _sleep_towards(clock: Clock, instant: datetime) -> None:
    seconds = (instant - clock.now()).total_seconds()
    await asyncio.sleep(min(max(seconds, 0.0), _MAX_SLEEP_SECONDS))


class SteppedClock:
    """A clock that moves only when told to: for tests and simulations.

    ``sleep_until`` returns once :meth:`advance` has moved the clock to the
    instant or past it, however little real time that took.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the start of a clock needs a time zone")
        self._now = start.astimezone(UTC)
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def advance(self, instant: datetime) -> None:
        """Move the clock forward to ``instant`` and wake the sleepers due."""
        if instant < self._now:
            raise ValueError("a clock does not go back")
        async with self._moved:
            self._now = instant.astimezone(UTC)
            self._moved.notify_all()

    async def sleep_until(self, instant: datetime) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= instant)
