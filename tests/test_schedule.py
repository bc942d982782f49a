"""Loading schedule files: the shipped scenarios, the model, and bad input.

Every bad input must raise a ScheduleError whose message names the file as
given, the entry and the field, and says what was expected and what was
found; the messages are asserted in full.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import icalendar
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvpower.errors import ScheduleError
from tvpower.schedule import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_TTL_SECONDS,
    Schedule,
    load_schedule,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
BERLIN = "Europe/Berlin"

Write = Callable[..., str]

#: A valid schedule that the bad-input cases below add to or break.
BASE = """\
timezone: Europe/Berlin
groups:
  machbar:
    clients: [machbar-entrance]
"""

#: One event of machbar, with room for one more key.
TALK = (
    "  - {{id: talk, group: machbar, start: 2019-03-05T14:00:00, "
    "end: 2019-03-05T15:00:00{extra}}}\n"
)

OR_ISO = "or an ISO 8601 duration like 'PT15M'"
RANGE = "an instant from 1970-01-01T00:00:00Z to 2200-01-01T00:00:00Z"
RRULE = "an RFC 5545 RRULE value like 'FREQ=WEEKLY;BYDAY=TU'"
DENSITY = (
    "expected at most 24 occurrences a day (FREQ=MINUTELY needs INTERVAL=60 or more)"
)

TOPIC_LEVEL = (
    "one MQTT topic level (1 to 200 bytes of UTF-8, without '/', '+', '#', "
    "control characters or noncharacters)"
)


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """Write files into a fresh working directory; give back the relative path.

    Errors then show the path as a user typed it: ``schedule.yaml``.
    """
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "schedule.yaml") -> str:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    return write


def error_of(path: str) -> str:
    """The message of the ScheduleError that loading ``path`` raises."""
    with pytest.raises(ScheduleError) as caught:
        load_schedule(path)
    return str(caught.value)


def talk(extra: str = "") -> str:
    """BASE with one event, ``extra`` added to its keys."""
    return BASE + "events:\n" + TALK.format(extra=extra)


# --- The shipped scenarios --------------------------------------------------


def test_makerspace_scenario_is_one_room_with_two_tvs_and_a_calendar() -> None:
    schedule = load_schedule(SCENARIOS / "makerspace-potsdam.yaml")

    machbar = schedule.groups["machbar"]
    assert machbar.clients == ("machbar-entrance", "machbar-hall")
    assert str(machbar.timezone) == BERLIN
    assert set(schedule.clients) == {"machbar-entrance", "machbar-hall"}
    assert all(c.group_id == "machbar" for c in schedule.clients.values())
    [source] = machbar.calendars
    assert source.path == SCENARIOS / "makerspace-potsdam-google.ics"
    assert (source.transparent, source.all_day) == (False, False)
    assert isinstance(source.calendar, icalendar.Calendar)
    assert source.calendar["X-WR-TIMEZONE"] == BERLIN


def test_school_scenario_is_one_lobby_in_chicago() -> None:
    schedule = load_schedule(SCENARIOS / "school-chicago.yaml")

    school = schedule.groups["school"]
    assert school.clients == ("school-lobby",)
    assert str(school.timezone) == "America/Chicago"
    assert str(schedule.clients["school-lobby"].timezone) == "America/Chicago"
    [source] = school.calendars
    assert source.calendar["X-WR-CALNAME"] == "School"


def test_shipped_calendars_are_the_real_inputs_unchanged() -> None:
    real = Path("/work/shared/real-inputs")
    if not real.is_dir():
        pytest.skip("the real inputs are not on this machine")
    for name in ("makerspace-potsdam-google.ics", "school-chicago-google.ics"):
        assert (SCENARIOS / name).read_bytes() == (real / name).read_bytes()


@pytest.fixture(scope="module")
def office() -> Schedule:
    return load_schedule(SCENARIOS / "example-office.yaml")


def test_example_office_resolves_every_clients_settings(office: Schedule) -> None:
    clients = office.clients
    assert list(clients) == [
        "lobby-left",
        "lobby-right",
        "room-3a",
        "room-3b",
        "canteen",
    ]
    # merge_gap "PT15M" on the lobby group, inherited by its clients.
    assert clients["lobby-left"].merge_gap_seconds == 15 * 60
    assert not clients["lobby-left"].own_settings
    # floor-3 sets lead and grace; room-3b its own lead.
    assert (clients["room-3a"].lead_seconds, clients["room-3a"].grace_seconds) == (
        120,
        60,
    )
    assert (clients["room-3b"].lead_seconds, clients["room-3b"].grace_seconds) == (
        300,
        60,
    )
    assert clients["room-3b"].own_settings
    # canteen is in no group, in its own zone, with schedule defaults.
    canteen = clients["canteen"]
    assert canteen.group_id is None
    assert str(canteen.timezone) == "Europe/London"
    assert canteen.grace_seconds == DEFAULT_GRACE_SECONDS
    assert office.ttl_seconds == DEFAULT_TTL_SECONDS


def test_example_office_times_keep_how_they_were_written(office: Schedule) -> None:
    events = {event.id: event for event in office.events}
    local = events["welcome-morning"].start
    assert str(local.tzinfo) == BERLIN
    assert local.astimezone(UTC) == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert events["visitor-briefing"].start.tzinfo == UTC
    assert events["visitor-briefing"].end.utcoffset() == timedelta(hours=1)
    # The lunch menu is the canteen's, so its local time is London's.
    assert str(events["lunch-menu"].start.tzinfo) == "Europe/London"
    assert str(events["open-day-canteen"].start.tzinfo) == BERLIN
    assert events["maintenance-3a"].desired_state == "off"
    assert events["open-day-canteen"].desired_state == "on"
    assert len(events["standup"].exdates) == 2
    assert events["standup"].entry == "events[2] (id 'standup')"


# --- Settings and times -----------------------------------------------------


def test_settings_resolve_client_then_group_then_schedule_then_default(
    write: Write,
) -> None:
    path = write("""\
        timezone: UTC
        lead_seconds: 5
        groups:
          g:
            clients: [a, b]
            lead_seconds: 7
            grace_seconds: 11
        clients:
          a: {lead_seconds: 9}
          c:
        """)
    clients = load_schedule(path).clients

    assert (clients["a"].lead_seconds, clients["a"].grace_seconds) == (9, 11)
    assert (clients["b"].lead_seconds, clients["b"].grace_seconds) == (7, 11)
    assert (clients["c"].lead_seconds, clients["c"].grace_seconds) == (5, 30)
    assert [clients[c].own_settings for c in "abc"] == [True, False, False]


def test_a_client_entry_may_join_a_group_by_naming_it(write: Write) -> None:
    path = write("""\
        timezone: UTC
        groups:
          g: {clients: [a]}
        clients:
          a: {group: g}
          b: {group: g}
        """)
    schedule = load_schedule(path)

    assert schedule.groups["g"].clients == ("a", "b")
    assert schedule.clients["b"].group_id == "g"


@pytest.mark.parametrize(
    ("merge_gap", "seconds"),
    [("0", 0), ("90", 90), ("PT15M", 900), ("PT1H30M", 5400), ("P1DT1S", 86401)],
)
def test_merge_gap_takes_seconds_or_an_iso_duration(
    write: Write, merge_gap: str, seconds: int
) -> None:
    schedule = load_schedule(write(BASE + f"merge_gap: {merge_gap}\n"))

    assert schedule.groups["machbar"].merge_gap_seconds == seconds


def test_event_zone_comes_from_event_then_owner_then_schedule(write: Write) -> None:
    path = write("""\
        timezone: Asia/Tokyo
        groups:
          g: {clients: [a], timezone: America/Chicago}
        clients:
          b: {timezone: Europe/London}
        events:
          - {id: e1, group: g, start: 2019-01-01T10:00, end: 2019-01-01T11:00}
          - {id: e2, client: a, start: 2019-01-01T10:00, end: 2019-01-01T11:00}
          - {id: e3, client: b, start: 2019-01-01T10:00, end: 2019-01-01T11:00}
          - {id: e4, client: b, start: 2019-01-01T10:00, end: 2019-01-01T11:00,
             timezone: Australia/Sydney}
        """)
    zones = [str(event.start.tzinfo) for event in load_schedule(path).events]

    assert zones == [
        "America/Chicago",
        "America/Chicago",
        "Europe/London",
        "Australia/Sydney",
    ]


def test_local_time_in_the_spring_gap_moves_forward(write: Write) -> None:
    # Europe/Berlin skips 02:00-03:00 on 2019-03-31: 02:30 is read with the
    # offset before the gap, +01:00, which is 03:30 CEST.
    path = write(
        BASE + "events:\n  - {id: e, group: machbar, "
        "start: 2019-03-31T02:30:00, end: 2019-03-31T04:00:00}\n"
    )
    [event] = load_schedule(path).events

    assert event.start.astimezone(UTC) == datetime(2019, 3, 31, 1, 30, tzinfo=UTC)
    assert event.start.fold == 0


def test_ambiguous_local_time_means_its_first_occurrence(write: Write) -> None:
    # America/New_York passes 01:00-02:00 twice on 2019-11-03; the first
    # time still in EDT (-04:00).
    path = write("""\
        timezone: America/New_York
        clients: {lobby: }
        events:
          - {id: e, client: lobby, start: 2019-11-03T01:30, end: 2019-11-03T03:00}
        """)
    [event] = load_schedule(path).events

    assert event.start.astimezone(UTC) == datetime(2019, 11, 3, 5, 30, tzinfo=UTC)


def test_exdates_name_instants_local_ones_in_the_event_zone(write: Write) -> None:
    # Europe/Berlin passes 02:00-03:00 twice on 2026-10-25: first in CEST
    # (+02:00), then in CET (+01:00).
    path = write("""\
        timezone: Europe/Berlin
        clients: {lobby: }
        events:
          - {id: e, client: lobby, start: 2026-10-23T02:30, end: 2026-10-23T03:00,
             rrule: FREQ=DAILY, exdates: ["2026-10-23T02:30:00Z",
             "2026-10-25T02:30:00+01:00", "2026-10-25T02:30"]}
        """)
    [event] = load_schedule(path).events

    assert [exdate.astimezone(UTC) for exdate in event.exdates] == [
        datetime(2026, 10, 23, 2, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    ]


def test_fractional_seconds_are_floored(write: Write) -> None:
    path = write(
        BASE + "events:\n  - {id: e, group: machbar, "
        "start: '2019-03-05T14:00:00.999+01:00', end: 2019-03-05T15:00:00.5Z}\n"
    )
    [event] = load_schedule(path).events

    assert event.start == datetime(2019, 3, 5, 14, tzinfo=timezone(timedelta(hours=1)))
    assert event.end == datetime(2019, 3, 5, 15, tzinfo=UTC)


def test_on_and_off_stay_words_not_booleans(write: Write) -> None:
    path = write("""\
        timezone: UTC
        clients: {lobby: }
        events:
          - {id: e, client: lobby, desired_state: off, start: 2019-01-01T10:00,
             end: 2019-01-01T11:00}
        """)
    [event] = load_schedule(path).events

    assert event.desired_state == "off"
    assert event.owner_kind == "client"


# --- Bad input: exact messages ----------------------------------------------

BAD_INPUT = {
    "unknown key": (
        BASE + "event: []\n",
        "schedule.yaml: field 'event': unknown key; expected one of clients, events, "
        "grace_seconds, groups, lead_seconds, merge_gap, timezone, ttl_seconds, "
        "expect, simulation, timeline",
    ),
    "a scenario naming its schedule": (
        "schedule: lobby.yaml\nsimulation: {start: 2026-03-02T08:00:00Z}\n",
        "schedule.yaml: field 'schedule': a scenario that names its schedule file; "
        "give that file instead",
    ),
    "unknown key in a group": (
        BASE + "    calendar: [x.ics]\n",
        "schedule.yaml: groups.machbar: field 'calendar': unknown key; expected one "
        "of calendars, clients, grace_seconds, lead_seconds, merge_gap, timezone",
    ),
    "missing timezone": (
        "groups: {}\n",
        "schedule.yaml: field 'timezone': missing; "
        "expected an IANA time zone name like 'Europe/Berlin'",
    ),
    "bad zone name": (
        "timezone: Europe/Berlinn\n",
        "schedule.yaml: field 'timezone': "
        "expected an IANA time zone name like 'Europe/Berlin', got 'Europe/Berlinn'",
    ),
    "zone directory": (
        BASE + "    timezone: America\n",
        "schedule.yaml: groups.machbar: field 'timezone': "
        "expected an IANA time zone name like 'Europe/Berlin', got 'America'",
    ),
    "end before start": (
        talk().replace("end: 2019-03-05T15", "end: 2019-03-05T13"),
        "schedule.yaml: events[0] (id 'talk'): field 'end': "
        "must be after start 2019-03-05T14:00:00+01:00, got 2019-03-05T13:00:00+01:00",
    ),
    "end equal to start, in other words": (
        talk()
        .replace("start: 2019-03-05T14:00:00", "start: 2019-03-05T14:00:00Z")
        .replace("end: 2019-03-05T15:00:00", "end: 2019-03-05T15:00:00+01:00"),
        "schedule.yaml: events[0] (id 'talk'): field 'end': "
        "must be after start 2019-03-05T14:00:00+00:00, got 2019-03-05T15:00:00+01:00",
    ),
    "bad rrule": (
        talk(", rrule: FREQ=SOMETIMES"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected an RFC 5545 "
        "RRULE value like 'FREQ=WEEKLY;BYDAY=TU', got 'FREQ=SOMETIMES': "
        "Expected frequency, got: SOMETIMES",
    ),
    "rrule without FREQ": (
        talk(", rrule: BYDAY=TU"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected an RFC 5545 "
        "RRULE value like 'FREQ=WEEKLY;BYDAY=TU', got 'BYDAY=TU': FREQ is missing",
    ),
    "rrule with a local UNTIL": (
        talk(", rrule: 'FREQ=WEEKLY;UNTIL=20190601T000000'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected an RFC 5545 "
        "RRULE value like 'FREQ=WEEKLY;BYDAY=TU', got "
        "'FREQ=WEEKLY;UNTIL=20190601T000000': "
        "RRULE UNTIL values must be specified in UTC when DTSTART is timezone-aware",
    ),
    "unknown group reference": (
        talk().replace("group: machbar", "group: machbr"),
        "schedule.yaml: events[0] (id 'talk'): field 'group': "
        "expected a declared group ('machbar'), got 'machbr'",
    ),
    "unknown client reference": (
        talk().replace("group: machbar", "client: lobby"),
        "schedule.yaml: events[0] (id 'talk'): field 'client': "
        "expected a declared client ('machbar-entrance'), got 'lobby'",
    ),
    "both group and client": (
        talk(", client: machbar-entrance"),
        "schedule.yaml: events[0] (id 'talk'): "
        "expected exactly one of 'group' and 'client', got both",
    ),
    "neither group nor client": (
        talk().replace("group: machbar, ", ""),
        "schedule.yaml: events[0] (id 'talk'): "
        "expected exactly one of 'group' and 'client', got neither",
    ),
    "desired_state on a group event": (
        talk(", desired_state: off"),
        "schedule.yaml: events[0] (id 'talk'): field 'desired_state': "
        "allowed only on client events (overrides), got 'off' on a group event",
    ),
    "desired_state neither on nor off": (
        talk(", desired_state: dim").replace(
            "group: machbar", "client: machbar-entrance"
        ),
        "schedule.yaml: events[0] (id 'talk'): field 'desired_state': "
        "expected 'on' or 'off', got 'dim'",
    ),
    "group id with a slash": (
        "timezone: UTC\ngroups:\n  a/b: {clients: [x]}\n",
        f"schedule.yaml: groups: expected each group id to be {TOPIC_LEVEL}, got 'a/b'",
    ),
    "client id '+' in a group": (
        "timezone: UTC\ngroups:\n  g: {clients: ['+']}\n",
        "schedule.yaml: groups.g: field 'clients': "
        f"expected each client id to be {TOPIC_LEVEL}, got '+'",
    ),
    "client id '#'": (
        "timezone: UTC\nclients:\n  '#': {}\n",
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, got '#'",
    ),
    "empty client id": (
        "timezone: UTC\nclients:\n  '': {}\n",
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, got ''",
    ),
    "client id with NUL": (
        'timezone: UTC\ngroups:\n  g: {clients: ["a\\0b"]}\n',
        "schedule.yaml: groups.g: field 'clients': "
        f"expected each client id to be {TOPIC_LEVEL}, got 'a\\x00b'",
    ),
    "client id that is not a string": (
        "timezone: UTC\ngroups:\n  g: {clients: [7]}\n",
        "schedule.yaml: groups.g: field 'clients': "
        f"expected each client id to be {TOPIC_LEVEL}, got 7",
    ),
    "'groups' as a client id": (
        "timezone: UTC\nclients:\n  groups: {}\n",
        "schedule.yaml: clients: expected a client id other than 'groups' "
        "(reserved for the group topics), got 'groups'",
    ),
    "'groups' as a client id in a group": (
        "timezone: UTC\ngroups:\n  g: {clients: [groups]}\n",
        "schedule.yaml: groups.g: field 'clients': expected a client id other than "
        "'groups' (reserved for the group topics), got 'groups'",
    ),
    "client in two groups": (
        "timezone: UTC\ngroups:\n  a: {clients: [x]}\n  b: {clients: [x]}\n",
        "schedule.yaml: groups.b: field 'clients': expected each client in at most "
        "one group, got 'x' again (already in group 'a')",
    ),
    "client entry naming another group": (
        "timezone: UTC\ngroups:\n  a: {clients: [x]}\n  b: {}\n"
        "clients:\n  x: {group: b}\n",
        "schedule.yaml: clients.x: field 'group': "
        "expected 'a', the group that lists this client, got 'b'",
    ),
    "client entry naming no declared group": (
        "timezone: UTC\nclients:\n  x: {group: nope}\n",
        "schedule.yaml: clients.x: field 'group': "
        "expected a declared group (none is declared), got 'nope'",
    ),
    "missing calendar file": (
        BASE + "    calendars: [missing.ics]\n",
        "schedule.yaml: groups.machbar: field 'calendars': "
        "expected a readable iCalendar file, got 'missing.ics': "
        "No such file or directory",
    ),
    "calendar setting that is not a boolean": (
        BASE + "    calendars: [{path: x.ics, all_day: yes}]\n",
        "schedule.yaml: groups.machbar.calendars[0]: field 'all_day': "
        "expected true or false, got 'yes'",
    ),
    "YAML syntax error": (
        "timezone: UTC\ngroups:\n  g:\n    clients: [x\n",
        "schedule.yaml: invalid YAML at line 5, column 1: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence at line 4, column 14)",
    ),
    "a key given twice": (
        BASE + "groups: {}\n",
        "schedule.yaml: invalid YAML at line 5, column 1: found the key 'groups' "
        "twice (while reading a mapping at line 1, column 1)",
    ),
    "not a mapping": (
        "- timezone: UTC\n",
        "schedule.yaml: expected a mapping with the keys clients, events, "
        "grace_seconds, groups, lead_seconds, merge_gap, timezone, ttl_seconds, "
        "got [{'timezone': 'UTC'}]",
    ),
    "empty file": (
        "",
        "schedule.yaml: expected a mapping with the keys clients, events, "
        "grace_seconds, groups, lead_seconds, merge_gap, timezone, ttl_seconds, "
        "got an empty file",
    ),
    "negative merge_gap": (
        BASE + "    merge_gap: -5\n",
        "schedule.yaml: groups.machbar: field 'merge_gap': expected whole seconds "
        f"from 0 to 604800 (7 days) {OR_ISO}, got -5",
    ),
    "merge_gap in months": (
        BASE + "merge_gap: P1M\n",
        "schedule.yaml: field 'merge_gap': expected whole seconds from 0 to 604800 "
        f"(7 days) {OR_ISO}, got 'P1M'",
    ),
    "a boolean as seconds": (
        BASE + "clients:\n  machbar-entrance: {grace_seconds: true}\n",
        "schedule.yaml: clients.machbar-entrance: field 'grace_seconds': "
        "expected whole seconds from 0 to 604800 (7 days), got True",
    ),
    "ttl too short": (
        BASE + "ttl_seconds: 30\n",
        "schedule.yaml: field 'ttl_seconds': "
        "expected whole seconds from 60 to 86400 (1 day), got 30",
    ),
    "duplicate event ids": (
        talk() + TALK.format(extra="").replace("05T", "06T"),
        "schedule.yaml: events[1] (id 'talk'): field 'id': "
        "expected a unique id, got 'talk', already used by events[0] (id 'talk')",
    ),
    "a date without a time": (
        talk().replace("start: 2019-03-05T14:00:00", "start: 2019-03-05"),
        "schedule.yaml: events[0] (id 'talk'): field 'start': expected an ISO 8601 "
        "date and time like '2019-03-05T14:00:00+01:00', got '2019-03-05'",
    ),
    "missing start": (
        talk().replace("start: 2019-03-05T14:00:00, ", ""),
        "schedule.yaml: events[0] (id 'talk'): field 'start': "
        "missing; expected an ISO 8601 date and time",
    ),
    "missing event id": (
        talk().replace("id: talk, ", ""),
        "schedule.yaml: events[0]: field 'id': missing; expected a non-empty string",
    ),
    "exdates without rrule": (
        talk(", exdates: [2019-03-05T14:00:00]"),
        "schedule.yaml: events[0] (id 'talk'): field 'exdates': "
        "allowed only together with 'rrule'",
    ),
    "bad exdate": (
        talk(", rrule: FREQ=DAILY, exdates: [tomorrow]"),
        "schedule.yaml: events[0] (id 'talk'): field 'exdates[0]': expected an ISO "
        "8601 date and time like '2019-03-05T14:00:00+01:00', got 'tomorrow'",
    ),
    # Nine levels of ten aliases each: a billion nodes from a few hundred bytes.
    "aliases that blow the file up": (
        BASE
        + "merge_gap: [&a0 [x, x, x, x, x, x, x, x, x, x]"
        + "".join(f", &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9))
        + "]\n",
        "schedule.yaml: invalid YAML at line 1, column 1: aliases expand the "
        "document to 1,234,567,911 nodes, more than 100,000 beyond its own",
    ),
    # Six lists, each nine deep around the one before: 55 levels from 10.
    "aliases that nest too deep": (
        BASE
        + "merge_gap: [&a0 [[[[[[[[[x]]]]]]]]]"
        + "".join(f", &a{i} [[[[[[[[[*a{i - 1}]]]]]]]]]" for i in range(1, 6))
        + "]\n",
        "schedule.yaml: invalid YAML at line 5, column 154: aliases nest it more "
        "than 50 levels deep",
    ),
    "an alias inside the node it names": (
        BASE + "merge_gap: &loop [1, *loop]\n",
        "schedule.yaml: invalid YAML at line 5, column 12: an alias inside the "
        "node it names",
    ),
    "events not a list": (
        BASE + "events: {}\n",
        "schedule.yaml: field 'events': expected a list of events, got {}",
    ),
    "an event that is no mapping": (
        BASE + "events:\n  - [talk]\n",
        "schedule.yaml: events[0]: expected a mapping, got ['talk']",
    ),
    # Ids that would break the MQTT connection of the whole fleet.
    "client id with a C0 control character": (
        'timezone: UTC\nclients:\n  "a\\x01b": {}\n',
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        "got 'a\\x01b'",
    ),
    "client id with a newline, in a group": (
        'timezone: UTC\ngroups:\n  g: {clients: ["a\\nb"]}\n',
        "schedule.yaml: groups.g: field 'clients': "
        f"expected each client id to be {TOPIC_LEVEL}, got 'a\\nb'",
    ),
    "group id with DEL": (
        'timezone: UTC\ngroups:\n  "a\\x7fb": {}\n',
        f"schedule.yaml: groups: expected each group id to be {TOPIC_LEVEL}, "
        "got 'a\\x7fb'",
    ),
    "client id with a C1 control character": (
        'timezone: UTC\nclients:\n  "a\\x85b": {}\n',
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        "got 'a\\x85b'",
    ),
    "client id with the noncharacter U+FFFE": (
        'timezone: UTC\nclients:\n  "a\\uFFFEb": {}\n',
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        "got 'a\\ufffeb'",
    ),
    "client id with the noncharacter U+FDD0": (
        'timezone: UTC\nclients:\n  "a\\uFDD0b": {}\n',
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        "got 'a\\ufdd0b'",
    ),
    "client id with the noncharacter U+10FFFF": (
        'timezone: UTC\nclients:\n  "a\\U0010FFFFb": {}\n',
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        "got 'a\\U0010ffffb'",
    ),
    "client id with a lone surrogate": (
        'timezone: UTC\nclients:\n  "a\\ud800b": {}\n',
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        "got 'a\\ud800b'",
    ),
    "client id of 201 bytes": (
        f"timezone: UTC\ngroups:\n  g: {{clients: [{'x' * 201}]}}\n",
        "schedule.yaml: groups.g: field 'clients': "
        f"expected each client id to be {TOPIC_LEVEL}, got '{'x' * 80}'... (201 bytes)",
    ),
    "client id of 101 two-byte characters": (
        f"timezone: UTC\nclients:\n  {'ä' * 101}: {{}}\n",
        f"schedule.yaml: clients: expected each client id to be {TOPIC_LEVEL}, "
        f"got '{'ä' * 80}'... (202 bytes)",
    ),
    # Rules that dateutil would expand forever, or too densely.
    "rrule with INTERVAL=0": (
        talk(", rrule: 'FREQ=DAILY;INTERVAL=0'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': "
        "expected a positive INTERVAL, got 'FREQ=DAILY;INTERVAL=0'",
    ),
    "rrule with a negative INTERVAL": (
        talk(", rrule: 'FREQ=WEEKLY;INTERVAL=-2'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': "
        "expected a positive INTERVAL, got 'FREQ=WEEKLY;INTERVAL=-2'",
    ),
    "rrule with COUNT=0": (
        talk(", rrule: 'FREQ=DAILY;COUNT=0'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': "
        "expected a positive COUNT, got 'FREQ=DAILY;COUNT=0'",
    ),
    "rrule with a negative COUNT": (
        talk(", rrule: 'FREQ=DAILY;COUNT=-3'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': "
        "expected a positive COUNT, got 'FREQ=DAILY;COUNT=-3'",
    ),
    "rrule every second": (
        talk(", rrule: 'FREQ=SECONDLY;INTERVAL=3600'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected "
        "FREQ=MINUTELY or slower (SECONDLY is not supported), "
        "got 'FREQ=SECONDLY;INTERVAL=3600'",
    ),
    "rrule every minute": (
        talk(", rrule: FREQ=MINUTELY"),
        f"schedule.yaml: events[0] (id 'talk'): field 'rrule': {DENSITY}, "
        "got 'FREQ=MINUTELY', up to 1440 a day",
    ),
    "rrule every five minutes": (
        talk(", rrule: 'FREQ=MINUTELY;INTERVAL=5'"),
        f"schedule.yaml: events[0] (id 'talk'): field 'rrule': {DENSITY}, "
        "got 'FREQ=MINUTELY;INTERVAL=5', up to 288 a day",
    ),
    "rrule every half hour by BYMINUTE": (
        talk(", rrule: 'FREQ=HOURLY;BYMINUTE=0,30'"),
        f"schedule.yaml: events[0] (id 'talk'): field 'rrule': {DENSITY}, "
        "got 'FREQ=HOURLY;BYMINUTE=0,30', up to 48 a day",
    ),
    "rrule with a BYDAY ordinal beyond the month (crashes dateutil)": (
        talk(", rrule: 'FREQ=MONTHLY;BYMONTHDAY=31;BYDAY=53MO'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected BYDAY "
        "ordinals from 1 to 5 (or -1 to -5) in a month, "
        "got 'FREQ=MONTHLY;BYMONTHDAY=31;BYDAY=53MO'",
    ),
    "rrule with a BYDAY ordinal beyond the year": (
        talk(", rrule: 'FREQ=YEARLY;BYDAY=-54MO'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected BYDAY "
        "ordinals from 1 to 53 (or -1 to -53) in a year, "
        "got 'FREQ=YEARLY;BYDAY=-54MO'",
    ),
    "rrule with UNTIL before the start": (
        talk(", rrule: 'FREQ=DAILY;UNTIL=20190301T000000Z'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': expected UNTIL at or "
        "after the start, got UNTIL 2019-03-01T00:00:00+00:00 before start "
        "2019-03-05T14:00:00+01:00",
    ),
    "rrule with UNTIL after 2200": (
        talk(", rrule: 'FREQ=DAILY;UNTIL=22000101T000001Z'"),
        "schedule.yaml: events[0] (id 'talk'): field 'rrule': "
        f"expected UNTIL to be {RANGE}, got 2200-01-01T00:00:01+00:00",
    ),
    # Instants the engine's int64 nanoseconds cannot hold, or barely.
    "start in the year 1": (
        talk().replace("start: 2019-03-05T14:00:00", "start: 0001-01-01T00:00:00Z"),
        "schedule.yaml: events[0] (id 'talk'): field 'start': "
        f"expected {RANGE}, got '0001-01-01T00:00:00Z'",
    ),
    "local start just before 1970": (
        talk().replace("start: 2019-03-05T14:00:00", "start: 1970-01-01T00:59:59"),
        "schedule.yaml: events[0] (id 'talk'): field 'start': "
        f"expected {RANGE}, got '1970-01-01T00:59:59'",
    ),
    "end in the year 9999": (
        talk().replace("end: 2019-03-05T15:00:00", "end: 9999-12-31T23:59:59"),
        "schedule.yaml: events[0] (id 'talk'): field 'end': "
        f"expected {RANGE}, got '9999-12-31T23:59:59'",
    ),
    "end a second after 2200": (
        talk().replace("end: 2019-03-05T15:00:00", "end: 2200-01-01T00:00:01Z"),
        "schedule.yaml: events[0] (id 'talk'): field 'end': "
        f"expected {RANGE}, got '2200-01-01T00:00:01Z'",
    ),
    "exdate in 2263": (
        talk(", rrule: FREQ=DAILY, exdates: [2263-01-01T14:00:00]"),
        "schedule.yaml: events[0] (id 'talk'): field 'exdates[0]': "
        f"expected {RANGE}, got '2263-01-01T14:00:00'",
    ),
    # Durations: a week for settings, a day for the expiry.
    "lead_seconds of 9000000000": (
        BASE + "lead_seconds: 9000000000\n",
        "schedule.yaml: field 'lead_seconds': "
        "expected whole seconds from 0 to 604800 (7 days), got 9000000000",
    ),
    "grace_seconds of 1e23 as an integer": (
        BASE + f"grace_seconds: {10**23}\n",
        "schedule.yaml: field 'grace_seconds': expected whole seconds from 0 to "
        "604800 (7 days), got 100000000000000000000000",
    ),
    "merge_gap a second over a week": (
        BASE + "    merge_gap: 604801\n",
        "schedule.yaml: groups.machbar: field 'merge_gap': expected whole seconds "
        f"from 0 to 604800 (7 days) {OR_ISO}, got 604801",
    ),
    "merge_gap that would wrap int64 nanoseconds": (
        BASE + "merge_gap: 9300000000\n",
        "schedule.yaml: field 'merge_gap': expected whole seconds from 0 to 604800 "
        f"(7 days) {OR_ISO}, got 9300000000",
    ),
    "merge_gap in too many weeks for a timedelta": (
        BASE + "merge_gap: P99999999999999W\n",
        "schedule.yaml: field 'merge_gap': expected whole seconds from 0 to 604800 "
        f"(7 days) {OR_ISO}, got 'P99999999999999W'",
    ),
    "ttl beyond 32 bits": (
        BASE + "ttl_seconds: 5000000000\n",
        "schedule.yaml: field 'ttl_seconds': "
        "expected whole seconds from 60 to 86400 (1 day), got 5000000000",
    ),
    "ttl a second over a day": (
        BASE + "ttl_seconds: 86401\n",
        "schedule.yaml: field 'ttl_seconds': "
        "expected whole seconds from 60 to 86400 (1 day), got 86401",
    ),
    # YAML that PyYAML cannot take in one line.
    "lists nested too deeply": (
        "timezone: UTC\nx: " + "[" * 60 + "]" * 60 + "\n",
        "schedule.yaml: invalid YAML at line 2, column 53: "
        "nested too deeply (more than 50 levels)",
    ),
    "mappings nested too deeply": (
        "timezone: UTC\nclients:\n"
        + "".join(f"{' ' * (depth + 1)}a{depth}:\n" for depth in range(60)),
        "schedule.yaml: invalid YAML at line 51, column 50: "
        "nested too deeply (more than 50 levels)",
    ),
    "an integer of 5000 digits": (
        BASE + "grace_seconds: " + "9" * 5000 + "\n",
        "schedule.yaml: invalid YAML: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5000 digits; use sys.set_int_max_str_digits() "
        "to increase the limit",
    ),
    "a NUL byte in the file": (
        BASE + "\0\n",
        "schedule.yaml: invalid YAML at position 75: "
        "unacceptable character #x0000: special characters are not allowed",
    ),
}


@pytest.mark.parametrize(
    ("text", "message"), list(BAD_INPUT.values()), ids=list(BAD_INPUT)
)
def test_bad_input_is_a_schedule_error_with_an_exact_message(
    write: Write, text: str, message: str
) -> None:
    assert error_of(write(text)) == message


def test_unparsable_calendar_names_schedule_group_field_and_calendar(
    write: Write,
) -> None:
    write("this is not iCalendar\n", "site/calendars/bad.ics")
    path = write(BASE + "    calendars: [calendars/bad.ics]\n", "site/schedule.yaml")

    assert error_of(path) == (
        "site/schedule.yaml: groups.machbar: field 'calendars': expected a readable "
        "iCalendar file, got 'calendars/bad.ics' (at site/calendars/bad.ics): Content "
        "line could not be parsed into parts: 'this is not iCalendar': Invalid content "
        "line"
    )


def test_calendar_with_a_broken_property_fails_at_load_time(write: Write) -> None:
    write(
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:2019\nEND:VEVENT\nEND:VCALENDAR\n",
        "broken.ics",
    )

    assert error_of(write(BASE + "    calendars: [broken.ics]\n")) == (
        "schedule.yaml: groups.machbar: field 'calendars': calendar file "
        "'broken.ics': event 'x': property 'DTSTART': expected a date or date-time, "
        "got '2019': Expected datetime, date, or time. Got: '2019'"
    )


def ics(*events: str) -> str:
    """A calendar file with these VEVENT bodies."""
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n"
        + "".join(f"BEGIN:VEVENT\n{event}END:VEVENT\n" for event in events)
        + "END:VCALENDAR\n"
    )


#: A calendar event of one hour, with room for a rule.
HOUR = "UID:a\nDTSTART:20190101T100000Z\nDTEND:20190101T110000Z\n"
IN_CAL = "schedule.yaml: groups.machbar: field 'calendars': calendar file 'cal.ics': "

BAD_CALENDARS = {
    "DTEND before DTSTART": (
        ics("UID:a\nDTSTART:20190101T100000Z\nDTEND:20190101T090000Z\n"),
        "event 'a': property 'DTEND': must be after DTSTART "
        "2019-01-01T10:00:00+00:00, got 2019-01-01T09:00:00+00:00",
    ),
    "DTEND equal to DTSTART, named by UID and SUMMARY": (
        ics(
            "UID:b@example.com\nSUMMARY:Board meeting\n"
            "DTSTART;TZID=Europe/Berlin:20190101T100000\n"
            "DTEND:20190101T090000Z\n"
        ),
        "event 'b@example.com' ('Board meeting'): property 'DTEND': must be after "
        "DTSTART 2019-01-01T10:00:00+01:00, got 2019-01-01T09:00:00+00:00",
    ),
    "all-day DTEND equal to DTSTART": (
        ics("UID:a\nDTSTART;VALUE=DATE:20190101\nDTEND;VALUE=DATE:20190101\n"),
        "event 'a': property 'DTEND': must be after DTSTART 2019-01-01, got 2019-01-01",
    ),
    "negative DURATION, no UID, long SUMMARY": (
        ics(
            HOUR, f"SUMMARY:{'long ' * 10}\nDTSTART:20190101T100000Z\nDURATION:-PT1H\n"
        ),
        "VEVENT #2 (no UID): property 'DURATION': expected a positive duration of "
        "at most 1000 years, got '-PT1H'",
    ),
    "zero DURATION": (
        ics("UID:a\nDTSTART:20190101T100000Z\nDURATION:PT0S\n"),
        "event 'a': property 'DURATION': expected a positive duration of at most "
        "1000 years, got 'P0D'",
    ),
    "DURATION of two thousand years": (
        ics("UID:a\nDTSTART:20190101T100000Z\nDURATION:P730500D\n"),
        "event 'a': property 'DURATION': expected a positive duration of at most "
        "1000 years, got 'P730500D'",
    ),
    "DTEND in the year 9999": (
        ics("UID:a\nDTSTART:20190101T100000Z\nDTEND:99991231T000000Z\n"),
        "event 'a': property 'DTEND': must be at most 1000 years after DTSTART "
        "2019-01-01T10:00:00+00:00, got 9999-12-31T00:00:00+00:00",
    ),
    "missing DTSTART": (
        ics("UID:a\nDTEND:20190101T090000Z\n"),
        "event 'a': property 'DTSTART': missing; expected a date or date-time",
    ),
    "RRULE that icalendar rejects": (
        ics(HOUR + "RRULE:FREQ=FORTNIGHTLY\n"),
        f"event 'a': property 'RRULE': expected {RRULE}, got 'FREQ=FORTNIGHTLY': "
        "Expected frequency, got: FORTNIGHTLY",
    ),
    "RRULE that dateutil rejects": (
        ics(HOUR + "RRULE:FREQ=DAILY;BYHOUR=99\n"),
        f"event 'a': property 'RRULE': expected {RRULE}, "
        "got 'FREQ=DAILY;BYHOUR=99': hour must be in 0..23",
    ),
    "RRULE with INTERVAL=0": (
        ics(HOUR + "RRULE:FREQ=DAILY;INTERVAL=0\n"),
        "event 'a': property 'RRULE': expected a positive INTERVAL, "
        "got 'FREQ=DAILY;INTERVAL=0'",
    ),
    "RRULE with COUNT=0": (
        ics(HOUR + "RRULE:FREQ=DAILY;COUNT=0\n"),
        "event 'a': property 'RRULE': expected a positive COUNT, "
        "got 'FREQ=DAILY;COUNT=0'",
    ),
    "RRULE with a negative COUNT": (
        ics(HOUR + "RRULE:FREQ=DAILY;COUNT=-1\n"),
        "event 'a': property 'RRULE': expected a positive COUNT, "
        "got 'FREQ=DAILY;COUNT=-1'",
    ),
    "RRULE with a BYDAY ordinal beyond the month": (
        ics(HOUR + "RRULE:FREQ=YEARLY;BYDAY=6MO;BYMONTH=2\n"),
        "event 'a': property 'RRULE': expected BYDAY ordinals from 1 to 5 "
        "(or -1 to -5) in a month, got 'FREQ=YEARLY;BYDAY=6MO;BYMONTH=2'",
    ),
    "RRULE every second": (
        ics(HOUR + "RRULE:FREQ=SECONDLY\n"),
        "event 'a': property 'RRULE': expected FREQ=MINUTELY or slower "
        "(SECONDLY is not supported), got 'FREQ=SECONDLY'",
    ),
    "RRULE every minute, a hundred million times": (
        ics(HOUR + "RRULE:FREQ=MINUTELY;COUNT=100000000\n"),
        f"event 'a': property 'RRULE': {DENSITY}, "
        "got 'FREQ=MINUTELY;COUNT=100000000', up to 1440 a day",
    ),
}


@pytest.mark.parametrize(
    ("text", "message"), list(BAD_CALENDARS.values()), ids=list(BAD_CALENDARS)
)
def test_bad_calendar_event_names_file_uid_and_property(
    write: Write, text: str, message: str
) -> None:
    write(text, "cal.ics")

    assert error_of(write(BASE + "    calendars: [cal.ics]\n")) == IN_CAL + message


def test_binary_calendar_gives_a_short_escaped_line(write: Write) -> None:
    # icalendar quotes the whole undecodable line; the message keeps its
    # head and tail, escaped.
    Path("cal.ics").write_bytes(b"\x80\x01" * 300 + b"\n")

    assert error_of(write(BASE + "    calendars: [cal.ics]\n")) == (
        "schedule.yaml: groups.machbar: field 'calendars': expected a readable "
        "iCalendar file, got 'cal.ics': Content line could not be parsed into parts: "
        "'" + "\\ufffd\\x01" * 3 + "\\uff ... " + "\\ufffd\\x01" * 4
    )


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=MINUTELY;INTERVAL=60",
        "FREQ=MINUTELY;INTERVAL=90",
        "FREQ=HOURLY",
        "FREQ=DAILY;BYHOUR=8,12,16;BYMINUTE=0,30",
        "FREQ=DAILY;UNTIL=20190305T130000Z",
    ],
)
def test_rules_up_to_hourly_are_fine(write: Write, rrule: str) -> None:
    [event] = load_schedule(write(talk(f", rrule: '{rrule}'"))).events

    assert event.rrule == rrule


def test_ids_of_200_bytes_and_printable_unicode_are_fine(write: Write) -> None:
    path = write(
        f"timezone: UTC\nclients:\n  {'ä' * 100}: {{}}\n  'a b': {{}}\n"
        f"  '$SYS': {{}}\n  '😀': {{}}\n"
    )

    assert list(load_schedule(path).clients) == ["ä" * 100, "a b", "$SYS", "😀"]


def test_instants_on_the_range_bounds_are_fine(write: Write) -> None:
    path = write(
        talk()
        .replace("start: 2019-03-05T14:00:00", "start: 1970-01-01T00:00:00Z")
        .replace("end: 2019-03-05T15:00:00", "end: 2200-01-01T00:00:00Z")
    )
    [event] = load_schedule(path).events

    assert (event.start.year, event.end.year) == (1970, 2200)


def test_durations_on_their_bounds_are_fine(write: Write) -> None:
    path = write(
        BASE + "merge_gap: PT168H\nlead_seconds: 604800\ngrace_seconds: 604800\n"
        "ttl_seconds: 86400\n"
    )
    schedule = load_schedule(path)
    client = schedule.clients["machbar-entrance"]

    assert (client.merge_gap_seconds, client.lead_seconds) == (604800, 604800)
    assert (client.grace_seconds, schedule.ttl_seconds) == (604800, 86400)


def test_missing_schedule_file(write: Write) -> None:
    assert error_of("nowhere.yaml") == (
        "nowhere.yaml: cannot read the file: No such file or directory"
    )


def test_error_carries_path_entry_and_field(write: Write) -> None:
    with pytest.raises(ScheduleError) as caught:
        load_schedule(write(talk(", rrule: FREQ=SOMETIMES")))

    error = caught.value
    assert (error.path, error.entry, error.field) == (
        "schedule.yaml",
        "events[0] (id 'talk')",
        "rrule",
    )
    assert isinstance(error.__cause__, ValueError)


# --- No raw error escapes ---------------------------------------------------

_VALID: dict[str, Any] = yaml.safe_load(
    """\
timezone: Europe/Berlin
ttl_seconds: 600
merge_gap: PT1M
groups:
  g:
    clients: [a, b]
    timezone: Europe/Berlin
    lead_seconds: 5
clients:
  b: {group: g, grace_seconds: 3}
  c: {timezone: UTC}
events:
  - {id: e1, group: g, start: "2019-03-05T14:00:00", end: "2019-03-05T15:00:00",
     rrule: FREQ=DAILY, exdates: ["2019-03-06T14:00:00"]}
  - {id: e2, client: c, desired_state: "on", start: "2019-03-05T14:00:00Z",
     end: "2019-03-05T15:00:00+01:00"}
"""
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.sampled_from(["", "on", "g", "a", "PT", "2019-03-05T14:00", "FREQ=DAILY", "/"]),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers()), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested document where a value sits."""
    places = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            places += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places += _paths(item, (*prefix, index))
    return places


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced."""
    if not path:
        return value
    head, *rest = path
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = _replaced(document[head], tuple(rest), value)
    return copy


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(_paths(_VALID)), value=_values)
def test_any_broken_value_gives_a_schedule_error(
    write: Write, place: tuple[Any, ...], value: Any
) -> None:
    path = write(yaml.safe_dump(_replaced(_VALID, place, value)))

    # Loading may succeed or fail, but only ever with a ScheduleError.
    with contextlib.suppress(ScheduleError):
        load_schedule(path)
