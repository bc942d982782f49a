"""The publisher against a real embedded broker, watched by a real subscriber."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tvpower.broker import EmbeddedBroker
from tvpower.clock import SteppedClock
from tvpower.intents import validate_payload
from tvpower.mqtt import MqttPublisher, parse_broker_url
from tvpower.publisher import Publisher
from tvpower.schedule import Schedule, load_schedule

from .watch import Watch, watching

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
MACHBAR = ("machbar-entrance", "machbar-hall")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def _replay(
    broker: EmbeddedBroker, schedule: Schedule, start: str, until: str
) -> tuple[Watch, list[datetime]]:
    """Run the publisher from ``start`` to ``until``, jumping from wake to wake."""
    clock = SteppedClock(_utc(start))
    publisher = Publisher(schedule, clock)
    wakes: list[datetime] = []
    address = parse_broker_url(broker.url)
    async with (
        watching(broker.port) as watch,
        MqttPublisher(address, client_id="test-publisher") as sink,
    ):
        for _ in range(500):
            wake = await publisher.reconcile(sink)
            wakes.append(wake)
            if wake > _utc(until):
                break
            await clock.advance(wake)
        await watch.wait_for(len(schedule.clients))
    return watch, wakes


def _check_payload(payload: dict[str, Any]) -> None:
    validate_payload(payload)
    assert payload["issued_at"].endswith("Z")
    assert payload["expires_at"] > payload["issued_at"]


async def test_back_to_back_sessions_stay_on_until_the_last_ends(
    embedded_broker: EmbeddedBroker,
) -> None:
    schedule = load_schedule(SCENARIOS / "makerspace-potsdam.yaml")
    watch, wakes = await _replay(
        embedded_broker, schedule, "2019-03-05T17:59:50Z", "2019-03-05T20:30:00Z"
    )

    assert _utc("2019-03-05T20:00:00Z") in wakes
    for client in MACHBAR:
        payloads = watch.for_client(client)
        for payload in payloads:
            _check_payload(payload)
        before = [p for p in payloads if p["issued_at"] < "2019-03-05T20:00:00Z"]
        after = [p for p in payloads if p["issued_at"] >= "2019-03-05T20:00:00Z"]
        assert len(before) >= 2, "the on intent is refreshed before it expires"
        assert {p["power"]["desired_state"] for p in before} == {"on"}
        assert {p["intent_id"] for p in before} == {before[0]["intent_id"]}
        assert before[0]["event_window"] == {
            "start": "2019-03-05T13:00:00Z",
            "end": "2019-03-05T20:00:00Z",
        }
        assert after[0]["power"]["desired_state"] == "off"
        assert after[0]["issued_at"] == "2019-03-05T20:00:00Z"
        assert after[0]["intent_id"] != before[0]["intent_id"]


async def test_refresh_comes_before_expiry(embedded_broker: EmbeddedBroker) -> None:
    schedule = load_schedule(SCENARIOS / "makerspace-potsdam.yaml")
    watch, _ = await _replay(
        embedded_broker, schedule, "2019-03-05T14:00:00Z", "2019-03-05T15:00:00Z"
    )
    issued = [_utc(p["issued_at"]) for p in watch.for_client("machbar-hall")]
    expires = [_utc(p["expires_at"]) for p in watch.for_client("machbar-hall")]
    assert len(issued) >= 10
    for expiry, next_issue in zip(expires, issued[1:], strict=False):
        assert next_issue < expiry


async def test_a_fresh_subscriber_gets_every_retained_intent(
    embedded_broker: EmbeddedBroker,
) -> None:
    schedule = load_schedule(SCENARIOS / "makerspace-potsdam.yaml")
    await _replay(
        embedded_broker, schedule, "2019-03-05T17:59:50Z", "2019-03-05T18:00:00Z"
    )

    async with watching(embedded_broker.port) as late:
        await late.wait_for(len(MACHBAR))
    assert all(m.retain for m in late.messages)
    for client in MACHBAR:
        # QoS 1 is at-least-once, and amqtt may send one retained message
        # twice to a new subscriber: every copy must be the same intent.
        payload, *copies = late.for_client(client)
        assert all(copy == payload for copy in copies)
        _check_payload(payload)
        assert payload["power"]["desired_state"] == "on"


async def test_reconnect_publishes_everything_again(
    embedded_broker: EmbeddedBroker,
) -> None:
    schedule = load_schedule(SCENARIOS / "makerspace-potsdam.yaml")
    clock = SteppedClock(_utc("2019-03-05T17:59:50Z"))
    publisher = Publisher(schedule, clock)
    address = parse_broker_url(embedded_broker.url)
    async with watching(embedded_broker.port) as watch:
        for attempt in range(2):
            async with MqttPublisher(address, client_id=f"test-{attempt}") as sink:
                publisher.forget_acknowledged()
                await publisher.reconcile(sink)
                await publisher.reconcile(sink)
        await watch.wait_for(2 * len(MACHBAR))
    for client in MACHBAR:
        payloads = watch.for_client(client)
        assert len(payloads) == 2
        assert payloads[0]["intent_id"] == payloads[1]["intent_id"]


def test_same_schedule_and_clock_give_byte_identical_intents() -> None:
    schedule = load_schedule(SCENARIOS / "makerspace-potsdam.yaml")
    now = _utc("2019-03-05T17:59:50Z")
    first, next_first = Publisher(schedule, SteppedClock(now)).desired(now)
    second, next_second = Publisher(
        load_schedule(SCENARIOS / "makerspace-potsdam.yaml"), SteppedClock(now)
    ).desired(now)
    assert next_first == next_second == _utc("2019-03-05T20:00:00Z")
    assert first == second
    for client, intent in first.items():
        assert intent.payload(now, 600) == second[client].payload(now, 600)
    later = now + timedelta(hours=1)
    assert Publisher(schedule, SteppedClock(later)).desired(later)[0] == first
