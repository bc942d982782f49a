"""The simulation harness: shipped scenarios pass, broken ones fail loudly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tvpower.schedule import load_schedule
from tvpower.sim import load_scenario, run_scenario, simulate
from tvpower.sim.__main__ import main
from tvpower.sim.fleet import Receipt, SimClient
from tvpower.sim.run import record
from tvpower.sim.tables import write_tables
from tvpower.sim.verify import (
    POWER_COLUMNS,
    RECEIVED_COLUMNS,
    VIOLATION_COLUMNS,
    verify,
)

ROOT = Path(__file__).resolve().parent.parent
# Every YAML file at the top of scenarios/ is a scenario: the library.
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
BROKEN = ROOT / "tests" / "data" / "sim-broken-expectation.yaml"
LOBBY = ROOT / "scenarios" / "schedules" / "lobby.yaml"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger; put it back as pytest had it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_required_scenario_ships() -> None:
    names = {path.stem for path in SCENARIOS}
    assert {
        "back-to-back",
        "broker-restart",
        "cancellation",
        "client-override",
        "client-reconnect",
        "dst-berlin-fall",
        "dst-berlin-spring",
        "dst-new-york-fall",
        "dst-new-york-spring",
        "dst-phoenix",
        "edit-extend",
        "fleet-week",
        "join-mid-event",
        "lead-time",
        "makerspace-potsdam",
        "merge-gap",
        "midnight",
        "publisher-outage",
        "publisher-restart",
        "school-chicago",
    } <= names


# The week-long fleet takes well under a minute alone (bench/sim.py times
# it); the bound leaves room for a machine busy with other work.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_shipped_scenario_passes(path: Path) -> None:
    result = await simulate(path)

    assert result.violations.empty, result.violations.to_string()
    assert list(result.received.columns) == RECEIVED_COLUMNS
    assert list(result.power.columns) == POWER_COLUMNS
    assert list(result.violations.columns) == VIOLATION_COLUMNS
    assert result.received["valid"].all()
    assert len(result.received) > 0


async def test_cancellation_switches_the_tvs_off_a_grace_later() -> None:
    result = await simulate(ROOT / "scenarios" / "cancellation.yaml")

    power = result.power[result.power["client_id"] == "lobby-left"]
    off_at = pd.Timestamp("2026-03-02T13:20:30Z")
    assert (power["start"] == off_at).any()
    assert power.loc[power["start"] == off_at, "power"].item() == "off"


async def test_a_reconnecting_client_learns_the_retained_intent() -> None:
    result = await simulate(ROOT / "scenarios" / "client-reconnect.yaml")

    learned = result.received[result.received["via"] == "reconnect"]
    assert set(learned["client_id"]) == {"lobby-left", "lobby-right", "kiosk"}
    assert learned["retained"].all()


def test_broken_expectation_exits_1_and_writes_csvs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    status = main([str(BROKEN), "--out", str(tmp_path)])

    out = capsys.readouterr().out
    assert status == 1
    assert "expect[0]: TV off, expected on" in out
    violations = pd.read_csv(tmp_path / "sim-broken-expectation-violations.csv")
    assert set(violations["check"]) == {"expect"}
    for name in ("received", "power"):
        assert (tmp_path / f"sim-broken-expectation-{name}.csv").is_file()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary[["scenario", "passed", "violations"]].to_dict("records") == [
        {
            "scenario": "sim-broken-expectation",
            "passed": False,
            "violations": len(violations),
        }
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "timeline:\n  - {at: 2026-03-02T09:00:00Z, disconnect: nobody}\n",
            "timeline[0]: field 'disconnect': expected a client of "
            f"{LOBBY}, got 'nobody'",
        ),
        (
            "expect:\n  - {client: kiosk, at: 2026-03-02T09:00:00Z, state: dim}\n",
            "expect[0]: field 'state': expected on or off, got 'dim'",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:00:00Z, cancel: nope}\n",
            "timeline[0]: field 'cancel': expected the id of an event in the "
            "schedule then, got 'nope'",
        ),
        (
            "expect:\n  - {client: kiosk, no_off_between: "
            "[2026-03-02T09:30:00Z, 2026-03-02T09:00:00Z]}\n",
            "expect[0]: field 'no_off_between': expected START before END, got "
            "2026-03-02T09:30:00Z and 2026-03-02T09:00:00Z",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:00:00Z, join: kiosk}\n"
            "expect:\n  - {client: kiosk, at: 2026-03-02T08:45:00Z, state: 'off'}\n",
            "expect[0]: field 'at': client 'kiosk' joins only at "
            "2026-03-02T09:00:00Z; got 2026-03-02T08:45:00Z",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, cancel: welcome}\n"
            "  - {at: 2026-03-02T09:20:00Z, cancel: welcome}\n",
            "timeline[1]: field 'cancel': expected the id of an event in the "
            "schedule then, got 'welcome'",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, disconnect: [kiosk]}\n",
            f"timeline[0]: field 'disconnect': expected a client of {LOBBY}, "
            "got ['kiosk']",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, add: {id: x, group: nowhere, "
            "start: 2026-03-02T09:30:00Z, end: 2026-03-02T10:00:00Z}}\n",
            "timeline[0]: field 'add': the schedule after it is not valid: "
            "events[5] (id 'x'): group: expected a declared group ('lobby'), "
            "got 'nowhere'",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, edit: {id: welcome, "
            "end: banana}}\n",
            "timeline[0]: field 'edit': the schedule after it is not valid: "
            "events[0] (id 'welcome'): end: expected an ISO 8601 date and time "
            "like '2019-03-05T14:00:00+01:00', got 'banana'",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, add: {id: welcome, "
            "group: lobby, start: 2026-03-02T09:30:00Z, end: 2026-03-02T10:00:00Z}}\n",
            "timeline[0]: field 'add.id': expected a new event id, got 'welcome', "
            "which is in the schedule",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, reconnect: kiosk}\n",
            "timeline[0]: field 'reconnect': client 'kiosk' is connected then; "
            "reconnect needs it disconnected",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, disconnect: kiosk}\n"
            "  - {at: 2026-03-02T09:20:00Z, disconnect: kiosk}\n",
            "timeline[1]: field 'disconnect': client 'kiosk' is disconnected then; "
            "disconnect needs it connected",
        ),
        (
            "timeline:\n  - {at: 0001-01-01T00:30:00+01:00, disconnect: kiosk}\n",
            "timeline[0]: field 'at': expected an ISO 8601 instant with a zone, "
            "such as 2019-03-05T12:00:00Z, got '0001-01-01T00:30:00+01:00'",
        ),
        (
            "expect:\n  - {client: kiosk, state: 'on', no_off_between: "
            "[2026-03-02T09:00:00Z, 2026-03-02T09:30:00Z]}\n",
            "expect[0]: field 'state': no_off_between is a statement of its own; "
            "put state in another entry",
        ),
        (
            "expect:\n  - {client: kiosk, at: 2026-03-02T09:00:00Z, reason: banana}\n",
            "expect[0]: field 'reason': expected one of no_active_event, "
            "event_window_active, client_override_on, client_override_off, got "
            "'banana'",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T09:10:00Z, add: {id: 7, group: lobby, "
            "start: 2026-03-02T09:30:00Z, end: 2026-03-02T10:00:00Z}}\n",
            "timeline[0]: field 'add.id': expected an event id that is text, got 7",
        ),
        (
            "timeline:\n  - {at: 2026-03-02T07:00:00Z, disconnect: kiosk}\n",
            "timeline[0]: field 'at': expected an instant from start to before "
            "end, got 2026-03-02T07:00:00Z",
        ),
    ],
    ids=[
        "add-id-not-text",
        "before-the-span",
        "unknown-client",
        "bad-state",
        "unknown-event",
        "reversed",
        "before-join",
        "cancelled-twice",
        "client-as-list",
        "add-to-unknown-group",
        "edit-to-bad-time",
        "add-existing-id",
        "reconnect-connected",
        "disconnect-twice",
        "year-one",
        "no-off-with-state",
        "unknown-reason",
    ],
)
def test_bad_scenario_exits_2_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    body: str,
    message: str,
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        f"schedule: {LOBBY}\n"
        "simulation: {start: 2026-03-02T08:30:00Z, end: 2026-03-02T10:00:00Z}\n" + body
    )

    status = main([str(scenario)])

    err = capsys.readouterr().err
    assert status == 2
    assert err == f"python -m tvpower.sim: error: {scenario}: {message}\n"


def test_a_time_without_zone_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        f"schedule: {LOBBY}\n"
        "simulation: {start: 2026-03-02T08:30:00Z, end: 2026-03-02T10:00:00}\n"
    )

    assert main([str(scenario)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{scenario}: simulation: field 'end': expected an ISO 8601 instant" in err


INLINE = (
    "timezone: UTC\n"
    "clients: {tv: {}}\n"
    "events:\n"
    "  - {id: talk, client: tv, start: 2026-03-02T09:00:00Z, "
    "end: 2026-03-02T10:00:00Z}\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            INLINE + "simulaton: {start: 2026-03-02T08:00:00Z, "
            "end: 2026-03-02T11:00:00Z}\n",
            "field 'simulaton': unknown key; expected one of clients, events, "
            "grace_seconds, groups, lead_seconds, merge_gap, timezone, "
            "ttl_seconds, expect, simulation, timeline",
        ),
        (
            INLINE + "simulation: {start: 2026-03-02T08:00:00.2Z, "
            "end: 2026-03-02T08:00:00.9Z}\n",
            "simulation: field 'end': expected end at least a second after start "
            "(intents speak in whole seconds), got 0.7 s",
        ),
        (
            INLINE,
            "field 'simulation': expected a mapping with start and end, got "
            "nothing; a schedule without it is not a scenario",
        ),
        (
            INLINE + "simulation: {start: 2026-03-02T08:00:00Z, "
            "end: 2026-03-02T11:00:00Z, speed: 2}\n",
            "simulation: field 'speed': unknown key; expected one of start, end, "
            "group_topics, expiry_policy, on_expiry",
        ),
        (
            INLINE.replace("end: 2026-03-02T10", "end: 2026-03-02T08")
            + "simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T11:00:00Z}\n",
            "events[0] (id 'talk'): field 'end': must be after start "
            "2026-03-02T09:00:00+00:00, got 2026-03-02T08:00:00+00:00",
        ),
        (
            f"schedule: {LOBBY}\ntimezone: UTC\n"
            "simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T11:00:00Z}\n",
            "field 'timezone': unknown key next to 'schedule'; expected one of "
            "schedule, expect, simulation, timeline (schedule keys belong in the "
            "schedule file)",
        ),
        (
            INLINE + "simulation: {start: 2026-03-01T00:00:00Z, "
            "end: 2026-06-01T12:00:00Z}\n",
            "simulation: field 'end': expected a span of at most 62 days, got "
            "92.5 days",
        ),
        (
            INLINE + "simulation: {start: 1969-12-31T00:00:00Z, "
            "end: 2026-03-02T11:00:00Z}\n",
            "simulation: field 'start': expected an instant from 1970 to 2200, got "
            "1969-12-31T00:00:00+00:00",
        ),
        (
            INLINE + "simulation: {start: 2026-03-02T08:00:00Z, "
            "end: 2026-03-02T11:00:00Z}\n"
            "expect:\n  - {client: tv, no_off_between: "
            "[2026-03-02T09:00:00Z, 2026-03-02T12:00:00Z]}\n",
            "expect[0]: field 'no_off_between': expected an instant inside the "
            "simulation, from 2026-03-02T08:00:00Z to 2026-03-02T11:00:00Z, "
            "got 2026-03-02T12:00:00Z",
        ),
        (
            "timezone: UTC\nsimulation: {start: 2026-03-02T08:00:00Z, "
            "end: 2026-03-02T11:00:00Z}\n",
            "the schedule has no clients: nothing to simulate",
        ),
        (
            INLINE + "ttl_seconds: 60\nsimulation: {start: 2026-03-01T00:00:00Z, "
            "end: 2026-03-20T00:00:00Z}\n",
            "simulation: field 'end': transitions, refreshes every 30 s and "
            "actions over this span make about 54,722 steps, more than 15,000: "
            "shorten the span or raise ttl_seconds",
        ),
        (
            "timezone: UTC\nclients: {"
            + ", ".join(f"tv{n}: {{}}" for n in range(400))
            + "}\nsimulation: {start: 2026-03-02T00:00:00Z, "
            "end: 2026-03-04T00:00:00Z}\n",
            "simulation: field 'end': 400 topics' transitions, refreshes every "
            "300 s and republishing after restarts over this span make about "
            "230,400 publishes, more than 200,000: shorten the span, raise "
            "ttl_seconds or simulate fewer clients",
        ),
        (
            # Quiet at first; the timeline then adds six hourly slots.
            INLINE + "ttl_seconds: 86400\nsimulation: {start: 2026-03-01T00:00:00Z, "
            "end: 2026-04-30T00:00:00Z}\ntimeline:\n"
            + "".join(
                f"  - {{at: 2026-03-01T00:00:00Z, add: {{id: slot{m}, client: tv, "
                f"start: 2026-03-01T00:{m}0:00Z, end: 2026-03-01T00:{m}3:00Z, "
                "rrule: FREQ=HOURLY}}\n"
                for m in range(6)
            ),
            "simulation: field 'end': transitions, refreshes every 43200 s and "
            "actions over this span make about 25,908 steps, more than 15,000: "
            "shorten the span or raise ttl_seconds",
        ),
        (
            "timezone: UTC\ngroups: {"
            + ", ".join(f"g{n}: {{clients: [tv{n}]}}" for n in range(300))
            + "}\nsimulation: {start: 2026-03-02T00:00:00Z, "
            "end: 2026-03-03T12:00:00Z, group_topics: true}\n",
            "simulation: field 'end': 600 topics' transitions, refreshes every "
            "300 s and republishing after restarts over this span make about "
            "259,200 publishes, more than 200,000: shorten the span, raise "
            "ttl_seconds or simulate fewer clients",
        ),
        (
            # The TV is off throughout; its group's topic is not.
            "timezone: UTC\nttl_seconds: 86400\ngroups: {room: {clients: [tv]}}\n"
            "events:\n"
            "  - {id: dark, client: tv, desired_state: 'off', "
            "start: 2026-03-01T00:00:00Z, end: 2026-05-01T00:00:00Z}\n"
            + "".join(
                f"  - {{id: slot{m}, group: room, start: 2026-03-01T00:{m}0:00Z, "
                f"end: 2026-03-01T00:{m}3:00Z, rrule: FREQ=HOURLY}}\n"
                for m in range(6)
            )
            + "simulation: {start: 2026-03-01T00:00:00Z, "
            "end: 2026-04-30T00:00:00Z, group_topics: true}\n",
            "simulation: field 'end': transitions, refreshes every 43200 s and "
            "actions over this span make about 26,040 steps, more than 15,000: "
            "shorten the span or raise ttl_seconds",
        ),
        (
            INLINE + "simulation: {start: 2026-03-02T08:00:00Z, "
            "end: 2026-03-02T11:00:00Z}\ntimeline:\n"
            + "".join(
                f"  - {{at: 2026-03-02T08:{m // 60:02}:{m % 60:02}Z, "
                "restart: broker}\n"
                for m in range(61)
            ),
            "timeline: 61 broker restarts, more than 60: each takes about a "
            "second of real time",
        ),
    ],
    ids=[
        "misspelt-simulation",
        "under-a-second",
        "plain-schedule",
        "unknown-simulation-key",
        "bad-inline-event",
        "mixed",
        "span-too-long",
        "before-1970",
        "expectation-outside",
        "no-clients",
        "too-many-refresh-steps",
        "too-many-publishes",
        "too-many-steps-by-an-edit",
        "too-many-publishes-with-group-topics",
        "too-many-steps-on-a-group-topic",
        "too-many-broker-restarts",
    ],
)
def test_a_scenario_file_that_is_not_one_exits_2_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    text: str,
    message: str,
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(text)

    assert main([str(scenario)]) == 2
    assert capsys.readouterr().err == (
        f"python -m tvpower.sim: error: {scenario}: {message}\n"
    )


async def test_an_inline_scenario_is_a_schedule_for_the_publisher_too(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "office.yaml"
    scenario.write_text(
        INLINE
        + "simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T11:00:00Z}\n"
        "expect:\n"
        "  - {client: tv, at: 2026-03-02T09:30:00Z, state: 'on'}\n"
        "  - {client: tv, at: 2026-03-02T10:01:00Z, state: 'off'}\n"
    )

    result = await simulate(scenario)
    schedule = load_schedule(scenario)

    assert result.violations.empty, result.violations.to_string()
    assert [e.id for e in schedule.events] == ["talk"]


async def test_the_checks_catch_what_a_faulty_run_would_show() -> None:
    recording = await record(load_scenario(BROKEN))
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    off = {
        "schema_version": "1.0",
        "intent_id": "00000000-0000-5000-8000-000000000000",
        "issued_at": "2026-03-02T09:30:00Z",
        "expires_at": "2026-03-02T09:40:00Z",
        "target": {"client_id": "lobby-left", "group_id": "lobby"},
        "power": {
            "desired_state": "off",
            "reason": "no_active_event",
            "grace_seconds": 30,
        },
        "event_window": None,
    }
    topic = "infoscreen/lobby-left/power/intent"
    recording.receipts += [
        Receipt(at, "lobby-left", topic, "live", False, True, "", off),
        Receipt(at, "lobby-left", topic, "live", False, False, "schema: bad", {}),
    ]
    # A log that misses every publish after the first pass.
    recording.log_lines[:] = recording.log_lines[:3]

    checks = set(verify(recording).violations["check"])

    assert {"on_window", "payload", "audit", "expect"} <= checks


def test_run_scenario_is_the_synchronous_way_in() -> None:
    result = run_scenario(BROKEN)

    assert not result.passed
    assert result.scenario == "sim-broken-expectation"
    assert result.clients == 3


def test_tables_can_be_written_as_parquet(
    tmp_path: Path, restore_logging: None
) -> None:
    status = main([str(BROKEN), "--out", str(tmp_path), "--format", "parquet"])

    assert status == 1
    received = pd.read_parquet(tmp_path / "sim-broken-expectation-received.parquet")
    csv_status = main([str(BROKEN), "--out", str(tmp_path / "csv")])
    assert csv_status == 1
    from_csv = pd.read_csv(tmp_path / "csv" / "sim-broken-expectation-received.csv")
    assert len(received) == len(from_csv) > 0
    assert list(received.columns) == list(from_csv.columns)


OUTAGE = ROOT / "scenarios" / "publisher-outage.yaml"


async def test_without_the_window_policy_an_outage_darkens_the_tvs(
    tmp_path: Path,
) -> None:
    text = OUTAGE.read_text().replace("expiry_policy: window", "expiry_policy: ttl")
    scenario = tmp_path / "outage-ttl.yaml"
    scenario.write_text(text.replace("schedules/lobby.yaml", str(LOBBY)))

    result = await simulate(scenario)

    # The last "on" before the 09:30 stop expires at 09:40 (ttl 600 s); the
    # clients take that for "off" and switch off a grace (30 s) later.
    dark = result.violations[result.violations["check"] == "on_window"]
    off_at = pd.Timestamp("2026-03-02T09:40:30Z")
    assert set(dark["client_id"]) == {"lobby-left", "lobby-right", "kiosk"}
    assert (dark["at"] == off_at).all()
    power = result.power[result.power["client_id"] == "lobby-left"]
    assert power.loc[power["start"] == off_at, "power"].item() == "off"
    # Started again at 10:10, the publisher switches them back on at once.
    back_on = pd.Timestamp("2026-03-02T10:10:00Z")
    assert power.loc[power["start"] == back_on, "power"].item() == "on"


def _client(on_expiry: str) -> SimClient:
    return SimClient("tv", "hall", present=True, since=T0, on_expiry=on_expiry)


def _intent(state: str, issued: datetime, minutes: int) -> dict[str, Any]:
    expires = issued + timedelta(minutes=minutes)
    return {
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
        "power": {"desired_state": state, "reason": "r", "grace_seconds": 30},
    }


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("on_expiry", "after"), [("keep", "on"), ("off", "off")])
def test_a_client_takes_an_expired_intent_as_its_setting_says(
    on_expiry: str, after: str
) -> None:
    client = _client(on_expiry)
    client.learn(_intent("on", T0, 10), own=True, now=T0)

    deadline = client.deadline()
    expiry = T0 + timedelta(minutes=10)
    assert deadline == (expiry if on_expiry == "off" else None)
    client.tick(expiry)
    client.tick(expiry + timedelta(seconds=30))

    assert client.power == after


def test_a_client_prefers_its_own_intent_while_it_holds() -> None:
    client = _client("keep")
    client.learn(_intent("on", T0, 10), own=True, now=T0)
    client.learn(_intent("off", T0, 60), own=False, now=T0)
    assert client.off_at is None

    # Its own expires: the group's "off" holds, and the TV goes off a grace later.
    expiry = T0 + timedelta(minutes=10)
    client.tick(expiry)
    client.tick(expiry + timedelta(seconds=30))
    assert client.power == "off"


def test_an_out_that_cannot_take_the_tables_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    copy = tmp_path / "again" / BROKEN.name
    copy.parent.mkdir()
    copy.write_text(
        BROKEN.read_text().replace("../../scenarios", str(ROOT / "scenarios"))
    )

    assert main([str(BROKEN), "--out", str(afile)]) == 2
    assert main([str(BROKEN), str(copy), "--out", str(tmp_path / "out")]) == 2
    with pytest.raises(SystemExit) as empty:
        main([str(BROKEN), "--out", ""])

    err = capsys.readouterr()
    assert empty.value.code == 2
    assert err.out == ""  # nothing ran
    assert err.err.splitlines()[:2] == [
        f"python -m tvpower.sim: error: --out: cannot make {afile}: File exists",
        "python -m tvpower.sim: error: --out: two scenarios named "
        "sim-broken-expectation: their tables would overwrite each other",
    ]
    assert err.err.splitlines()[-1] == (
        "python -m tvpower.sim: error: argument --out: expected a directory, "
        "got an empty path"
    )


def test_write_tables_refuses_what_would_lose_a_table(tmp_path: Path) -> None:
    result = run_scenario(BROKEN)

    with pytest.raises(ValueError, match="two scenarios named sim-broken"):
        write_tables([result, result], tmp_path)
    with pytest.raises(ValueError, match="expected csv or parquet, got 'json'"):
        write_tables([result], tmp_path, "json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a directory, got an empty path"):
        write_tables([result], "")
    assert list(tmp_path.iterdir()) == []


SUBSECOND = """timezone: UTC
clients: {tv: {}}
events:
  - {id: talk, client: tv, start: 2026-03-02T09:00:00Z, end: 2026-03-02T10:00:00Z}
simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T11:00:00Z}
timeline:
  - {at: 2026-03-02T09:30:00.250Z, cancel: talk}
"""


def test_csv_keeps_instants_between_seconds(
    tmp_path: Path, restore_logging: None
) -> None:
    scenario = tmp_path / "subsecond.yaml"
    scenario.write_text(SUBSECOND)

    assert main([str(scenario), "--out", str(tmp_path / "out")]) == 0

    power = pd.read_csv(tmp_path / "out" / "subsecond-power.csv")
    assert "2026-03-02T09:30:30.250000Z" in set(power["start"])
    lead_time = str(ROOT / "scenarios" / "lead-time.yaml")
    assert main([lead_time, "--out", str(tmp_path / "whole")]) == 0
    whole = pd.read_csv(tmp_path / "whole" / "lead-time-power.csv")
    assert whole["start"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()


def test_every_table_keeps_its_instants_as_timestamps_when_empty(
    tmp_path: Path, restore_logging: None
) -> None:
    passing = ROOT / "scenarios" / "lead-time.yaml"

    assert main([str(passing), "--out", str(tmp_path), "--format", "parquet"]) == 0

    columns = {"received": ["at"], "power": ["start", "end"], "violations": ["at"]}
    for table, instants in columns.items():
        frame = pd.read_parquet(tmp_path / f"lead-time-{table}.parquet")
        assert (table == "violations") == frame.empty
        for column in instants:
            assert frame[column].dtype == "datetime64[us, UTC]", column
    violations = pd.read_parquet(tmp_path / "lead-time-violations.parquet")
    for column in ("check", "client_id", "detail"):
        assert pd.api.types.is_string_dtype(violations[column].dtype), column


def test_a_table_that_cannot_be_written_is_one_line_after_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    # Found only when writing: a directory where a table's file would go.
    blocked = tmp_path / "out" / "sim-broken-expectation-power.csv"
    blocked.mkdir(parents=True)

    status = main([str(BROKEN), "--out", str(tmp_path / "out")])

    captured = capsys.readouterr()
    assert status == 2
    assert "sim-broken-expectation" in captured.out  # the summary came first
    assert captured.err == (
        f"python -m tvpower.sim: error: --out: cannot write {blocked}: Is a directory\n"
    )
    assert (tmp_path / "out" / "summary.csv").is_file()


@pytest.mark.parametrize(
    ("timeline", "message"),
    [
        (
            "  - {at: 2026-03-02T09:00:00Z, start: publisher}\n",
            "timeline[0]: field 'start': the publisher is already running then",
        ),
        (
            "  - {at: 2026-03-02T09:00:00Z, stop: publisher}\n"
            "  - {at: 2026-03-02T09:10:00Z, restart: publisher}\n",
            "timeline[1]: field 'restart': the publisher is already stopped then",
        ),
        (
            "  - {at: 2026-03-02T09:00:00Z, stop: broker}\n",
            "timeline[0]: field 'stop': expected publisher (the broker can only "
            "restart), got 'broker'",
        ),
    ],
    ids=["start-running", "restart-stopped", "stop-broker"],
)
def test_publisher_stops_and_starts_must_alternate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    timeline: str,
    message: str,
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        f"schedule: {LOBBY}\n"
        "simulation: {start: 2026-03-02T08:30:00Z, end: 2026-03-02T10:00:00Z}\n"
        "timeline:\n" + timeline
    )

    assert main([str(scenario)]) == 2
    assert capsys.readouterr().err == (
        f"python -m tvpower.sim: error: {scenario}: {message}\n"
    )


def test_a_client_falls_back_to_its_group_when_its_own_intent_expires() -> None:
    client = _client("keep")
    client.learn(_intent("on", T0, 10), own=True, now=T0)
    client.learn(_intent("off", T0, 60), own=False, now=T0)

    # The run steps to the instant the client's own intent expires.
    assert client.deadline() == T0 + timedelta(minutes=10)


SAME_INSTANT = """\
timezone: UTC
clients: {tv: {}}
events:
  - {id: early, client: tv, start: 2026-03-02T10:00:00Z, end: 2026-03-02T12:00:00Z}
  - {id: talk, client: tv, start: 2026-03-02T13:00:00Z, end: 2026-03-02T14:00:00Z}
simulation: {start: 2026-03-02T09:00:00Z, end: 2026-03-02T15:00:00Z}
timeline:
  - {at: 2026-03-02T12:00:00Z, add: {id: bridge, client: tv,
      start: 2026-03-02T12:00:00Z, end: 2026-03-02T13:00:00Z}}
  - {at: 2026-03-02T13:00:00Z, cancel: talk}
"""


async def test_an_edit_is_in_force_at_its_own_instant(tmp_path: Path) -> None:
    scenario = tmp_path / "same-instant.yaml"
    scenario.write_text(SAME_INSTANT)

    result = await simulate(scenario)

    # At 12:00 the bridge is in force before the publisher acts: no "off"
    # between the early event and the bridge. At 13:00 the cancelled talk
    # is gone before it would begin: "off" from then, and nothing else.
    received = result.received[result.received["problem"] == ""]
    states = received.groupby("desired_state")["at"].agg(["min", "max"])
    assert states.loc["on", "max"] < pd.Timestamp("2026-03-02T13:00:00Z")
    assert states.loc["off", "min"] == pd.Timestamp("2026-03-02T09:00:00Z")
    offs = received[received["desired_state"] == "off"]["at"]
    assert not offs.between(
        pd.Timestamp("2026-03-02T10:00:00Z"),
        pd.Timestamp("2026-03-02T12:59:59Z"),
    ).any()
    power = result.power[result.power["power"] == "on"]
    assert power["start"].min() == pd.Timestamp("2026-03-02T10:00:00Z")
    assert power["end"].max() == pd.Timestamp("2026-03-02T13:00:30Z")
    assert len(power) == 1
    assert result.passed


async def test_many_clients_reconnect_at_one_instant(tmp_path: Path) -> None:
    # The embedded broker used to fail one of the crowd's CONNECTs.
    clients = [f"tv{n:03}" for n in range(120)]
    rounds = [("10", "disconnect"), ("20", "reconnect")]
    rounds += [("30", "disconnect"), ("40", "reconnect")]
    moves = "".join(
        f"  - {{at: 2026-03-02T09:{minute}:00Z, {kind}: {client}}}\n"
        for minute, kind in rounds
        for client in clients
    )
    scenario = tmp_path / "crowd.yaml"
    scenario.write_text(
        "timezone: UTC\n"
        f"groups: {{hall: {{clients: [{', '.join(clients)}]}}}}\n"
        "events:\n"
        "  - {id: show, group: hall, start: 2026-03-02T09:00:00Z,"
        " end: 2026-03-02T10:00:00Z}\n"
        "simulation: {start: 2026-03-02T08:30:00Z, end: 2026-03-02T10:30:00Z}\n"
        "timeline:\n" + moves
    )

    result = await simulate(scenario)

    assert result.passed, result.violations.to_string()
    learned = result.received[result.received["via"] == "reconnect"]
    assert sorted(learned["client_id"]) == sorted(clients * 2)
    assert set(learned["desired_state"]) == {"on"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--format", "parquet"],
            "--format: there are no tables to write without --out",
        ),
        (["--ou", "x"], "unrecognized arguments: --ou x"),
    ],
    ids=["format-without-out", "abbreviated"],
)
def test_options_that_would_do_nothing_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(BROKEN), *argv])

    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"python -m tvpower.sim: error: {message}"
    )
