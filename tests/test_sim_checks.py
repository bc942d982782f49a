"""The harness's own checks: when a run is quiet, whom a check judges, how long."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tvpower.intents import Intent, encode, format_instant
from tvpower.sim import SimResult, load_scenario, simulate
from tvpower.sim.fleet import Receipt
from tvpower.sim.run import Recording, Simulation, record
from tvpower.sim.verify import verify

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
    # A run cut short is judged no further: its TVs and log stop with it.
    assert set(result.violations["check"]) == {"harness"}
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


# A lobby of two TVs with one window, 09:00 to 12:00, and a talk at 13:00;
# a kiosk of its own from 09:30 to 11:30. The publisher refreshes every
# five minutes (ttl 600 s), so 12:30 is a refresh.
LOBBY = """\
timezone: UTC
grace_seconds: 30
ttl_seconds: 600
groups: {lobby: {clients: [lobby-left, lobby-right]}}
clients: {kiosk: {}}
events:
  - {id: welcome, group: lobby, start: 2026-03-02T09:00:00Z, end: 2026-03-02T10:00:00Z}
  - {id: briefing, group: lobby, start: 2026-03-02T10:00:00Z, end: 2026-03-02T11:00:00Z}
  - {id: workshop, group: lobby, start: 2026-03-02T10:30:00Z, end: 2026-03-02T12:00:00Z}
  - id: kiosk-hours
    client: kiosk
    start: 2026-03-02T09:30:00Z
    end: 2026-03-02T11:30:00Z
  - {id: talk, group: lobby, start: 2026-03-02T13:00:00Z, end: 2026-03-02T14:00:00Z}
simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T15:00:00Z}
"""


async def _lobby(tmp_path: Path, more: str) -> SimResult:
    path = tmp_path / "lobby-scenario.yaml"
    path.write_text(LOBBY + more)
    return await simulate(path)


def _rows(violations: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    return sorted(
        (v.check, v.client_id, format_instant(v.at), v.detail)
        for v in violations.itertuples()
    )


def _off_intent(result: SimResult, client_id: str, at: str) -> str:
    received = result.received
    off = received[
        (received["client_id"] == client_id)
        & (received["at"] == pd.Timestamp(at))
        & (received["desired_state"] == "off")
    ]
    return str(off["intent_id"].item())


async def test_an_edit_at_an_events_end_is_in_force_before_the_publisher_acts(
    tmp_path: Path,
) -> None:
    result = await _lobby(
        tmp_path,
        "timeline:\n"
        "  - {at: 2026-03-02T12:00:00Z,"
        " edit: {id: workshop, end: 2026-03-02T12:30:00Z}}\n"
        "expect:\n"
        "  - {client: lobby-left,"
        " no_off_between: [2026-03-02T09:00:00Z, 2026-03-02T12:30:00Z]}\n",
    )

    # At 12:00 the edit comes first: the publisher never sends the old
    # version's off, and the window runs on to the new end.
    assert result.violations.empty
    received = result.received[result.received["client_id"] == "lobby-left"]
    offs = received.loc[received["desired_state"] == "off", "at"]
    window = (
        pd.Timestamp("2026-03-02T09:00:00Z"),
        pd.Timestamp("2026-03-02T12:30:00Z"),
    )
    assert not ((offs >= window[0]) & (offs < window[1])).any()
    power = result.power[result.power["client_id"] == "lobby-left"]
    on = power[power["power"] == "on"].iloc[0]
    assert (on["start"], on["end"]) == (
        pd.Timestamp("2026-03-02T09:00:00Z"),
        pd.Timestamp("2026-03-02T12:30:30Z"),
    )


async def test_a_cancel_and_re_add_at_one_instant_make_one_version(
    tmp_path: Path,
) -> None:
    result = await _lobby(
        tmp_path,
        "timeline:\n"
        "  - {at: 2026-03-02T09:30:00Z, cancel: welcome}\n"
        "  - {at: 2026-03-02T09:30:00Z, add: {id: welcome, group: lobby,"
        " start: 2026-03-02T09:00:00Z, end: 2026-03-02T10:00:00Z}}\n"
        "expect:\n"
        "  - {client: lobby-left,"
        " no_off_between: [2026-03-02T09:00:00Z, 2026-03-02T12:00:00Z]}\n",
    )

    # The schedule between the two edits is never in force: the publisher
    # sees the schedule both make, which is the one it had.
    assert result.violations.empty, result.violations.to_string()
    received = result.received[result.received["client_id"] == "lobby-left"]
    at_edit = received[received["at"] == pd.Timestamp("2026-03-02T09:30:00Z")]
    assert set(at_edit["desired_state"]) <= {"on"}


@pytest.mark.parametrize("at", ["12:30:00", "12:32:00"])
async def test_an_add_at_or_between_refreshes_passes(tmp_path: Path, at: str) -> None:
    # At 12:30 the add comes before the refresh, which publishes its on.
    result = await _lobby(
        tmp_path,
        "timeline:\n"
        f"  - {{at: 2026-03-02T{at}Z, add: {{id: now, group: lobby,"
        f" start: 2026-03-02T{at}Z, end: 2026-03-02T12:40:00Z}}}}\n"
        "expect:\n"
        f"  - {{client: lobby-left, at: 2026-03-02T{at}Z, state: 'on'}}\n",
    )

    assert result.violations.empty, result.violations.to_string()


async def test_a_reconnect_at_a_cancels_instant_learns_the_new_state(
    tmp_path: Path,
) -> None:
    # Written first, the reconnect still comes after the cancel: at one
    # instant, edits come before everything else.
    result = await _lobby(
        tmp_path,
        "timeline:\n"
        "  - {at: 2026-03-02T13:10:00Z, disconnect: lobby-left}\n"
        "  - {at: 2026-03-02T13:21:00Z, reconnect: lobby-left}\n"
        "  - {at: 2026-03-02T13:21:00Z, cancel: talk}\n",
    )

    assert result.violations.empty, result.violations.to_string()
    learned = result.received[result.received["via"] == "reconnect"]
    assert list(learned["desired_state"]) == ["off"]


def _receive_off(recording: Recording, at: datetime) -> dict[str, Any]:
    """Make lobby-left receive an off intent at ``at``, live; its payload."""
    intent = Intent("lobby-left", "lobby", "off", "no_active_event", 30, None, None)
    payload = intent.payload(at, 600)
    topic = "infoscreen/lobby-left/power/intent"
    recording.receipts.append(
        Receipt(at, "lobby-left", topic, "live", False, True, "", payload)
    )
    return payload


async def test_a_real_off_at_an_edit_is_still_caught(tmp_path: Path) -> None:
    path = tmp_path / "lobby-scenario.yaml"
    path.write_text(
        LOBBY + "timeline:\n"
        "  - {at: 2026-03-02T10:15:00Z,"
        " edit: {id: workshop, end: 2026-03-02T12:30:00Z}}\n"
    )
    recording = await record(load_scenario(path))
    # The version in force at 10:15 says on there.
    payload = _receive_off(recording, datetime(2026, 3, 2, 10, 15, tzinfo=UTC))

    violations = verify(recording).violations

    assert _rows(violations) == [
        (
            "on_window",
            "lobby-left",
            "2026-03-02T10:15:00Z",
            f"off intent {payload['intent_id']} inside an on window",
        )
    ]


async def test_an_old_versions_off_at_an_edit_is_caught(tmp_path: Path) -> None:
    # The workshop ends at 12:00; at 12:00 an edit makes it touch a new
    # event. An off published under the old version then (as if the
    # publisher had acted before the edit) is an off between touching windows.
    path = tmp_path / "lobby-scenario.yaml"
    path.write_text(
        LOBBY + "timeline:\n"
        "  - {at: 2026-03-02T12:00:00Z, add: {id: lunch, group: lobby,"
        " start: 2026-03-02T12:00:00Z, end: 2026-03-02T13:00:00Z}}\n"
    )
    recording = await record(load_scenario(path))
    _receive_off(recording, datetime(2026, 3, 2, 12, tzinfo=UTC))

    violations = verify(recording).violations

    assert ("on_window", "lobby-left", "2026-03-02T12:00:00Z") in [
        row[:3] for row in _rows(violations)
    ]


async def test_an_outage_across_a_windows_start_darkens_the_tvs(
    tmp_path: Path,
) -> None:
    result = await _lobby(
        tmp_path,
        "timeline:\n"
        "  - {at: 2026-03-02T08:30:00Z, stop: publisher}\n"
        "  - {at: 2026-03-02T09:45:00Z, start: publisher}\n",
    )

    # Nobody published the 09:00 (lobby) and 09:30 (kiosk) on: the TVs stay
    # off until the publisher is back. One row per dark stretch.
    assert _rows(result.violations) == [
        (
            "on_window",
            "kiosk",
            "2026-03-02T09:30:00Z",
            "TV off inside an on window for 15 min",
        ),
        (
            "on_window",
            "lobby-left",
            "2026-03-02T09:00:00Z",
            "TV off inside an on window for 45 min",
        ),
        (
            "on_window",
            "lobby-right",
            "2026-03-02T09:00:00Z",
            "TV off inside an on window for 45 min",
        ),
    ]


@pytest.mark.parametrize(
    ("back", "rows"),
    [
        # Dark from 12:00:30, the old version's off a grace on: excused until
        # a grace after the edit (12:00:40), and the client is back before.
        ("12:00:35", []),
        # Back at 12:05: dark beyond the grace after the edit.
        (
            "12:05:00",
            [
                (
                    "on_window",
                    "lobby-right",
                    "2026-03-02T12:00:40Z",
                    "TV off inside an on window for 4 min 20 s",
                )
            ],
        ),
    ],
)
async def test_a_tv_that_missed_an_edit_is_dark_beyond_its_grace(
    tmp_path: Path, back: str, rows: list[tuple[str, str, str, str]]
) -> None:
    result = await _lobby(
        tmp_path,
        "timeline:\n"
        "  - {at: 2026-03-02T12:00:05Z, disconnect: lobby-right}\n"
        "  - {at: 2026-03-02T12:00:10Z,"
        " edit: {id: workshop, end: 2026-03-02T12:30:00Z}}\n"
        f"  - {{at: 2026-03-02T{back}Z, reconnect: lobby-right}}\n",
    )

    assert _rows(result.violations) == rows
    power = result.power[result.power["client_id"] == "lobby-right"]
    dark = power[power["start"] == pd.Timestamp("2026-03-02T12:00:30Z")]
    assert list(dark["power"]) == ["off"]


# An event added while the publisher is down: the TV, off since long before,
# stays dark until the publisher is back, 20 minutes into the new window.
# The grace after an edit excuses a switch-off then, not a TV already off.
ADDED_DURING_AN_OUTAGE = """\
timezone: UTC
grace_seconds: 1800
groups:
  lobby: {clients: [tv]}
events:
  - {id: early, group: lobby, start: 2026-03-02T07:00:00Z, end: 2026-03-02T07:30:00Z}
simulation: {start: 2026-03-02T06:00:00Z, end: 2026-03-02T11:00:00Z}
timeline:
  - {at: 2026-03-02T08:30:00Z, stop: publisher}
  - {at: 2026-03-02T09:00:00Z, add: {id: late, group: lobby,
     start: 2026-03-02T09:00:00Z, end: 2026-03-02T10:00:00Z}}
  - {at: 2026-03-02T09:20:00Z, start: publisher}
"""


async def test_an_event_added_during_an_outage_darkens_the_tv_until_it_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "added-during-an-outage.yaml"
    path.write_text(ADDED_DURING_AN_OUTAGE)

    result = await simulate(path)

    assert result.violations[["check", "client_id", "at", "detail"]].to_dict(
        "records"
    ) == [
        {
            "check": "on_window",
            "client_id": "tv",
            "at": pd.Timestamp("2026-03-02T09:00:00Z"),
            "detail": "TV off inside an on window for 20 min",
        }
    ]
