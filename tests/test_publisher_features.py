"""Rollout options, schedule edits, expiry policy and metrics of the publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tvpower.broker import EmbeddedBroker
from tvpower.clock import SteppedClock
from tvpower.errors import BrokerError, UsageError
from tvpower.mqtt import MqttPublisher, parse_broker_url
from tvpower.publisher import Publisher, PublisherOptions, Selection
from tvpower.schedule import load_schedule
from tvpower.watch import reload_schedule, watch_schedule

from .watch import Watch, watching

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

SCHEDULE = """\
timezone: UTC
groups:
  lobby: {clients: [lobby-left, lobby-right]}
  hall: {clients: [hall-1]}
events:
  - {id: welcome, group: lobby, start: 2026-03-02T09:00Z, end: 2026-03-02T10:00Z}
  - {id: talk, group: hall, start: 2026-03-02T09:00Z, end: 2026-03-02T11:00Z}
"""


@pytest.fixture
def schedule_file(tmp_path: Path) -> Path:
    path = tmp_path / "office.yaml"
    path.write_text(SCHEDULE)
    return path


@contextlib.asynccontextmanager
async def running(
    broker: EmbeddedBroker, publisher: Publisher
) -> AsyncIterator[asyncio.Event]:
    """The publisher's run loop in the background, stopped at the end."""
    stop = asyncio.Event()
    address = parse_broker_url(broker.url)
    async with MqttPublisher(address, client_id="test-features") as sink:
        task = asyncio.create_task(publisher.run(sink, stop))
        try:
            yield stop
        finally:
            stop.set()
            async with asyncio.timeout(5):
                await task


def _states(watch: Watch, client: str) -> list[str]:
    return [p["power"]["desired_state"] for p in watch.for_client(client)]


async def test_an_edit_that_cancels_an_event_publishes_off_to_its_clients_only(
    embedded_broker: EmbeddedBroker, schedule_file: Path
) -> None:
    publisher = Publisher(load_schedule(schedule_file), SteppedClock(NOW))
    async with (
        watching(embedded_broker.port) as watch,
        running(embedded_broker, publisher),
    ):
        await watch.wait_for(3)
        first_hall = watch.for_client("hall-1")[0]
        talk = SCHEDULE.splitlines(keepends=True)[-1]
        schedule_file.write_text(SCHEDULE.replace(talk, ""))
        assert reload_schedule(schedule_file, publisher)
        await watch.wait_for(4)
        await asyncio.sleep(0.3)  # room for a wrong extra publish to arrive

    assert _states(watch, "hall-1") == ["on", "off"]
    cancelled = watch.for_client("hall-1")[1]
    assert cancelled["intent_id"] != first_hall["intent_id"]
    assert cancelled["power"]["reason"] == "no_active_event"
    assert _states(watch, "lobby-left") == ["on"]
    assert _states(watch, "lobby-right") == ["on"]


async def test_a_bad_edit_keeps_the_last_good_schedule(
    schedule_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = Publisher(load_schedule(schedule_file), SteppedClock(NOW))
    before, _ = publisher.desired(NOW)
    schedule_file.write_text(SCHEDULE.replace("end: 2026-03-02T11:00Z", "end: soon"))

    with caplog.at_level(logging.ERROR, logger="tvpower"):
        assert not reload_schedule(schedule_file, publisher)

    assert publisher.desired(NOW)[0] == before
    (record,) = [r for r in caplog.records if r.getMessage() == "schedule rejected"]
    assert "events[1] (id 'talk'): field 'end'" in record.fields["error"]  # type: ignore[attr-defined]
    rejected = publisher.metrics.registry.get_sample_value(
        "tvpower_schedule_loads_total", {"outcome": "rejected"}
    )
    assert rejected == 1.0


async def test_watcher_picks_up_an_edit_within_seconds(
    embedded_broker: EmbeddedBroker, schedule_file: Path
) -> None:
    publisher = Publisher(load_schedule(schedule_file), SteppedClock(NOW))
    async with (
        watching(embedded_broker.port) as watch,
        running(embedded_broker, publisher) as stop,
    ):
        watcher = asyncio.create_task(watch_schedule(schedule_file, publisher, stop))
        await watch.wait_for(3)
        await asyncio.sleep(0.5)  # the watcher is up
        schedule_file.write_text(
            SCHEDULE.replace("end: 2026-03-02T11:00Z", "end: 2026-03-02T09:20Z")
        )
        await watch.wait_for(4, seconds=5)
        stop.set()
        async with asyncio.timeout(5):
            await watcher
    assert _states(watch, "hall-1") == ["on", "off"]


async def test_only_groups_limits_what_is_published(
    embedded_broker: EmbeddedBroker, schedule_file: Path
) -> None:
    options = PublisherOptions(selection=Selection(groups=frozenset({"hall"})))
    publisher = Publisher(
        load_schedule(schedule_file), SteppedClock(NOW), options=options
    )
    address = parse_broker_url(embedded_broker.url)
    async with watching(embedded_broker.port) as watch:
        async with MqttPublisher(address, client_id="test-only") as sink:
            await publisher.reconcile(sink)
        await watch.wait_for(1)
        await asyncio.sleep(0.3)
    assert {m.topic for m in watch.messages} == {"infoscreen/hall-1/power/intent"}


def test_a_selection_naming_unknown_ids_is_refused(schedule_file: Path) -> None:
    selection = Selection(groups=frozenset({"hal"}), clients=frozenset({"lobby-left"}))
    with pytest.raises(UsageError) as error:
        selection.check(load_schedule(schedule_file))
    assert str(error.value) == f"--only-groups: not in {schedule_file}: hal"


async def test_dry_run_logs_every_intent_and_publishes_nothing(
    schedule_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = PublisherOptions(dry_run=True)
    publisher = Publisher(
        load_schedule(schedule_file), SteppedClock(NOW), options=options
    )
    with caplog.at_level(logging.INFO, logger="tvpower"):
        await publisher.reconcile(None)
    records = [r.fields for r in caplog.records if r.getMessage() == "publish"]  # type: ignore[attr-defined]
    assert {r["client_id"] for r in records} == {"lobby-left", "lobby-right", "hall-1"}
    assert {r["outcome"] for r in records} == {"dry_run"}


async def test_group_topics_carry_the_group_intent_without_a_client(
    embedded_broker: EmbeddedBroker, schedule_file: Path
) -> None:
    options = PublisherOptions(group_topics=True)
    publisher = Publisher(
        load_schedule(schedule_file), SteppedClock(NOW), options=options
    )
    address = parse_broker_url(embedded_broker.url)
    async with watching(
        embedded_broker.port, "infoscreen/groups/+/power/intent"
    ) as watch:
        async with MqttPublisher(address, client_id="test-groups") as sink:
            await publisher.reconcile(sink)
        await watch.wait_for(2)
    by_topic = {m.topic: m.payload for m in watch.messages}
    lobby = by_topic["infoscreen/groups/lobby/power/intent"]
    assert lobby["target"] == {"group_id": "lobby"}
    assert lobby["event_window"] == {
        "start": "2026-03-02T09:00:00Z",
        "end": "2026-03-02T10:00:00Z",
    }
    assert (
        by_topic["infoscreen/groups/hall/power/intent"]["power"]["desired_state"]
        == "on"
    )


def test_window_expiry_policy_keeps_on_valid_to_the_window_end_plus_grace(
    schedule_file: Path,
) -> None:
    options = PublisherOptions(expiry="window")
    publisher = Publisher(
        load_schedule(schedule_file), SteppedClock(NOW), options=options
    )
    intents, _ = publisher.desired(NOW)
    hall = intents["infoscreen/hall-1/power/intent"]
    payload = hall.payload(NOW, 600, valid_until=publisher._valid_until(hall))
    assert payload["expires_at"] == "2026-03-02T11:00:30Z"
    plain = Publisher(load_schedule(schedule_file), SteppedClock(NOW))
    assert plain._valid_until(hall) is None


async def test_metrics_count_publishes_transitions_and_clients(
    embedded_broker: EmbeddedBroker, schedule_file: Path
) -> None:
    clock = SteppedClock(NOW)
    publisher = Publisher(load_schedule(schedule_file), clock)
    address = parse_broker_url(embedded_broker.url)
    sample = publisher.metrics.registry.get_sample_value
    async with MqttPublisher(address, client_id="test-metrics") as sink:
        await publisher.reconcile(sink)
        await clock.advance(datetime(2026, 3, 2, 9, 33, tzinfo=UTC))
        assert sample("tvpower_retained_payload_age_seconds") == 180.0
        await publisher.reconcile(sink)  # nothing due: no transition, no refresh
        assert sample("tvpower_publishes_total", {"outcome": "acknowledged"}) == 3.0
        await clock.advance(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        await publisher.reconcile(sink)  # lobby goes off, hall is refreshed
    assert sample("tvpower_publishes_total", {"outcome": "acknowledged"}) == 6.0
    assert sample("tvpower_transitions_total", {"desired_state": "off"}) == 2.0
    assert sample("tvpower_transitions_total", {"desired_state": "on"}) is None
    assert sample("tvpower_clients_known") == 3.0
    assert sample("tvpower_retained_payload_age_seconds") == 0.0
    assert sample("tvpower_publish_latency_seconds_count") == 6.0
    assert sample("tvpower_skipped_expired_intents_total") == 0.0


class _RefusingSink:
    """A connection whose broker refuses every PUBLISH once told to."""

    protocol = "5"
    connected = True

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()
        self.refuse = False
        self.published: list[str] = []

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes, int | None]]
    ) -> list[tuple[BrokerError | None, float]]:
        if self.refuse:
            return [
                (BrokerError(f"broker refused PUBLISH to {t!r}"), 0.0)
                for t, *_ in messages
            ]
        self.published.extend(topic for topic, *_ in messages)
        return [(None, 0.0)] * len(messages)


async def test_failed_refreshes_back_off_instead_of_spinning(
    schedule_file: Path,
) -> None:
    clock = SteppedClock(NOW)
    publisher = Publisher(load_schedule(schedule_file), clock)
    sink = _RefusingSink()
    await publisher.reconcile(sink)
    assert len(sink.published) == 3

    sink.refuse = True
    refresh_due = datetime(2026, 3, 2, 9, 35, tzinfo=UTC)
    await clock.advance(refresh_due)
    wakes = []
    for _ in range(len(_RETRY_STEPS)):
        wake = await publisher.reconcile(sink)
        wakes.append((wake - clock.now()).total_seconds())
        await clock.advance(wake)
    assert wakes == list(_RETRY_STEPS)
    failed = publisher.metrics.registry.get_sample_value(
        "tvpower_publishes_total", {"outcome": "failed"}
    )
    assert failed == 3 * len(_RETRY_STEPS)


_RETRY_STEPS = (1.0, 2.0, 5.0, 10.0)


def test_an_edit_the_engine_cannot_use_keeps_the_last_good_schedule(
    schedule_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = Publisher(load_schedule(schedule_file), SteppedClock(NOW))
    before, _ = publisher.desired(NOW)

    def overflow(*_: object) -> None:
        raise OverflowError("date value out of range")

    monkeypatch.setattr("tvpower.watch.timeline_around", overflow)
    assert not reload_schedule(schedule_file, publisher)
    assert publisher.desired(NOW)[0] == before
    rejected = publisher.metrics.registry.get_sample_value(
        "tvpower_schedule_loads_total", {"outcome": "rejected"}
    )
    assert rejected == 1.0


class _DroppingSink(_RefusingSink):
    """A connection that acknowledges one burst of publishes, then is lost."""

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes, int | None]]
    ) -> list[tuple[BrokerError | None, float]]:
        results = await super().publish_batch(messages)
        self.connected = False
        self.disconnected.set()
        return results


def _scripted_connect(
    attempts: Sequence[str], stop: asyncio.Event
) -> Callable[[], AbstractAsyncContextManager[_RefusingSink]]:
    """Connections that are ``refused`` or ``lost`` in turn; then ``stop`` is set."""
    script = iter(attempts)

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[_RefusingSink]:
        attempt = next(script, None)
        if attempt == "refused":
            raise BrokerError("connection refused")
        if attempt == "lost":
            yield _DroppingSink()
            return
        stop.set()
        yield _RefusingSink()

    return connect


_FAST_RETRY_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.03)


@pytest.mark.parametrize(
    ("attempts", "steps"),
    [
        pytest.param(["lost"] * 4, [0, 0, 0, 0], id="lost-after-connecting"),
        pytest.param(["refused"] * 3, [0, 1, 2], id="refused-in-a-row"),
        pytest.param(
            ["refused", "refused", "lost", "refused", "refused", "lost"],
            [0, 1, 0, 1, 2, 0],
            id="a-connection-starts-the-backoff-afresh",
        ),
    ],
)
async def test_reconnect_backoff_escalates_only_while_connecting_fails(
    schedule_file: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    attempts: list[str],
    steps: list[int],
) -> None:
    monkeypatch.setattr("tvpower.publisher._RETRY_SECONDS", _FAST_RETRY_SECONDS)
    publisher = Publisher(load_schedule(schedule_file), SteppedClock(NOW))
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="tvpower"):
        async with asyncio.timeout(5):
            await publisher.serve(
                _scripted_connect(attempts, stop),
                stop,
                broker="mqtt://127.0.0.1:1883",
                client_id="test-backoff",
            )
    retries = [
        r.fields["retry_in_seconds"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "broker unavailable"
    ]
    assert retries == [_FAST_RETRY_SECONDS[step] for step in steps]
