"""The driver: the real publisher and broker on a stepped clock, with a fleet.

The clock moves from one interesting instant to the next: the publisher's
next wake, an action of the scenario, a client's grace deadline, an
expectation, the end. Before each step the run waits until it is quiet:
the publisher sleeps on the clock, connected, and every publish the broker
acknowledged has reached the fleet subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from tvpower.broker import EmbeddedBroker
from tvpower.cli import JsonFormatter
from tvpower.clock import SteppedClock
from tvpower.errors import ScheduleError
from tvpower.mqtt import MqttPublisher, parse_broker_url
from tvpower.publisher import IntentSink, Publisher, PublisherOptions
from tvpower.schedule import Schedule, load_schedule
from tvpower.sim.fleet import Fleet, FleetSubscriber, Receipt, SimClient, fetch_retained
from tvpower.sim.scenario import (
    EVENT_ACTIONS,
    Action,
    Scenario,
    edited,
    with_absolute_calendars,
)
from tvpower.watch import reload_schedule

__all__ = ["Recording", "Violation", "record"]

# Steps of one run: a ten-hour day with refreshes every five minutes takes
# a few hundred.
_MAX_STEPS = 20_000
# Real seconds of one run: the week-long fleet takes under a minute, two on
# a busy machine; a run that needs far more is stuck, not slow, and ends
# with what it has.
_BUDGET_SECONDS = 900.0
# Real seconds to wait for quiet: a restarted broker costs the publisher its
# production backoff (1 s, then 2 s) before it is back.
_SETTLE_SECONDS = 20.0
_SETTLE_POLL_SECONDS = 0.002
_STOP_SECONDS = 10.0
_PUBLISHER_LOGGER = "tvpower.publisher"

#: One failed check: its name, the client (if one), the instant, what failed.
Violation = tuple[str, str | None, datetime, str]


@dataclass(frozen=True)
class Reconnect:
    """A client reconnected or joined at ``at``; how many topics it learned."""

    at: datetime
    client_id: str
    kind: str
    learned: int


@dataclass
class Recording:
    """Everything a run produced, for verification."""

    scenario: Scenario
    versions: list[tuple[datetime, Schedule]]
    clients: dict[str, SimClient]
    receipts: list[Receipt]
    reconnects: list[Reconnect]
    log_lines: list[str]
    problems: list[Violation] = field(default_factory=list)


class RecordingClock(SteppedClock):
    """A stepped clock that knows the instants its sleepers wait for."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.waiting: list[datetime] = []
        self.sleeps = 0

    async def sleep_until(self, instant: datetime) -> None:
        self.waiting.append(instant)
        self.sleeps += 1
        try:
            await super().sleep_until(instant)
        finally:
            self.waiting.remove(instant)

    def move_quietly(self, instant: datetime) -> None:
        """Move to ``instant`` without waking the sleepers due at it yet."""
        if instant < self._now:
            raise ValueError("a clock does not go back")
        self._now = instant.astimezone(UTC)

    def next_wake(self) -> datetime | None:
        return min((w for w in self.waiting if w > self.now()), default=None)


class PublishCapture(logging.Handler):
    """The publisher's publish records: as JSON lines, and what was acknowledged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        # Copies, not keys: a publisher restarted at the same instant publishes
        # the same (topic, intent_id, issued_at) again, and both are in flight.
        self.acknowledged: Counter[tuple[str, str, str]] = Counter()
        # The keys of which some acknowledged copy may not have arrived yet.
        self.pending: set[tuple[str, str, str]] = set()
        self._json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() != "publish":
            return
        self.lines.append(self._json.format(record))
        fields: dict[str, Any] = getattr(record, "fields", {})
        if fields.get("outcome") == "acknowledged":
            key = (fields["topic"], fields["intent_id"], fields["issued_at"])
            self.acknowledged[key] += 1
            self.pending.add(key)


class Simulation:
    """One run of one scenario."""

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.clock = RecordingClock(scenario.start)
        self.capture = PublishCapture()
        clients = {
            c.id: SimClient(
                c.id,
                c.group_id,
                present=c.id not in scenario.joining,
                since=None if c.id in scenario.joining else scenario.start,
            )
            for c in scenario.schedule.clients.values()
        }
        self.fleet = Fleet(clients, self.clock, on_expiry=scenario.on_expiry)
        self.subscriber = FleetSubscriber(self.fleet)
        # edited() copies: the scenario's own document is never changed.
        self.document: dict[str, Any] = dict(scenario.document)
        self.versions: list[tuple[datetime, Schedule]] = [
            (scenario.start, scenario.schedule)
        ]
        self.reconnects: list[Reconnect] = []
        self.problems: list[Violation] = []
        self.broker = EmbeddedBroker("127.0.0.1", 0, shutdown_timeout=2.0)
        self.sink: MqttPublisher | None = None
        self.publisher: Publisher | None = None
        self._serving: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._restarts = 0
        self._edits = 0

    async def run(self) -> Recording:
        await self.broker.start()
        try:
            await self.subscriber.start(self.broker.port)
            await self._start_publisher()
            await self._steps()
        finally:
            await self._stop_publisher()
            await self.subscriber.stop()
            await self.broker.stop()
        for client in self.fleet.clients.values():
            client.finish(self.scenario.end)
        return Recording(
            self.scenario,
            self.versions,
            self.fleet.clients,
            self.fleet.receipts,
            self.reconnects,
            self.capture.lines,
            self.problems,
        )

    async def _steps(self) -> None:
        actions = self.scenario.in_order
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _BUDGET_SECONDS
        for _step in range(_MAX_STEPS):
            while actions and actions[0].at <= self.clock.now():
                edits = _edits_leading(actions, actions[0].at)
                if edits:
                    del actions[: len(edits)]
                    await self._edit(edits)
                else:
                    await self._apply(actions.pop(0))
            self.fleet.tick()
            if self.clock.now() >= self.scenario.end:
                return
            if loop.time() > deadline:
                detail = f"not done within {_BUDGET_SECONDS:g} s of real time"
                self._problem("harness", None, detail)
                return
            instant = self._next_instant(actions)
            wake = self.clock.next_wake()
            since = self.clock.sleeps if wake is not None and wake <= instant else None
            # The schedule in force at an instant is the edited one: its
            # edits come before the publisher acts on the instant.
            edits = _edits_leading(actions, instant)
            if edits:
                self.clock.move_quietly(instant)
                del actions[: len(edits)]
                await self._edit(edits)
            await self.clock.advance(instant)
            await self._settle(since)
        self._problem("harness", None, f"more than {_MAX_STEPS} steps")

    def _next_instant(self, actions: list[Action]) -> datetime:
        now = self.clock.now()
        candidates = [
            self.scenario.end,
            self.clock.next_wake(),
            self.fleet.next_deadline(),
        ]
        candidates += [a.at for a in actions]
        for expectation in self.scenario.expectations:
            candidates.append(expectation.at)
            candidates += list(expectation.no_off_between or ())
        return min(
            c for c in candidates if c is not None and now < c <= self.scenario.end
        )

    async def _apply(self, action: Action) -> None:
        if action.kind == "disconnect":
            self.fleet.clients[action.target].connected = False
        elif action.kind in ("reconnect", "join"):
            await self._reconnect(action)
        elif action.kind == "restart" and action.target == "publisher":
            since = self.clock.sleeps
            await self._stop_publisher()
            await self._start_publisher()
            await self._settle(since)
        elif action.kind == "restart":
            await self._restart_broker()
        elif action.kind == "stop":
            await self._stop_publisher()
            await self._settle(None)
        elif action.kind == "start":
            await self._start_publisher()
        else:
            await self._edit([action])

    async def _reconnect(self, action: Action) -> None:
        client = self.fleet.clients[action.target]
        if action.kind == "join":
            client.join(self.clock.now())
        client.connected = True
        try:
            learned = await fetch_retained(
                self.broker.port,
                self.fleet,
                client,
                group_topics=self.scenario.group_topics,
            )
        except aiomqtt.MqttError as error:
            # The broker failed the client: the run says so and goes on.
            detail = f"{action.kind} failed at the broker: {error}"
            self._problem("harness", client.client_id, detail)
            learned = 0
        self.reconnects.append(
            Reconnect(self.clock.now(), client.client_id, action.kind, learned)
        )

    async def _restart_broker(self) -> None:
        since = self.clock.sleeps
        port = self.broker.port
        await self.subscriber.stop()
        await self.broker.stop()
        self.broker = EmbeddedBroker("127.0.0.1", port, shutdown_timeout=2.0)
        await self.broker.start()
        if self.broker.moved_from is not None:
            self._problem("harness", None, f"broker could not restart on port {port}")
        await self.subscriber.start(self.broker.port)
        await self._settle(since)

    async def _edit(self, edits: list[Action]) -> None:
        """Apply the edits of one instant as one new schedule version."""
        for action in edits:
            self.document = edited(self.document, action)
        what = ", ".join(f"{a.kind} {a.target}" for a in edits)
        self._edits += 1
        path = self.workdir / f"schedule-{self._edits}.yaml"
        absolute = with_absolute_calendars(
            self.document, self.scenario.schedule_path.parent
        )
        path.write_text(yaml.safe_dump(absolute, sort_keys=False))
        since = self.clock.sleeps
        if self.publisher is None:
            # Stopped: the edits are in force when the publisher starts again.
            try:
                self.versions.append((self.clock.now(), load_schedule(path)))
            except ScheduleError as error:
                self._problem("edit", None, f"{what}: {error}")
        elif reload_schedule(path, self.publisher):
            self.versions.append((self.clock.now(), self.publisher.schedule))
            await self._settle(since)
        else:
            self._problem("edit", None, f"{what}: rejected")

    async def _start_publisher(self) -> None:
        self._restarts += 1
        schedule = self.versions[-1][1]
        options = PublisherOptions(
            group_topics=self.scenario.group_topics,
            expiry=self.scenario.expiry_policy,
        )
        self.publisher = Publisher(schedule, self.clock, options=options)
        self._stop = asyncio.Event()
        client_id = f"sim-publisher-{self._restarts}"
        since = self.clock.sleeps
        self._serving = asyncio.create_task(
            self.publisher.serve(
                lambda: self._connect(client_id),
                self._stop,
                broker=self.broker.url,
                client_id=client_id,
            )
        )
        await self._settle(since)

    def _connect(self, client_id: str) -> AbstractAsyncContextManager[IntentSink]:
        address = parse_broker_url(f"mqtt://127.0.0.1:{self.broker.port}")
        self.sink = MqttPublisher(address, client_id=client_id, timeout=5.0)
        return self.sink

    async def _stop_publisher(self) -> None:
        serving, self._serving = self._serving, None
        if serving is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(serving, _STOP_SECONDS)
        except TimeoutError:
            self._problem("harness", None, "publisher did not stop in time")
        self.sink = None
        self.publisher = None

    async def _settle(self, since: int | None) -> None:
        """Wait until quiet (bounded); ``since``: a new sleep must have begun."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SETTLE_SECONDS
        while loop.time() < deadline:
            if self._quiet(since):
                return
            await asyncio.sleep(_SETTLE_POLL_SECONDS)
        self._problem("harness", None, f"no quiet within {_SETTLE_SECONDS:g} s")

    def _quiet(self, since: int | None) -> bool:
        if self._serving is None:  # the publisher is stopped
            return self.all_arrived()
        sink = self.sink
        return (
            sink is not None
            and sink.connected
            and self.clock.next_wake() is not None
            and (since is None or self.clock.sleeps > since)
            and self.all_arrived()
        )

    def all_arrived(self) -> bool:
        """Whether every acknowledged copy of a publish reached the fleet subscriber."""
        pending = self.capture.pending
        if pending:
            acknowledged, arrived = self.capture.acknowledged, self.fleet.arrived
            pending.difference_update(
                [key for key in pending if arrived[key] >= acknowledged[key]]
            )
        return not pending

    def _problem(self, check: str, client_id: str | None, detail: str) -> None:
        self.problems.append((check, client_id, self.clock.now(), detail))


def _edits_leading(actions: list[Action], instant: datetime) -> list[Action]:
    """The edits at ``instant`` that ``actions`` begins with."""
    return list(
        takewhile(lambda a: a.at == instant and a.kind in EVENT_ACTIONS, actions)
    )


async def record(scenario: Scenario) -> Recording:
    """Run ``scenario`` against a real broker and publisher; return what happened."""
    logger = logging.getLogger(_PUBLISHER_LOGGER)
    level, propagate = logger.level, logger.propagate
    # The embedded broker warns of every MQTT 5 probe it refuses and of
    # acknowledgements it no longer waits for after a restart; the checks
    # report what matters.
    broker_logger = logging.getLogger("amqtt")
    broker_level = broker_logger.level
    with tempfile.TemporaryDirectory(prefix="tvpower-sim-") as workdir:
        simulation = Simulation(scenario, Path(workdir))
        logger.addHandler(simulation.capture)
        logger.setLevel(logging.INFO)
        # The publish records are the run's data, not the caller's log.
        logger.propagate = False
        broker_logger.setLevel(logging.CRITICAL)
        try:
            return await simulation.run()
        finally:
            logger.removeHandler(simulation.capture)
            logger.setLevel(level)
            logger.propagate = propagate
            broker_logger.setLevel(broker_level)
