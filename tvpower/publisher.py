"""The publisher: keeps every client's retained intent right as time passes.

It is level-triggered. Each pass computes the intent every client should
have now, compares it with what the broker last acknowledged, and publishes
only the differences and the refreshes that are due; then it sleeps until
the next transition or refresh. On every (re)connect what was acknowledged
is forgotten, so every client's intent is published again: the broker may
have lost its retained store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tvpower.clock import Clock
from tvpower.engine import Timeline, timeline_around
from tvpower.errors import BrokerError
from tvpower.intents import Intent, encode, intents_from
from tvpower.schedule import Schedule

__all__ = ["IntentSink", "Publisher", "intent_topic"]

logger = logging.getLogger(__name__)

DEFAULT_TOPIC_PREFIX = "infoscreen"
# Publishes in flight at once: enough to keep a broker busy, few enough not
# to flood a small one.
_MAX_IN_FLIGHT = 256
_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


class IntentSink(Protocol):
    """The one seam between the publisher and an MQTT connection."""

    @property
    def protocol(self) -> str:
        """``"5"`` or ``"3.1.1"``: the MQTT version the broker accepted."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the connection is still up."""
        ...

    async def publish(
        self, topic: str, payload: bytes, *, message_expiry_seconds: int | None
    ) -> None:
        """Publish retained at QoS 1; return on PUBACK, raise BrokerError if not."""
        ...


@dataclass(frozen=True)
class _Delivered:
    intent_id: str
    issued_at: datetime


def intent_topic(prefix: str, client_id: str) -> str:
    """The per-client intent topic."""
    return f"{prefix}/{client_id}/power/intent"


class Publisher:
    """Publishes the intents of ``schedule`` on the time of ``clock``."""

    def __init__(
        self,
        schedule: Schedule,
        clock: Clock,
        *,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        around: Callable[[Schedule, datetime], Timeline] = timeline_around,
    ) -> None:
        self.schedule = schedule
        self.clock = clock
        self.topic_prefix = topic_prefix
        self._around = around
        self._timeline: Timeline | None = None
        self._acknowledged: dict[str, _Delivered] = {}
        self._failures = 0

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.schedule.ttl_seconds)

    def desired(self, now: datetime) -> tuple[dict[str, Intent], datetime]:
        """Every client's intent at ``now``, and when the next one changes."""
        current = self._current(now)
        intents = intents_from(current)
        next_change = int(current["end"].min()) if len(current) else None
        if next_change is None:
            return intents, now + self.ttl
        return intents, _from_ns(next_change)

    def forget_acknowledged(self) -> None:
        """After a (re)connect: publish every client's intent again."""
        self._acknowledged.clear()

    async def run(self, sink: IntentSink, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set or the connection is lost."""
        while not stop.is_set():
            wake = await self.reconcile(sink)
            if not sink.connected:
                raise BrokerError("connection to the broker lost")
            await _sleep_until(self.clock, wake, stop)

    async def reconcile(self, sink: IntentSink) -> datetime:
        """One pass: publish what differs or is due; return when to wake."""
        now = self.clock.now()
        intents, next_change = self.desired(now)
        due = [c for c, intent in intents.items() if self._is_due(intent, now)]
        results = await self._publish_all(sink, ((c, intents[c]) for c in due), now)
        self._failures = 0 if all(results) else self._failures + 1
        return min(next_change, self._next_refresh(now), self._next_retry(now))

    def _current(self, now: datetime) -> Any:
        instant = int(now.timestamp()) * 1_000_000_000
        timeline = self._timeline
        if timeline is not None and timeline.start <= instant < timeline.end:
            current = timeline.at(instant)
            on = current["desired_state"] == "on"
            if (current["start_known"] & (current["end_known"] | ~on)).all():
                return current
        self._timeline = self._around(self.schedule, now)
        return self._timeline.at(instant)

    def _is_due(self, intent: Intent, now: datetime) -> bool:
        delivered = self._acknowledged.get(intent.client_id or "")
        if delivered is None or delivered.intent_id != intent.intent_id:
            return True
        return now >= delivered.issued_at + self.ttl / 2

    def _next_refresh(self, now: datetime) -> datetime:
        issued = [d.issued_at for d in self._acknowledged.values()]
        return min(issued) + self.ttl / 2 if issued else now + self.ttl / 2

    def _next_retry(self, now: datetime) -> datetime:
        if not self._failures:
            return now + self.ttl
        step = _RETRY_SECONDS[min(self._failures, len(_RETRY_SECONDS)) - 1]
        return now + timedelta(seconds=step)

    async def _publish_all(
        self, sink: IntentSink, due: Iterable[tuple[str, Intent]], now: datetime
    ) -> list[bool]:
        slots = asyncio.Semaphore(_MAX_IN_FLIGHT)

        async def one(client_id: str, intent: Intent) -> bool:
            async with slots:
                return await self._publish(sink, client_id, intent)

        return list(await asyncio.gather(*(one(c, i) for c, i in due)))

    async def _publish(self, sink: IntentSink, client_id: str, intent: Intent) -> bool:
        issued_at = self.clock.now()
        payload = intent.payload(issued_at, self.schedule.ttl_seconds)
        topic = intent_topic(self.topic_prefix, client_id)
        began = time.monotonic()
        outcome, error = "acknowledged", None
        try:
            await sink.publish(
                topic,
                encode(payload),
                message_expiry_seconds=self.schedule.ttl_seconds,
            )
        except BrokerError as exc:
            outcome, error = "failed", str(exc)
        latency = time.monotonic() - began
        _log_attempt(topic, payload, outcome, error, latency, self._failures + 1)
        if outcome == "acknowledged":
            delivered = _Delivered(payload["intent_id"], issued_at)
            self._acknowledged[client_id] = delivered
        return outcome == "acknowledged"


def _log_attempt(
    topic: str,
    payload: dict[str, Any],
    outcome: str,
    error: str | None,
    latency: float,
    attempt: int,
) -> None:
    """The one record of a publish attempt; the entry point chooses its format."""
    fields = {
        "client_id": payload["target"].get("client_id"),
        "group_id": payload["target"].get("group_id"),
        "topic": topic,
        "intent_id": payload["intent_id"],
        "desired_state": payload["power"]["desired_state"],
        "reason": payload["power"]["reason"],
        "window": payload["event_window"],
        "issued_at": payload["issued_at"],
        "expires_at": payload["expires_at"],
        "outcome": outcome,
        "attempt": attempt,
        "latency_ms": round(latency * 1000, 3),
    }
    if error is not None:
        fields["error"] = error
    level = logging.INFO if outcome == "acknowledged" else logging.WARNING
    logger.log(level, "publish", extra={"fields": fields})


async def _sleep_until(clock: Clock, wake: datetime, stop: asyncio.Event) -> None:
    """Sleep until ``wake`` on ``clock``, or until ``stop`` is set."""
    while not stop.is_set() and clock.now() < wake:
        stopped = asyncio.ensure_future(stop.wait())
        sleeper = asyncio.ensure_future(clock.sleep_until(wake))
        await asyncio.wait({stopped, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, sleeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1_000_000_000, tz=UTC)
