"""The harness's own checks: when a run is quiet, whom a check judges, how long."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tvpower.intents import Intent, encode
from tvpower.sim import load_scenario, simulate
from tvpower.sim.run import Simulation

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

# The publisher restarts at the instant e1 ends: it publishes b's "off" of
# 11:00:00 again, with the same intent id and issue time, and that copy must
# arrive before the clock moves on to e2's start twenty seconds later.
RESTART_AT_AN_END = """\
timezone: UTC
grace_seconds: 30
groups: {g: {clients: [a, b]}}
events:
  - {id: e1, group: g, start: 2026-03-02T10:00:00Z, end: 2026-03-02T11:00:00Z}
  - {id: e2, group: g, start: 2026-03-02T11:00:20Z, end: 2026-03-02T12:00:00Z}
simulation: {start: 2026-03-02T09:00:00Z, end: 2026-03-02T13:00:00Z}
timeline:
  - {at: 2026-03-02T11:00:00Z, restart: publisher}
"""


@pytest.fixture
def restart_at_an_end(tmp_path: Path) -> Path:
    path = tmp_path / "restart-at-an-end.yaml"
    path.write_text(RESTART_AT_AN_END)
    return path


# Without counting copies it failed about three runs in eight.
@pytest.mark.timeout(120)
async def test_a_restart_at_an_end_publishes_nothing_late(
    restart_at_an_end: Path,
) -> None:
    for _run in range(8):
        result = await simulate(restart_at_an_end)

        assert result.violations.empty, result.violations.to_string()


def _acknowledged(topic: str, payload: dict[str, str]) -> logging.LogRecord:
    fields = {
        "outcome": "acknowledged",
        "topic": topic,
        "intent_id": payload["intent_id"],
        "issued_at": payload["issued_at"],
    }
    return logging.makeLogRecord({"msg": "publish", "fields": fields})


def test_quiet_waits_for_every_copy_of_the_same_publish(
    restart_at_an_end: Path, tmp_path: Path
) -> None:
    simulation = Simulation(load_scenario(restart_at_an_end), tmp_path)
    issued = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    intent = Intent("b", "g", "off", "no_active_event", 30, None, None)
    payload = intent.payload(issued, 600)
    topic, body = "infoscreen/b/power/intent", encode(payload)
    fleet = simulation.fleet

    # Two publishers' copies acknowledged; the old one's has arrived.
    simulation.capture.emit(_acknowledged(topic, payload))
    simulation.capture.emit(_acknowledged(topic, payload))
    fleet.deliver(topic, body, retained=False, via="live", only=None)
    assert not simulation.all_arrived()

    # Copies from the retained store repeat a publish; they are not the new one.
    fleet.deliver(topic, body, retained=True, via="live", only=None)
    fleet.deliver(topic, body, retained=True, via="reconnect", only="b")
    assert not simulation.all_arrived()

    fleet.deliver(topic, body, retained=False, via="live", only=None)
    assert simulation.all_arrived()


def _with_group_topics(path: Path, tmp_path: Path) -> Path:
    text = path.read_text().replace(
        "simulation:\n", "simulation:\n  group_topics: true\n"
    )
    text = text.replace("schedule: schedules/", f"schedule: {SCENARIOS}/schedules/")
    copy = tmp_path / path.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("name", ["client-override", "example-office"])
async def test_group_topics_do_not_overrule_a_clients_own(
    name: str, tmp_path: Path
) -> None:
    scenario = _with_group_topics(SCENARIOS / f"{name}.yaml", tmp_path)
    assert load_scenario(scenario).group_topics

    result = await simulate(scenario)

    assert result.violations.empty, result.violations.to_string()
    groups = result.received["topic"].str.startswith("infoscreen/groups/")
    assert groups.any()
    assert result.received["valid"].all()


@pytest.mark.timeout(60)
async def test_a_run_over_its_time_budget_ends_as_a_harness_problem(
    restart_at_an_end: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tvpower.sim.run._BUDGET_SECONDS", 1e-6)

    result = await simulate(restart_at_an_end)

    harness = result.violations[result.violations["check"] == "harness"]
    assert list(harness["detail"]) == ["not done within 1e-06 s of real time"]
    # Ended at its first step: nothing was received after the start.
    assert result.received["at"].max() == pd.Timestamp("2026-03-02T09:00:00Z")


NO_OFF_OVER_AN_END = """\
timezone: UTC
grace_seconds: 30
ttl_seconds: 600
clients: {tv: {}}
events:
  - {id: e1, client: tv, start: 2026-03-02T10:00:00Z, end: 2026-03-02T11:00:00Z}
simulation: {start: 2026-03-02T09:00:00Z, end: 2026-03-02T13:00:00Z}
expect:
  - {client: tv, no_off_between: [2026-03-02T10:30:00Z, 2026-03-02T12:00:00Z]}
"""


async def test_a_broken_no_off_names_each_off_intent_once(tmp_path: Path) -> None:
    path = tmp_path / "no-off-over-an-end.yaml"
    path.write_text(NO_OFF_OVER_AN_END)

    result = await simulate(path)

    expect = result.violations[result.violations["check"] == "expect"]
    received = result.received
    offs = received[
        (received["desired_state"] == "off")
        & (received["at"] >= pd.Timestamp("2026-03-02T11:00:00Z"))
        & (received["at"] < pd.Timestamp("2026-03-02T12:00:00Z"))
    ]
    # The off of 11:00 and its refreshes every five minutes, all one intent.
    assert offs["intent_id"].nunique() == 1
    assert len(offs) == 12
    intent_id = offs["intent_id"].iloc[0]
    assert expect[["at", "detail"]].to_dict("records") == [
        {
            "at": pd.Timestamp("2026-03-02T11:00:00Z"),
            "detail": f"expect[0]: off intent {intent_id} received "
            "(12 times, the last at 2026-03-02T11:55:00Z)",
        },
        {"at": pd.Timestamp("2026-03-02T11:00:30Z"), "detail": "expect[0]: TV off"},
    ]
    assert set(result.violations["check"]) == {"expect"}
