"""The publisher: keeps every client's retained intent right as time passes.

It is level-triggered. Each pass computes the intent every topic should
hold now, compares it with what the broker last acknowledged, and publishes
only the differences and the refreshes that are due; then it sleeps until
the next transition, refresh or retry, or until the schedule changes. On
every (re)connect what was acknowledged is forgotten, so every intent is
published again: the broker may have lost its retained store.

A publish counts only when the broker acknowledged it (PUBACK). A failed one
is retried with backoff on a later pass, with whatever intent is due then:
an intent superseded before it could be sent is never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import pandas as pd

from tvpower.clock import Clock
from tvpower.engine import Timeline, timeline_around
from tvpower.errors import BrokerError, UsageError
from tvpower.intents import Intent, encode, intents_from
from tvpower.metrics import Metrics
from tvpower.schedule import Schedule

__all__ = [
    "ExpiryPolicy",
    "IntentSink",
    "Publisher",
    "PublisherOptions",
    "Selection",
    "group_topic",
    "intent_topic",
]

logger = logging.getLogger(__name__)

DEFAULT_TOPIC_PREFIX = "infoscreen"
NS = 1_000_000_000
# Backoff of failed publishes and of reconnects.
_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
# How long a stopping publisher waits for a session to end by itself.
_STOP_GRACE_SECONDS = 2.0

#: ``ttl``: every intent expires ``ttl_seconds`` after it is issued.
#: ``window``: an ``on`` intent stays valid at least to its window's end
#: plus grace, so an outage mid-event cannot switch TVs off.
ExpiryPolicy = Literal["ttl", "window"]


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

    @property
    def disconnected(self) -> asyncio.Event:
        """Set when the connection is lost, to wake a sleeping publisher."""
        ...

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes, int | None]]
    ) -> list[tuple[BrokerError | None, float]]:
        """Publish each (topic, payload, Message Expiry Interval) retained at QoS 1.

        Per message: the BrokerError that stopped it, or None once the broker
        acknowledged it (PUBACK), and the seconds it took.
        """
        ...


@dataclass(frozen=True)
class Selection:
    """The clients and groups a rollout is limited to; empty means all."""

    groups: frozenset[str] = frozenset()
    clients: frozenset[str] = frozenset()

    def includes_client(self, client_id: str, group_id: str | None) -> bool:
        if not self.groups and not self.clients:
            return True
        return client_id in self.clients or group_id in self.groups

    def includes_group(self, group_id: str) -> bool:
        if not self.groups and not self.clients:
            return True
        return group_id in self.groups

    def check(self, schedule: Schedule) -> None:
        """Refuse names the schedule does not know: a typo would publish nothing."""
        for option, names, known in (
            ("--only-groups", self.groups, schedule.groups),
            ("--only-clients", self.clients, schedule.clients),
        ):
            unknown = sorted(names - set(known))
            if unknown:
                raise UsageError(
                    f"{option}: not in {schedule.path}: {', '.join(unknown)}"
                )


@dataclass(frozen=True)
class PublisherOptions:
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    selection: Selection = field(default_factory=Selection)
    group_topics: bool = False
    expiry: ExpiryPolicy = "ttl"
    dry_run: bool = False


@dataclass(frozen=True)
class _Delivered:
    intent_id: str
    issued_at: datetime


def intent_topic(prefix: str, client_id: str) -> str:
    """The per-client intent topic."""
    return f"{prefix}/{client_id}/power/intent"


def group_topic(prefix: str, group_id: str) -> str:
    """The optional per-group intent topic."""
    return f"{prefix}/groups/{group_id}/power/intent"


class Publisher:
    """Publishes the intents of ``schedule`` on the time of ``clock``."""

    def __init__(
        self,
        schedule: Schedule,
        clock: Clock,
        *,
        options: PublisherOptions | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.options = options or PublisherOptions()
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.schedule = schedule
        self._timeline: Timeline | None = None
        self._widest: Timeline | None = None
        self._acknowledged: dict[str, _Delivered] = {}
        self._meaning: dict[str, str] = {}
        self._attempts: dict[str, int] = {}
        self._changed = asyncio.Event()
        self.metrics.watch_retained_age(self._retained_age)
        self._count_clients()

    @property
    def topic_prefix(self) -> str:
        return self.options.topic_prefix

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.schedule.ttl_seconds)

    def replace_schedule(self, schedule: Schedule) -> None:
        """Use ``schedule`` from now on; clients it does not affect get nothing."""
        self.schedule = schedule
        self._timeline = None
        self._count_clients()
        self._changed.set()

    def forget_acknowledged(self) -> None:
        """After a (re)connect: publish every intent again."""
        self._acknowledged.clear()

    def desired(self, now: datetime) -> tuple[dict[str, Intent], datetime]:
        """Every topic's intent at ``now``, and when the next one changes."""
        clients, groups = self._current(now)
        intents = {
            intent_topic(self.topic_prefix, c): intent
            for c, intent in intents_from(clients).items()
            if self.options.selection.includes_client(c, intent.group_id)
        }
        ends = [clients["end"].to_numpy()]
        if self.options.group_topics:
            for g, intent in intents_from(groups, groups=True).items():
                if self.options.selection.includes_group(g):
                    intents[group_topic(self.topic_prefix, g)] = intent
            ends.append(groups["end"].to_numpy())
        next_change = min((int(e.min()) for e in ends if len(e)), default=None)
        if next_change is None:
            return intents, now + self.ttl
        return intents, _from_ns(next_change)

    async def serve(
        self,
        connect: Callable[[], AbstractAsyncContextManager[IntentSink]],
        stop: asyncio.Event,
        *,
        broker: str,
        client_id: str,
    ) -> None:
        """Connect, publish, and reconnect with backoff whenever the link drops.

        ``connect`` makes a new connection each time; ``broker`` and
        ``client_id`` only name it in the log.
        """
        failures = 0
        while not stop.is_set():
            connected = asyncio.Event()
            session = asyncio.create_task(
                self._session(connect, stop, broker, client_id, connected)
            )
            try:
                await _until_done_or_stopped(session, stop)
                failures = 0
            except BrokerError as exc:
                # Only failed connection attempts in a row escalate: a link
                # lost hours after it came up retries at the first delay.
                failures = 1 if connected.is_set() else failures + 1
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS)) - 1]
                fields = {"error": str(exc), "retry_in_seconds": delay}
                logger.warning("broker unavailable", extra={"fields": fields})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _session(
        self,
        connect: Callable[[], AbstractAsyncContextManager[IntentSink]],
        stop: asyncio.Event,
        broker: str,
        client_id: str,
        connected: asyncio.Event,
    ) -> None:
        """One connection's life: connect, publish everything, keep it right.

        ``connected`` is set once the broker accepted the connection.
        """
        try:
            async with connect() as sink:
                connected.set()
                self.metrics.connected.set(1)
                fields = {
                    "broker": broker,
                    "protocol": sink.protocol,
                    "client_id": client_id,
                }
                logger.info("connected", extra={"fields": fields})
                self.forget_acknowledged()
                await self.run(sink, stop)
        finally:
            self.metrics.connected.set(0)

    async def run(self, sink: IntentSink | None, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set or the connection is lost.

        ``sink`` may be None only in a dry run.
        """
        lost = sink.disconnected if sink is not None else asyncio.Event()
        while not stop.is_set():
            self._changed.clear()
            wake = await self.reconcile(sink)
            _check_connected(sink)
            await _sleep_until(self.clock, wake, stop, self._changed, lost)
            _check_connected(sink)

    async def reconcile(self, sink: IntentSink | None) -> datetime:
        """One pass: publish what differs or is due; return when to wake."""
        now = self.clock.now()
        intents, next_change = self.desired(now)
        due = [(t, i) for t, i in intents.items() if self._is_due(t, i, now)]
        await self._publish_all(sink, due)
        return min(next_change, self._next_refresh(now), self._next_retry(now))

    def _current(self, now: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
        instant = int(now.timestamp()) * NS
        timeline = self._timeline
        if timeline is not None and timeline.start <= instant < timeline.end:
            clients, groups = timeline.at(instant), timeline.groups_at(instant)
            if timeline is self._widest or (_certain(clients) and _certain(groups)):
                return clients, groups
        timeline = self._timeline = timeline_around(self.schedule, now)
        clients, groups = timeline.at(instant), timeline.groups_at(instant)
        # timeline_around leaves a client uncertain only at its widest span.
        # Computing that again, while the instant stays inside it, learns
        # nothing more and costs years of occurrences on every reconcile.
        self._widest = None if _certain(clients) else timeline
        return clients, groups

    def _is_due(self, topic: str, intent: Intent, now: datetime) -> bool:
        delivered = self._acknowledged.get(topic)
        if delivered is None or delivered.intent_id != intent.intent_id:
            return True
        return now >= delivered.issued_at + self.ttl / 2

    def _next_refresh(self, now: datetime) -> datetime:
        # A topic whose publish just failed waits for its retry instead: its
        # refresh is already due, and would wake the loop at once, forever.
        issued = [
            d.issued_at
            for topic, d in self._acknowledged.items()
            if topic not in self._attempts
        ]
        return min(issued) + self.ttl / 2 if issued else now + self.ttl / 2

    def _next_retry(self, now: datetime) -> datetime:
        failures = max(self._attempts.values(), default=0)
        if not failures:
            return now + self.ttl
        step = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS)) - 1]
        return now + timedelta(seconds=step)

    async def _publish_all(
        self, sink: IntentSink | None, due: Iterable[tuple[str, Intent]]
    ) -> None:
        """Stamp every due intent now and publish them as one burst."""
        now = self.clock.now()
        stamped = []
        for topic, intent in due:
            payload = intent.payload(
                now, self.schedule.ttl_seconds, valid_until=self._valid_until(intent)
            )
            expires_at = datetime.fromisoformat(payload["expires_at"])
            if expires_at <= now:
                self._record(topic, intent, payload, "skipped_expired", None, 0.0)
                continue
            remaining = max(int((expires_at - now).total_seconds()), 1)
            stamped.append((topic, intent, payload, remaining))
        for (topic, intent, payload, _), (error, latency) in zip(
            stamped, await self._deliver(sink, stamped), strict=True
        ):
            if self.options.dry_run or sink is None:
                self._record(topic, intent, payload, "dry_run", None, 0.0)
            elif error is None:
                self._record(topic, intent, payload, "acknowledged", None, latency)
            else:
                self._record(topic, intent, payload, "failed", str(error), latency)

    async def _deliver(
        self, sink: IntentSink | None, stamped: list[tuple[str, Intent, Any, int]]
    ) -> list[tuple[BrokerError | None, float]]:
        if self.options.dry_run or sink is None:
            return [(None, 0.0)] * len(stamped)
        messages = [
            (topic, encode(payload), expiry) for topic, _, payload, expiry in stamped
        ]
        return await sink.publish_batch(messages)

    def _record(
        self,
        topic: str,
        intent: Intent,
        payload: dict[str, Any],
        outcome: str,
        error: str | None,
        latency: float,
    ) -> None:
        """Log the attempt, count it, and remember what the broker acknowledged."""
        attempt = self._attempts.get(topic, 0) + 1
        _log_attempt(topic, payload, outcome, error, latency, attempt)
        if outcome == "skipped_expired":
            self.metrics.skipped_expired.inc()
            return
        self.metrics.publishes.labels(outcome=outcome).inc()
        if outcome == "failed":
            self._attempts[topic] = attempt
            return
        self.metrics.publish_latency.observe(latency)
        issued_at = datetime.fromisoformat(payload["issued_at"])
        self._acknowledged[topic] = _Delivered(intent.intent_id, issued_at)
        self._attempts.pop(topic, None)
        self._count_transition(topic, intent)

    def _valid_until(self, intent: Intent) -> datetime | None:
        if self.options.expiry != "window" or intent.window is None:
            return None
        window_end = datetime.fromisoformat(intent.window[1])
        return window_end + timedelta(seconds=intent.grace_seconds)

    def _count_transition(self, topic: str, intent: Intent) -> None:
        previous = self._meaning.get(topic)
        if previous is not None and previous != intent.intent_id:
            self.metrics.transitions.labels(desired_state=intent.desired_state).inc()
        self._meaning[topic] = intent.intent_id

    def _count_clients(self) -> None:
        selection = self.options.selection
        known = [
            c
            for c in self.schedule.clients.values()
            if selection.includes_client(c.id, c.group_id)
        ]
        self.metrics.clients_known.set(len(known))

    def _retained_age(self) -> float:
        issued = [d.issued_at for d in self._acknowledged.values()]
        if not issued:
            return 0.0
        return (self.clock.now() - min(issued)).total_seconds()


async def _until_done_or_stopped(
    session: asyncio.Task[None], stop: asyncio.Event
) -> None:
    """Await ``session``; once ``stop`` is set, give it a moment, then cancel it.

    The run loop notices ``stop`` by itself, but a CONNECT to a broker that
    never answers would keep an operator's SIGTERM waiting for its timeout.
    """
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not session.done():
        done, _ = await asyncio.wait({session}, timeout=_STOP_GRACE_SECONDS)
        if not done:
            await cancel_task(session)
            return
    await session


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _check_connected(sink: IntentSink | None) -> None:
    if sink is not None and not sink.connected:
        raise BrokerError("connection to the broker lost")


def _certain(current: pd.DataFrame) -> bool:
    """Whether every segment at the instant lies inside the computed range."""
    on = current["desired_state"].to_numpy() == "on"
    end_known = current["end_known"].to_numpy() | ~on
    return bool((current["start_known"].to_numpy() & end_known).all())


def _log_attempt(
    topic: str,
    payload: dict[str, Any],
    outcome: str,
    error: str | None,
    latency: float,
    attempt: int,
) -> None:
    """The one record of a publish attempt; the entry point chooses its format."""
    level = (
        logging.WARNING if outcome in ("failed", "skipped_expired") else logging.INFO
    )
    if not logger.isEnabledFor(level):
        return
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
    logger.log(level, "publish", extra={"fields": fields})


async def _sleep_until(clock: Clock, wake: datetime, *events: asyncio.Event) -> None:
    """Sleep until ``wake`` on ``clock``, or until one of ``events`` is set."""
    while not any(e.is_set() for e in events) and clock.now() < wake:
        waits: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(e.wait()) for e in events
        }
        waits.add(asyncio.ensure_future(clock.sleep_until(wake)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS, tz=UTC)
