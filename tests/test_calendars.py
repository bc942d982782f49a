"""Expanding schedules and calendar files into occurrences.

Expectations come from the calendars themselves (their DTSTART, RRULE and
EXDATE lines, quoted where they are used) and from the zone rules, never
from what the code printed.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvpower.calendars import COLUMNS, expand, first_start
from tvpower.errors import ScheduleError
from tvpower.schedule import Schedule, load_schedule

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
NS = 1_000_000_000
BERLIN = ZoneInfo("Europe/Berlin")
CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")

# UIDs of series in makerspace-potsdam-google.ics, with the lines that matter.
HACKADEMY_FREE = "37jkbgv9regint2hqhlmd9risn@google.com"
# DTSTART;TZID=Europe/Berlin:20190304T140000, DTEND ...T180000,
# RRULE:FREQ=WEEKLY;WKST=SU;COUNT=6;BYDAY=MO,TU,WE
PLENUM = "646brirtu83g18fhg5jtmf1dac@google.com"
# DTSTART;TZID=Europe/Berlin:20180123T170000, DTEND ...T190000,
# RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU
OK_LAB = "2o60r26f5pq7muep7htdi4r01n@google.com"
# DTSTART;TZID=Europe/Berlin:20171212T190000, DTEND ...T210000,
# RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU; and one occurrence moved:
# RECURRENCE-ID;TZID=Europe/Berlin:20180501T190000 -> DTSTART 20180502T190000
MAKER_FAIR = "05b6u5vfdih0cdr6q3msgemss2@google.com"
# DTSTART;VALUE=DATE:20180526, DTEND;VALUE=DATE:20180528, TRANSP:TRANSPARENT
CONGRESS = "27sgrcdu4099mtq830biaal87d@google.com"
# DTSTART;VALUE=DATE:20171227, DTEND;VALUE=DATE:20171228, TRANSP:OPAQUE

# UIDs of series in school-chicago-google.ics.
MONDAY_1015 = "m4b9nckq@google.com"
# DTSTART;TZID=America/Chicago:20200928T101500, DTEND ...T103000,
# RRULE:FREQ=WEEKLY;WKST=SU;INTERVAL=1;BYDAY=MO
FRIDAY_1015 = "p1lc8@google.com"
# DTSTART;TZID=America/Chicago:20200925T101500 (a Friday), RRULE:FREQ=WEEKLY,
# EXDATE;TZID=America/Chicago:20201127T101500, EXDATE ...:20201023T101500

Write = Callable[..., str]


@pytest.fixture(scope="module")
def makerspace() -> Schedule:
    return load_schedule(SCENARIOS / "makerspace-potsdam.yaml")


@pytest.fixture(scope="module")
def school() -> Schedule:
    return load_schedule(SCENARIOS / "school-chicago.yaml")


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """Write files into a fresh working directory; give back the path."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "schedule.yaml") -> str:
        Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    return write


def at(
    zone: tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    """A wall-clock time in ``zone`` (fold=0, as the schedule reads it)."""
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS


def spans(frame: pd.DataFrame, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The frame's occurrences as wall-clock start and end in ``zone``."""
    return [
        (
            datetime.fromtimestamp(start // NS, zone),
            datetime.fromtimestamp(end // NS, zone),
        )
        for start, end in zip(frame["start"], frame["end"], strict=True)
    ]


def of_uid(frame: pd.DataFrame, uid: str) -> pd.DataFrame:
    return frame[frame["event_id"] == uid]


# --- The makerspace calendar ------------------------------------------------


def test_makerspace_on_2019_03_05_overlapping_and_back_to_back_sessions(
    makerspace: Schedule,
) -> None:
    frame = expand(makerspace, at(BERLIN, 2019, 3, 5), at(BERLIN, 2019, 3, 6))

    assert list(frame["event_id"]) == [HACKADEMY_FREE, PLENUM, OK_LAB]
    assert spans(frame, BERLIN) == [
        (at(BERLIN, 2019, 3, 5, 14), at(BERLIN, 2019, 3, 5, 18)),
        (at(BERLIN, 2019, 3, 5, 17), at(BERLIN, 2019, 3, 5, 19)),
        (at(BERLIN, 2019, 3, 5, 19), at(BERLIN, 2019, 3, 5, 21)),
    ]
    # March is CET (+01:00): the room is busy from 13:00Z to 20:00Z.
    assert frame["start"].min() == ns(datetime(2019, 3, 5, 13, tzinfo=UTC))
    assert frame["end"].max() == ns(datetime(2019, 3, 5, 20, tzinfo=UTC))
    assert set(frame["owner"]) == {"machbar"}
    assert set(frame["owner_kind"]) == {"group"}
    assert set(frame["layer"]) == {"event"}


def biweekly_tuesdays(first: date, month_start: date, month_end: date) -> list[date]:
    """The days of an every-two-weeks series from ``first`` in a month."""
    days = []
    day = month_start
    while day < month_end:
        if (day - first).days % 14 == 0:
            days.append(day)
        day += timedelta(days=1)
    return days


def test_makerspace_open_ended_tuesday_series_still_occur_in_december_2026(
    makerspace: Schedule,
) -> None:
    frame = expand(makerspace, at(BERLIN, 2026, 12, 1), at(BERLIN, 2027, 1, 1))
    december = (date(2026, 12, 1), date(2027, 1, 1))

    plenum_days = biweekly_tuesdays(date(2018, 1, 23), *december)
    ok_lab_days = biweekly_tuesdays(date(2017, 12, 12), *december)
    assert plenum_days  # every two weeks: at least two Tuesdays in any month
    assert spans(of_uid(frame, PLENUM), BERLIN) == [
        (at(BERLIN, d.year, d.month, d.day, 17), at(BERLIN, d.year, d.month, d.day, 19))
        for d in plenum_days
    ]
    assert spans(of_uid(frame, OK_LAB), BERLIN) == [
        (at(BERLIN, d.year, d.month, d.day, 19), at(BERLIN, d.year, d.month, d.day, 21))
        for d in ok_lab_days
    ]


def test_makerspace_moved_occurrence_replaces_the_original(
    makerspace: Schedule,
) -> None:
    frame = expand(makerspace, at(BERLIN, 2018, 4, 30), at(BERLIN, 2018, 5, 4))

    assert spans(of_uid(frame, OK_LAB), BERLIN) == [
        (at(BERLIN, 2018, 5, 2, 19), at(BERLIN, 2018, 5, 2, 21)),
    ]


def test_makerspace_all_day_events_count_only_when_the_source_says_so(
    write: Write,
) -> None:
    (Path.cwd() / "m.ics").write_bytes(
        (SCENARIOS / "makerspace-potsdam-google.ics").read_bytes()
    )
    schedules = {
        (transparent, all_day): load_schedule(
            write(
                f"""\
                timezone: Europe/Berlin
                groups:
                  machbar:
                    clients: [tv]
                    calendars:
                      - {{path: m.ics, transparent: {transparent}, all_day: {all_day}}}
                """,
                f"s-{transparent}-{all_day}.yaml",
            )
        )
        for transparent in ("false", "true")
        for all_day in ("false", "true")
    }

    def uids(key: tuple[str, str], start: datetime, end: datetime) -> set[str]:
        return set(expand(schedules[key], start, end)["event_id"])

    fair = (at(BERLIN, 2018, 5, 26), at(BERLIN, 2018, 5, 28))
    congress = (at(BERLIN, 2017, 12, 27), at(BERLIN, 2017, 12, 28))
    # The maker fair is all-day and transparent: it needs both settings.
    assert MAKER_FAIR not in uids(("false", "true"), *fair)
    assert MAKER_FAIR not in uids(("true", "false"), *fair)
    assert MAKER_FAIR in uids(("true", "true"), *fair)
    # The congress day is all-day and opaque.
    assert CONGRESS not in uids(("false", "false"), *congress)
    frame = expand(schedules[("false", "true")], *congress)
    assert spans(of_uid(frame, CONGRESS), BERLIN) == [congress]


# --- The school calendar ----------------------------------------------------


def test_school_monday_class_keeps_local_time_across_the_dst_change(
    school: Schedule,
) -> None:
    # US daylight saving time ended on Sunday 2020-11-01.
    frame = of_uid(
        expand(school, at(CHICAGO, 2020, 10, 26), at(CHICAGO, 2020, 11, 3)),
        MONDAY_1015,
    )

    assert spans(frame, CHICAGO) == [
        (at(CHICAGO, 2020, 10, 26, 10, 15), at(CHICAGO, 2020, 10, 26, 10, 30)),
        (at(CHICAGO, 2020, 11, 2, 10, 15), at(CHICAGO, 2020, 11, 2, 10, 30)),
    ]
    before, after = (datetime.fromtimestamp(s // NS, UTC) for s in frame["start"])
    assert (before.hour, before.minute) == (15, 15)  # CDT, -05:00
    assert (after.hour, after.minute) == (16, 15)  # CST, -06:00


def test_school_exdates_remove_holidays(school: Schedule) -> None:
    frame = of_uid(
        expand(school, at(CHICAGO, 2020, 10, 16), at(CHICAGO, 2020, 12, 1)),
        FRIDAY_1015,
    )

    fridays = [date(2020, 10, 16) + timedelta(weeks=n) for n in range(7)]
    holidays = {date(2020, 10, 23), date(2020, 11, 27)}
    assert [start.date() for start, _ in spans(frame, CHICAGO)] == [
        friday for friday in fridays if friday not in holidays
    ]


# --- Which calendar events count --------------------------------------------

KINDS_ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
UID:plain
DTSTART:20190330T090000Z
DTEND:20190330T100000Z
END:VEVENT
BEGIN:VEVENT
UID:cancelled
DTSTART:20190330T090000Z
DTEND:20190330T100000Z
STATUS:CANCELLED
END:VEVENT
BEGIN:VEVENT
UID:free
DTSTART:20190330T090000Z
DTEND:20190330T100000Z
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
UID:free-cancelled
DTSTART;VALUE=DATE:20190331
STATUS:CANCELLED
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
UID:all-day
DTSTART;VALUE=DATE:20190331
END:VEVENT
BEGIN:VEVENT
UID:no-length
DTSTART:20190330T090000Z
END:VEVENT
BEGIN:VEVENT
UID:floating
DTSTART:20190330T230000
DURATION:PT4H
END:VEVENT
BEGIN:VEVENT
UID:daily
DTSTART;TZID=Europe/Berlin:20190329T120000
DTEND;TZID=Europe/Berlin:20190329T130000
RRULE:FREQ=DAILY;COUNT=3
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID;TZID=Europe/Berlin:20190330T120000
DTSTART;TZID=Europe/Berlin:20190330T120000
DTEND;TZID=Europe/Berlin:20190330T130000
STATUS:CANCELLED
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID;TZID=Europe/Berlin:20190331T120000
DTSTART;TZID=Europe/Berlin:20190331T140000
DTEND;TZID=Europe/Berlin:20190331T160000
END:VEVENT
BEGIN:VEVENT
UID:gap
DTSTART;TZID=Europe/Berlin:20190330T023000
DTEND;TZID=Europe/Berlin:20190330T033000
RRULE:FREQ=DAILY;COUNT=2
END:VEVENT
END:VCALENDAR
"""


def kinds_schedule(write: Write, *, transparent: bool, all_day: bool) -> Schedule:
    write(KINDS_ICS, "kinds.ics")
    flags = f"transparent: {str(transparent).lower()}, all_day: {str(all_day).lower()}"
    return load_schedule(
        write(f"""\
            timezone: Europe/Berlin
            groups:
              room:
                clients: [tv]
                calendars: [{{path: kinds.ics, {flags}}}]
            """)
    )


def counted(schedule: Schedule) -> list[str]:
    frame = expand(schedule, at(BERLIN, 2019, 3, 25), at(BERLIN, 2019, 4, 5))
    return sorted(frame["event_id"])


def test_by_default_cancelled_free_all_day_and_empty_events_do_not_count(
    write: Write,
) -> None:
    schedule = kinds_schedule(write, transparent=False, all_day=False)

    # "daily" has three occurrences; the one on 2019-03-30 is cancelled.
    assert counted(schedule) == ["daily", "daily", "floating", "gap", "gap", "plain"]


def test_free_events_count_when_the_calendar_is_transparent(write: Write) -> None:
    schedule = kinds_schedule(write, transparent=True, all_day=False)

    assert counted(schedule) == [
        "daily",
        "daily",
        "floating",
        "free",
        "gap",
        "gap",
        "plain",
    ]


def test_all_day_events_last_midnight_to_midnight_in_the_groups_zone(
    write: Write,
) -> None:
    schedule = kinds_schedule(write, transparent=False, all_day=True)
    frame = expand(schedule, at(BERLIN, 2019, 3, 25), at(BERLIN, 2019, 4, 5))

    # Without DTEND an all-day event lasts its one day; 2019-03-31 is the
    # spring change in Berlin, a day of 23 hours.
    [(start, end)] = spans(of_uid(frame, "all-day"), BERLIN)
    assert (start, end) == (at(BERLIN, 2019, 3, 31), at(BERLIN, 2019, 4, 1))
    assert end.timestamp() - start.timestamp() == 23 * 3600


def test_cancelled_never_counts_whatever_the_settings(write: Write) -> None:
    schedule = kinds_schedule(write, transparent=True, all_day=True)

    assert "cancelled" not in counted(schedule)
    assert "free-cancelled" not in counted(schedule)
    assert counted(schedule).count("daily") == 2  # of three, one cancelled


def test_floating_time_is_wall_time_in_the_groups_zone_and_duration_is_exact(
    write: Write,
) -> None:
    schedule = kinds_schedule(write, transparent=False, all_day=False)
    frame = expand(schedule, at(BERLIN, 2019, 3, 25), at(BERLIN, 2019, 4, 5))

    # 23:00 CET on 2019-03-30 is 22:00Z; PT4H is four real hours, across
    # the skipped hour, so it ends at 02:00Z (04:00 CEST).
    [row] = of_uid(frame, "floating").itertuples()
    assert row.start == ns(datetime(2019, 3, 30, 22, tzinfo=UTC))
    assert row.end == ns(datetime(2019, 3, 31, 2, tzinfo=UTC))


def test_moved_occurrence_keeps_its_own_times_and_others_the_series_length(
    write: Write,
) -> None:
    schedule = kinds_schedule(write, transparent=False, all_day=False)
    frame = expand(schedule, at(BERLIN, 2019, 3, 25), at(BERLIN, 2019, 4, 5))

    # "daily": 12:00-13:00 on the 29th, cancelled on the 30th, moved to
    # 14:00-16:00 on the 31st.
    assert spans(of_uid(frame, "daily"), BERLIN) == [
        (at(BERLIN, 2019, 3, 29, 12), at(BERLIN, 2019, 3, 29, 13)),
        (at(BERLIN, 2019, 3, 31, 14), at(BERLIN, 2019, 3, 31, 16)),
    ]


def test_calendar_series_in_the_spring_gap_lasts_its_exact_length(
    write: Write,
) -> None:
    schedule = kinds_schedule(write, transparent=False, all_day=False)
    frame = of_uid(
        expand(schedule, at(BERLIN, 2019, 3, 25), at(BERLIN, 2019, 4, 5)), "gap"
    )

    # DTEND - DTSTART is one hour; on 2019-03-31, 02:30 is in the gap and
    # reads as 02:30+01:00, 01:30Z, so the occurrence ends at 02:30Z.
    assert list(frame["start"]) == [
        ns(datetime(2019, 3, 30, 1, 30, tzinfo=UTC)),
        ns(datetime(2019, 3, 31, 1, 30, tzinfo=UTC)),
    ]
    assert list(frame["end"] - frame["start"]) == [3600 * NS, 3600 * NS]


def test_floating_time_follows_the_calendars_own_zone_if_it_names_one(
    write: Write,
) -> None:
    write(
        "BEGIN:VCALENDAR\nX-WR-TIMEZONE:America/Chicago\nBEGIN:VEVENT\nUID:f\n"
        "DTSTART:20190101T100000\nDTEND:20190101T110000\nEND:VEVENT\nEND:VCALENDAR\n",
        "chicago.ics",
    )
    schedule = load_schedule(
        write("""\
            timezone: Europe/Berlin
            groups:
              room: {clients: [tv], calendars: [chicago.ics]}
            """)
    )
    frame = expand(schedule, at(UTC, 2019, 1, 1), at(UTC, 2019, 1, 2))

    assert spans(frame, CHICAGO) == [
        (at(CHICAGO, 2019, 1, 1, 10), at(CHICAGO, 2019, 1, 1, 11)),
    ]


def test_first_start_is_before_every_occurrence_of_every_kind(write: Write) -> None:
    write(
        "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:series\n"
        "DTSTART:20190601T100000Z\nDTEND:20190601T110000Z\n"
        "RRULE:FREQ=DAILY\nRDATE:20190510T100000Z,20190520T100000Z\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:day\nDTSTART;VALUE=DATE:20190515\nEND:VEVENT\n"
        "END:VCALENDAR\n",
        "room.ics",
    )
    schedule = load_schedule(
        write("""\
            timezone: Europe/Berlin
            groups:
              room: {clients: [tv], calendars: [{path: room.ics, all_day: true}]}
            events:
              - id: talk
                group: room
                start: 2019-05-12T09:00:00Z
                end: 2019-05-12T10:00:00Z
            """)
    )
    first = first_start(schedule)
    frame = expand(schedule, at(UTC, 2019, 1, 1), at(UTC, 2019, 7, 1))

    # The RDATE before DTSTART is the earliest, and a day of slack is kept.
    assert first == at(UTC, 2019, 5, 9, 10)
    assert frame["start"].min() == ns(at(UTC, 2019, 5, 10, 10))


def test_first_start_of_a_schedule_without_events_is_none(write: Write) -> None:
    schedule = load_schedule(write("timezone: UTC\nclients: {tv: {}}\n"))

    assert first_start(schedule) is None


# --- Events of the schedule file --------------------------------------------


def test_single_events_and_overrides_become_rows_with_their_layer(
    write: Write,
) -> None:
    schedule = load_schedule(
        write("""\
            timezone: UTC
            groups:
              g: {clients: [a]}
            events:
              - {id: show, group: g, start: 2019-01-01T10:00, end: 2019-01-01T12:00}
              - {id: dark, client: a, desired_state: off,
                 start: 2019-01-01T11:00, end: 2019-01-01T11:30}
              - {id: bright, client: a, desired_state: on,
                 start: 2019-01-01T13:00, end: 2019-01-01T14:00}
              - {id: own, client: a, start: 2019-01-01T15:00, end: 2019-01-01T16:00}
            """)
    )
    frame = expand(schedule, at(UTC, 2019, 1, 1), at(UTC, 2019, 1, 2))

    assert frame[["owner", "owner_kind", "layer", "event_id"]].values.tolist() == [
        ["g", "group", "event", "show"],
        ["a", "client", "off", "dark"],
        ["a", "client", "on", "bright"],
        ["a", "client", "event", "own"],
    ]
    assert frame["start"].iloc[0] == ns(datetime(2019, 1, 1, 10, tzinfo=UTC))


def test_occurrences_overlapping_the_range_edges(write: Write) -> None:
    schedule = load_schedule(
        write("""\
            timezone: UTC
            groups:
              g: {clients: [a]}
            events:
              - {id: across-start, group: g,
                 start: 2019-01-01T09:00, end: 2019-01-01T11:00}
              - {id: ends-at-start, group: g,
                 start: 2019-01-01T08:00, end: 2019-01-01T10:00}
              - {id: starts-at-end, group: g,
                 start: 2019-01-01T12:00, end: 2019-01-01T13:00}
              - {id: daily, group: g, start: 2018-12-25T09:30, end: 2018-12-25T10:30,
                 rrule: FREQ=DAILY}
            """)
    )
    frame = expand(
        schedule,
        datetime(2019, 1, 1, 10, tzinfo=UTC),
        datetime(2019, 1, 1, 12, tzinfo=UTC),
    )

    # Windows are half-open: touching the range is not overlapping it.
    assert sorted(frame["event_id"]) == ["across-start", "daily"]


def test_yaml_rrule_in_the_berlin_spring_gap_moves_forward(write: Write) -> None:
    schedule = load_schedule(
        write("""\
            timezone: Europe/Berlin
            groups:
              g: {clients: [a]}
            events:
              - {id: night, group: g, start: 2019-03-29T02:30, end: 2019-03-29T03:30,
                 rrule: FREQ=DAILY;COUNT=4}
            """)
    )
    frame = expand(schedule, at(UTC, 2019, 3, 28), at(UTC, 2019, 4, 2))

    # 02:30 does not exist on 2019-03-31: it is read with the offset before
    # the gap (+01:00), 01:30Z, and the occurrence lasts its exact hour.
    utc = [
        (s // NS, e // NS) for s, e in zip(frame["start"], frame["end"], strict=True)
    ]
    expected_starts = [
        datetime(2019, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2019, 3, 30, 1, 30, tzinfo=UTC),
        datetime(2019, 3, 31, 1, 30, tzinfo=UTC),
        datetime(2019, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    assert utc == [
        (int(s.timestamp()), int(s.timestamp()) + 3600) for s in expected_starts
    ]


def test_yaml_rrule_in_the_new_york_autumn_fold_takes_the_first(write: Write) -> None:
    schedule = load_schedule(
        write("""\
            timezone: America/New_York
            groups:
              g: {clients: [a]}
            events:
              - {id: night, group: g, start: 2019-11-02T01:30, end: 2019-11-02T02:00,
                 rrule: FREQ=DAILY;COUNT=3}
            """)
    )
    frame = expand(schedule, at(UTC, 2019, 11, 1), at(UTC, 2019, 11, 6))

    # 01:30 happens twice on 2019-11-03; the first is EDT (-04:00), 05:30Z.
    starts = [datetime.fromtimestamp(s // NS, UTC) for s in frame["start"]]
    assert starts == [
        datetime(2019, 11, 2, 5, 30, tzinfo=UTC),
        datetime(2019, 11, 3, 5, 30, tzinfo=UTC),
        datetime(2019, 11, 4, 6, 30, tzinfo=UTC),
    ]
    assert list(frame["end"] - frame["start"]) == [30 * 60 * NS] * 3


def test_yaml_rrule_with_a_fixed_offset_ignores_dst(write: Write) -> None:
    schedule = load_schedule(
        write("""\
            timezone: Europe/Berlin
            groups:
              g: {clients: [a]}
            events:
              - {id: fixed, group: g, start: "2019-03-30T10:00:00+01:00",
                 end: "2019-03-30T11:00:00+01:00", rrule: FREQ=DAILY;COUNT=2}
            """)
    )
    frame = expand(schedule, at(UTC, 2019, 3, 29), at(UTC, 2019, 4, 2))

    assert [datetime.fromtimestamp(s // NS, UTC).hour for s in frame["start"]] == [9, 9]


def test_yaml_exdate_removes_an_occurrence(write: Write) -> None:
    schedule = load_schedule(
        write("""\
            timezone: Europe/Berlin
            groups:
              g: {clients: [a]}
            events:
              - {id: standup, group: g, start: 2026-03-02T09:30, end: 2026-03-02T10:00,
                 rrule: FREQ=WEEKLY;BYDAY=MO;COUNT=4,
                 exdates: [2026-03-09T09:30, 2026-03-16T08:30:00Z]}
            """)
    )
    frame = expand(schedule, at(BERLIN, 2026, 3, 1), at(BERLIN, 2026, 4, 1))

    assert [start.date() for start, _ in spans(frame, BERLIN)] == [
        date(2026, 3, 2),
        date(2026, 3, 23),
    ]


def test_yaml_exdate_in_utc_removes_the_occurrence_at_that_instant(
    write: Write,
) -> None:
    # Daily at 09:00 New York (13:00Z). 09:00Z is 05:00 there, when no
    # occurrence starts: nothing is removed, also not the 09:00 local one.
    schedule = load_schedule(
        write("""\
            timezone: America/New_York
            clients: {tv: {}}
            events:
              - {id: standup, client: tv, start: 2026-06-09T09:00,
                 end: 2026-06-09T10:00, rrule: "FREQ=DAILY;COUNT=3",
                 exdates: ["2026-06-10T09:00:00Z", "2026-06-11T13:00:00Z"]}
            """)
    )
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 12))

    assert spans(frame, UTC) == [
        (at(UTC, 2026, 6, 9, 13), at(UTC, 2026, 6, 9, 14)),
        (at(UTC, 2026, 6, 10, 13), at(UTC, 2026, 6, 10, 14)),
    ]


@pytest.mark.parametrize(
    ("exdate", "removed"),
    [
        # 02:30Z is 04:30 in Berlin: no occurrence starts then.
        ("2026-10-23T02:30:00Z", None),
        ("2026-10-23T00:30:00Z", date(2026, 10, 23)),
        # The fall-back night passes 02:30 twice; the series starts at the
        # first (CEST, RFC 5545), so the second (CET) names no occurrence.
        ("2026-10-25T02:30:00+01:00", None),
        ("2026-10-25T02:30:00+02:00", date(2026, 10, 25)),
        ("2026-10-25T02:30", date(2026, 10, 25)),
    ],
)
def test_yaml_exdate_on_the_fall_back_night_tells_the_two_0230s_apart(
    write: Write, exdate: str, removed: date | None
) -> None:
    schedule = load_schedule(
        write(f"""\
            timezone: Europe/Berlin
            clients: {{tv: {{}}}}
            events:
              - {{id: night, client: tv, start: 2026-10-23T02:30,
                 end: 2026-10-23T03:00, rrule: "FREQ=DAILY;COUNT=4",
                 exdates: ["{exdate}"]}}
            """)
    )
    frame = expand(schedule, at(UTC, 2026, 10, 22), at(UTC, 2026, 10, 28))

    # Each starts at 02:30 local; at() reads the 25th's as the first, CEST.
    assert list(frame["start"]) == [
        ns(at(BERLIN, 2026, 10, day, 2, 30))
        for day in (23, 24, 25, 26)
        if date(2026, 10, day) != removed
    ]


#: Where each zone changes its offset in 2026: the spring gap, the fall-back
#: fold (Lord Howe's change is half an hour).
_CHANGES = {
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
    "Australia/Lord_Howe": (date(2026, 4, 5), date(2026, 10, 4)),
    "Europe/Berlin": (date(2026, 3, 29), date(2026, 10, 25)),
}
_RULES = ("FREQ=HOURLY;COUNT=8", "FREQ=MINUTELY;INTERVAL=90;COUNT=6")


def _series_yaml(zone: str, first: datetime, rule: str, exdates: list[str]) -> str:
    return f"""\
        timezone: {zone}
        clients: {{tv: {{}}}}
        events:
          - {{id: s, client: tv, start: "{first:%Y-%m-%dT%H:%M}",
             end: "{first + timedelta(minutes=20):%Y-%m-%dT%H:%M}",
             rrule: "{rule}", exdates: {exdates}}}
        """


@st.composite
def _written(draw: st.DrawFn, instant: datetime, zone: ZoneInfo) -> str:
    """An exdate as a schedule may write ``instant``.

    In UTC, with any offset, with the zone's offset then, or as wall time in
    the zone (which names the first of an ambiguous time, see :func:`_named`).
    """
    minutes = draw(st.integers(-12 * 4, 14 * 4)) * 15
    forms = [
        instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        instant.astimezone(timezone(timedelta(minutes=minutes))).isoformat(),
        instant.astimezone(zone).isoformat(),
        instant.astimezone(zone).replace(tzinfo=None).isoformat(),
    ]
    return draw(st.sampled_from(forms))


def _named(text: str, zone: ZoneInfo) -> int:
    """The instant an exdate names, in ns: wall time is its first reading."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone, fold=0)
    return ns(moment)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_yaml_exdate_removes_exactly_the_occurrences_at_its_instant(
    write: Write, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(_CHANGES)), "zone")
    zone = ZoneInfo(name)
    day = data.draw(st.sampled_from(_CHANGES[name]), "day")
    first = datetime(day.year, day.month, day.day) + timedelta(
        minutes=30 * data.draw(st.integers(-6, 6), "half hours")
    )
    rule = data.draw(st.sampled_from(_RULES), "rule")
    midnight = at(UTC, day.year, day.month, day.day)
    span = (midnight - timedelta(days=2), midnight + timedelta(days=3))
    every = expand(load_schedule(write(_series_yaml(name, first, rule, []))), *span)

    # An occurrence's start, or any half hour around them.
    grid = st.integers(-4, 20).map(
        lambda k: first.replace(tzinfo=zone).astimezone(UTC) + timedelta(minutes=30 * k)
    )
    starts = st.sampled_from(
        [datetime.fromtimestamp(s // NS, UTC) for s in every["start"]]
    )
    instant = data.draw(starts | grid, "instant")
    exdate = data.draw(_written(instant, zone), "exdate")
    frame = expand(
        load_schedule(write(_series_yaml(name, first, rule, [exdate]))), *span
    )

    kept = every[every["start"] != _named(exdate, zone)].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, kept)


# --- EXDATEs of calendar files ----------------------------------------------


def calendar_of(
    write: Write, events: str, *, zone: str = "America/New_York", all_day: bool = False
) -> Schedule:
    """A schedule whose one group, in ``zone``, has a calendar of ``events``."""
    write(f"BEGIN:VCALENDAR\nVERSION:2.0\n{events}END:VCALENDAR\n", "events.ics")
    return load_schedule(
        write(f"""\
            timezone: {zone}
            groups:
              room:
                clients: [tv]
                calendars: [{{path: events.ics, all_day: {str(all_day).lower()}}}]
            """)
    )


def hours(frame: pd.DataFrame) -> list[int]:
    """The New York hour each occurrence starts in."""
    return [start.hour for start, _ in spans(frame, NEW_YORK)]


#: Half an hour every hour from 09:00 to 20:00 New York (EDT, -04:00).
HOURLY_ICS = """\
BEGIN:VEVENT
UID:hourly
DTSTART;TZID=America/New_York:20260609T090000
DTEND;TZID=America/New_York:20260609T093000
RRULE:FREQ=HOURLY;COUNT=12
{lines}END:VEVENT
"""


def test_calendar_exdate_in_utc_removes_the_occurrence_at_that_instant(
    write: Write,
) -> None:
    # 13:00Z is 09:00 in New York. The 13:00 New York occurrence has the
    # same digits, but starts at 17:00Z and stays.
    schedule = calendar_of(write, HOURLY_ICS.format(lines="EXDATE:20260609T130000Z\n"))
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == list(range(10, 21))


def test_a_floating_calendar_exdate_is_wall_time_in_the_events_zone(
    write: Write,
) -> None:
    # The group is in Berlin, the event in New York: 13:00 there, 17:00Z.
    # The 17:00 New York occurrence, whose digits match 17:00Z, stays.
    events = HOURLY_ICS.format(lines="EXDATE:20260609T130000\n")
    schedule = calendar_of(write, events, zone="Europe/Berlin")
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == [hour for hour in range(9, 21) if hour != 13]


def test_calendar_exdates_in_lists_and_on_several_lines_all_count(
    write: Write,
) -> None:
    exdates = (
        "EXDATE:20260609T140000Z,20260609T150000Z\n"  # 10:00 and 11:00 New York
        "EXDATE;TZID=America/New_York:20260609T160000,20260609T170000\n"
        "EXDATE:20260609T230000Z\n"  # 19:00 New York
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines=exdates))
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == [9, 12, 13, 14, 15, 18, 20]


#: At 09:00 New York (13:00Z), from Monday 2026-06-08 to Friday, and on
#: Saturday and Sunday by RDATE. The EXDATEs name Tuesday, whose occurrence
#: is moved, and Sunday's RDATE. Wednesday's occurrence is moved, Thursday's
#: cancelled.
MOVES_ICS = """\
BEGIN:VEVENT
UID:daily
DTSTART;TZID=America/New_York:20260608T090000
DTEND;TZID=America/New_York:20260608T093000
RRULE:FREQ=DAILY;COUNT=5
RDATE:20260613T130000Z,20260614T130000Z
EXDATE:20260609T130000Z
EXDATE;TZID=America/New_York:20260614T090000
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID;TZID=America/New_York:20260609T090000
DTSTART;TZID=America/New_York:20260609T111500
DTEND;TZID=America/New_York:20260609T114500
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID;TZID=America/New_York:20260610T090000
DTSTART;TZID=America/New_York:20260610T124500
DTEND;TZID=America/New_York:20260610T131500
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID:20260611T130000Z
DTSTART;TZID=America/New_York:20260611T090000
DTEND;TZID=America/New_York:20260611T093000
STATUS:CANCELLED
END:VEVENT
"""


def test_calendar_exdates_with_rdates_and_moved_and_cancelled_occurrences(
    write: Write,
) -> None:
    schedule = calendar_of(write, MOVES_ICS)
    frame = expand(schedule, at(UTC, 2026, 6, 1), at(UTC, 2026, 7, 1))

    # An EXDATE names an occurrence where the series places it, so
    # Tuesday's goes although it was moved to 11:15.
    assert spans(frame, NEW_YORK) == [
        (at(NEW_YORK, 2026, 6, 8, 9), at(NEW_YORK, 2026, 6, 8, 9, 30)),
        (at(NEW_YORK, 2026, 6, 10, 12, 45), at(NEW_YORK, 2026, 6, 10, 13, 15)),
        (at(NEW_YORK, 2026, 6, 12, 9), at(NEW_YORK, 2026, 6, 12, 9, 30)),
        (at(NEW_YORK, 2026, 6, 13, 9), at(NEW_YORK, 2026, 6, 13, 9, 30)),
    ]


# --- Moved occurrences of calendar files -------------------------------------


def test_a_moved_occurrence_replaces_only_the_one_at_its_instant(
    write: Write,
) -> None:
    moved = (
        "BEGIN:VEVENT\nUID:hourly\n"
        "RECURRENCE-ID;TZID=America/New_York:20260609T110000\n"
        "DTSTART;TZID=America/New_York:20260609T111500\n"
        "DTEND;TZID=America/New_York:20260609T114500\nEND:VEVENT\n"
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines="") + moved)
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    # 11:00 New York is 15:00Z; the 15:00 New York occurrence, whose digits
    # match 15:00Z, stays.
    assert spans(frame, NEW_YORK)[2] == (
        at(NEW_YORK, 2026, 6, 9, 11, 15),
        at(NEW_YORK, 2026, 6, 9, 11, 45),
    )
    assert hours(frame) == list(range(9, 21))


def test_a_cancelled_occurrence_removes_only_the_one_at_its_instant(
    write: Write,
) -> None:
    cancelled = (
        "BEGIN:VEVENT\nUID:hourly\nRECURRENCE-ID:20260609T150000Z\n"
        "DTSTART;TZID=America/New_York:20260609T110000\n"
        "DTEND;TZID=America/New_York:20260609T113000\n"
        "STATUS:CANCELLED\nEND:VEVENT\n"
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines="") + cancelled)
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == [hour for hour in range(9, 21) if hour != 11]


#: At 09:00 New York daily from Monday 2026-06-08, five times; Tuesday's is
#: moved to Friday 15:00, Wednesday's to the Tuesday before the series.
FAR_MOVES_ICS = """\
BEGIN:VEVENT
UID:daily
DTSTART;TZID=America/New_York:20260608T090000
DTEND;TZID=America/New_York:20260608T093000
RRULE:FREQ=DAILY;COUNT=5
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID;TZID=America/New_York:20260609T090000
DTSTART;TZID=America/New_York:20260612T150000
DTEND;TZID=America/New_York:20260612T153000
END:VEVENT
BEGIN:VEVENT
UID:daily
RECURRENCE-ID;TZID=America/New_York:20260610T090000
DTSTART;TZID=America/New_York:20260602T090000
DTEND;TZID=America/New_York:20260602T093000
END:VEVENT
"""


@pytest.mark.parametrize(
    ("day", "starts"),
    [
        (2, [at(NEW_YORK, 2026, 6, 2, 9)]),  # moved into the range
        (9, []),  # moved out of it, days after it
        (10, []),  # moved out of it, days before it
        (12, [at(NEW_YORK, 2026, 6, 12, 9), at(NEW_YORK, 2026, 6, 12, 15)]),
    ],
)
def test_a_move_counts_where_it_now_lies_whatever_the_range(
    write: Write, day: int, starts: list[datetime]
) -> None:
    schedule = calendar_of(write, FAR_MOVES_ICS)
    frame = expand(schedule, at(NEW_YORK, 2026, 6, day), at(NEW_YORK, 2026, 6, day + 1))

    assert list(frame["start"]) == [ns(start) for start in starts]


def test_a_move_whose_series_has_no_occurrence_there_still_counts(
    write: Write,
) -> None:
    # RFC 5545 leaves it to the move; recurring_ical_events keeps it too.
    moved = (
        "BEGIN:VEVENT\nUID:hourly\n"
        "RECURRENCE-ID;TZID=America/New_York:20260609T111500\n"
        "DTSTART;TZID=America/New_York:20260610T080000\n"
        "DTEND;TZID=America/New_York:20260610T083000\nEND:VEVENT\n"
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines="") + moved)
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == [*range(9, 21), 8]


def test_the_move_with_the_highest_sequence_counts(write: Write) -> None:
    moves = "".join(
        "BEGIN:VEVENT\nUID:hourly\n"
        "RECURRENCE-ID;TZID=America/New_York:20260609T090000\n"
        f"DTSTART;TZID=America/New_York:20260610T{hour}0000\n"
        f"DTEND;TZID=America/New_York:20260610T{hour}3000\n"
        f"SEQUENCE:{sequence}\nEND:VEVENT\n"
        for hour, sequence in [(10, 1), (11, 2), (12, 2)]
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines="") + moves)
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == [*range(10, 21), 11]


def test_a_move_without_dtend_or_duration_lasts_nothing_and_never_counts(
    write: Write,
) -> None:
    # Like any VEVENT with a date-time DTSTART (RFC 5545, 3.6.1).
    moved = (
        "BEGIN:VEVENT\nUID:hourly\n"
        "RECURRENCE-ID;TZID=America/New_York:20260609T110000\n"
        "DTSTART;TZID=America/New_York:20260609T111500\nEND:VEVENT\n"
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines="") + moved)
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert hours(frame) == [hour for hour in range(9, 21) if hour != 11]


def test_a_move_of_an_all_day_series_names_its_day(write: Write) -> None:
    events = """\
BEGIN:VEVENT
UID:days
DTSTART;VALUE=DATE:20260608
RRULE:FREQ=DAILY;COUNT=4
END:VEVENT
BEGIN:VEVENT
UID:days
RECURRENCE-ID;VALUE=DATE:20260609
DTSTART;VALUE=DATE:20260613
DTEND;VALUE=DATE:20260615
END:VEVENT
"""
    schedule = calendar_of(write, events, all_day=True)
    frame = expand(schedule, at(NEW_YORK, 2026, 6, 1), at(NEW_YORK, 2026, 7, 1))

    assert spans(frame, NEW_YORK) == [
        (at(NEW_YORK, 2026, 6, 8), at(NEW_YORK, 2026, 6, 9)),
        (at(NEW_YORK, 2026, 6, 10), at(NEW_YORK, 2026, 6, 11)),
        (at(NEW_YORK, 2026, 6, 11), at(NEW_YORK, 2026, 6, 12)),
        (at(NEW_YORK, 2026, 6, 13), at(NEW_YORK, 2026, 6, 15)),
    ]


def test_a_move_on_the_fall_back_night_tells_the_two_0230s_apart(
    write: Write,
) -> None:
    # The first 02:30 Berlin (CEST, 00:30Z) goes to 04:00 CET (03:00Z); the
    # second, 01:30Z from the RDATE, has the same digits and stays.
    moved = (
        "BEGIN:VEVENT\nUID:night\n"
        "RECURRENCE-ID;TZID=Europe/Berlin:20261025T023000\n"
        "DTSTART;TZID=Europe/Berlin:20261025T040000\n"
        "DTEND;TZID=Europe/Berlin:20261025T043000\nEND:VEVENT\n"
    )
    events = NIGHTS_ICS.format(exdates="X-NONE:none") + moved
    schedule = calendar_of(write, events, zone="Europe/Berlin")
    frame = expand(schedule, at(UTC, 2026, 10, 22), at(UTC, 2026, 10, 28))

    starts = [
        at(BERLIN, 2026, 10, 23, 2, 30),
        at(BERLIN, 2026, 10, 24, 2, 30),
        at(UTC, 2026, 10, 25, 1, 30),
        at(UTC, 2026, 10, 25, 3),
        at(BERLIN, 2026, 10, 26, 2, 30),
    ]
    assert list(frame["start"]) == [ns(start) for start in starts]


def test_a_this_and_future_move_moves_the_later_occurrences_too(
    write: Write,
) -> None:
    # recurring_ical_events applies such a series' moves, as RFC 5545 says.
    moved = (
        "BEGIN:VEVENT\nUID:hourly\n"
        "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=America/New_York:20260609T180000\n"
        "DTSTART;TZID=America/New_York:20260609T181500\n"
        "DTEND;TZID=America/New_York:20260609T191500\nEND:VEVENT\n"
    )
    schedule = calendar_of(write, HOURLY_ICS.format(lines="") + moved)
    frame = expand(schedule, at(UTC, 2026, 6, 9), at(UTC, 2026, 6, 11))

    assert spans(frame, NEW_YORK)[-3:] == [
        (at(NEW_YORK, 2026, 6, 9, hour, 15), at(NEW_YORK, 2026, 6, 9, hour + 1, 15))
        for hour in (18, 19, 20)
    ]


#: Daily at 02:30 Berlin from Friday 2026-10-23. On Sunday the 25th, when DST
#: ends, the series' 02:30 is the first (CEST, 00:30Z). The RDATE adds the
#: second: Lagos keeps +01:00 all year, so its 02:30 is 01:30Z, 02:30 CET.
NIGHTS_ICS = """\
BEGIN:VEVENT
UID:night
DTSTART;TZID=Europe/Berlin:20261023T023000
DTEND;TZID=Europe/Berlin:20261023T030000
RRULE:FREQ=DAILY;COUNT=4
RDATE;TZID=Africa/Lagos:20261025T023000
{exdates}
END:VEVENT
"""


@pytest.mark.parametrize(
    ("exdate", "removed"),
    [
        # A local time that occurs twice means the first (RFC 5545, 3.3.5).
        ("EXDATE;TZID=Europe/Berlin:20261025T023000", at(UTC, 2026, 10, 25, 0, 30)),
        ("EXDATE:20261025T023000", at(UTC, 2026, 10, 25, 0, 30)),
        ("EXDATE:20261025T003000Z", at(UTC, 2026, 10, 25, 0, 30)),
        ("EXDATE:20261025T013000Z", at(UTC, 2026, 10, 25, 1, 30)),
        ("EXDATE;TZID=Africa/Lagos:20261025T023000", at(UTC, 2026, 10, 25, 1, 30)),
        # 03:30 CET: nothing starts then, whatever the digits.
        ("EXDATE:20261025T023000Z", None),
    ],
)
def test_calendar_exdate_on_the_fall_back_night_tells_the_two_0230s_apart(
    write: Write, exdate: str, removed: datetime | None
) -> None:
    events = NIGHTS_ICS.format(exdates=exdate)
    schedule = calendar_of(write, events, zone="Europe/Berlin")
    frame = expand(schedule, at(UTC, 2026, 10, 22), at(UTC, 2026, 10, 28))

    starts = [
        at(BERLIN, 2026, 10, 23, 2, 30),
        at(BERLIN, 2026, 10, 24, 2, 30),
        at(UTC, 2026, 10, 25, 0, 30),
        at(UTC, 2026, 10, 25, 1, 30),
        at(BERLIN, 2026, 10, 26, 2, 30),
    ]
    assert list(frame["start"]) == [ns(start) for start in starts if start != removed]


def test_a_date_exdate_removes_that_day_of_an_all_day_series(write: Write) -> None:
    events = """\
BEGIN:VEVENT
UID:days
DTSTART;VALUE=DATE:20260608
RRULE:FREQ=DAILY;COUNT=4
EXDATE;VALUE=DATE:20260609
END:VEVENT
"""
    schedule = calendar_of(write, events, all_day=True)
    frame = expand(schedule, at(NEW_YORK, 2026, 6, 1), at(NEW_YORK, 2026, 7, 1))

    assert spans(frame, NEW_YORK) == [
        (at(NEW_YORK, 2026, 6, day), at(NEW_YORK, 2026, 6, day + 1))
        for day in (8, 10, 11)
    ]


# --- Events without a UID ---------------------------------------------------

#: An hour at 09:00Z daily from Monday 2026-06-08, three times, and half an
#: hour at 09:00Z on the Tuesday. {uid} is a UID line or nothing.
DAILY_ICS = """\
BEGIN:VEVENT
{uid}DTSTART:20260608T090000Z
DTEND:20260608T100000Z
RRULE:FREQ=DAILY;COUNT=3
{lines}END:VEVENT
"""
SINGLE_ICS = """\
BEGIN:VEVENT
{uid}DTSTART:20260609T090000Z
DTEND:20260609T093000Z
END:VEVENT
"""
WITHOUT_UID = pytest.mark.parametrize("uid", ["", "UID:\n"], ids=["none", "empty"])


def utc_spans(schedule: Schedule) -> list[tuple[datetime, datetime]]:
    frame = expand(schedule, at(UTC, 2026, 6, 1), at(UTC, 2026, 7, 1))
    return spans(frame, ZoneInfo("UTC"))


def hour(day: int) -> tuple[datetime, datetime]:
    return at(UTC, 2026, 6, day, 9), at(UTC, 2026, 6, day, 10)


HALF_HOUR = (at(UTC, 2026, 6, 9, 9), at(UTC, 2026, 6, 9, 9, 30))


@WITHOUT_UID
def test_events_without_a_uid_keep_their_own_lengths(write: Write, uid: str) -> None:
    events = DAILY_ICS.format(uid=uid, lines="") + SINGLE_ICS.format(uid=uid)
    schedule = calendar_of(write, events, zone="UTC")

    assert utc_spans(schedule) == [hour(8), HALF_HOUR, hour(9), hour(10)]


@WITHOUT_UID
def test_an_exdate_of_a_series_without_a_uid_removes_only_its_occurrence(
    write: Write, uid: str
) -> None:
    lines = "EXDATE:20260609T090000Z\n"
    events = DAILY_ICS.format(uid=uid, lines=lines) + SINGLE_ICS.format(uid=uid)
    schedule = calendar_of(write, events, zone="UTC")

    assert utc_spans(schedule) == [hour(8), HALF_HOUR, hour(10)]


def test_an_event_without_a_uid_is_apart_from_any_real_uid(write: Write) -> None:
    # A real UID like the ones events without a UID are told apart by.
    lines = "EXDATE:20260609T090000Z\n"
    events = DAILY_ICS.format(uid="UID:tvpower-no-uid-1\n", lines=lines)
    schedule = calendar_of(write, events + SINGLE_ICS.format(uid=""), zone="UTC")
    frame = expand(schedule, at(UTC, 2026, 6, 1), at(UTC, 2026, 7, 1))

    assert utc_spans(schedule) == [hour(8), HALF_HOUR, hour(10)]
    assert list(frame["event_id"]) == ["tvpower-no-uid-1", "", "tvpower-no-uid-1"]


def test_a_recurrence_id_without_a_uid_stands_alone(write: Write) -> None:
    # RECURRENCE-IDs attach to their series by UID: without one, the move
    # is an event of its own, and the cancellation cancels nothing.
    events = DAILY_ICS.format(uid="", lines="") + (
        "BEGIN:VEVENT\nRECURRENCE-ID:20260609T090000Z\n"
        "DTSTART:20260609T120000Z\nDTEND:20260609T123000Z\nEND:VEVENT\n"
        "BEGIN:VEVENT\nRECURRENCE-ID:20260610T090000Z\n"
        "DTSTART:20260610T090000Z\nDTEND:20260610T100000Z\n"
        "STATUS:CANCELLED\nEND:VEVENT\n"
    )
    schedule = calendar_of(write, events, zone="UTC")

    moved = (at(UTC, 2026, 6, 9, 12), at(UTC, 2026, 6, 9, 12, 30))
    assert utc_spans(schedule) == [hour(8), hour(9), moved, hour(10)]


@pytest.mark.parametrize(
    ("uid", "name"),
    [("UID:standup\n", "event 'standup'"), ("", "VEVENT #1 (no UID)")],
    ids=["uid", "no uid"],
)
def test_an_exdate_period_is_refused_naming_the_file_and_the_event(
    write: Write, uid: str, name: str
) -> None:
    # RFC 5545 allows dates and date-times in EXDATE, not periods.
    lines = "EXDATE;VALUE=PERIOD:20260609T090000Z/PT1H\n"
    schedule = calendar_of(write, DAILY_ICS.format(uid=uid, lines=lines), zone="UTC")

    # Whatever the range: a reload's trial expansion refuses it.
    with pytest.raises(ScheduleError) as error:
        expand(schedule, at(UTC, 2030, 1, 1), at(UTC, 2030, 1, 2))
    assert str(error.value) == (
        "schedule.yaml: groups.room: field 'calendars': calendar file 'events.ics': "
        f"{name}: property 'EXDATE': expected dates or date-times, "
        "got the period '20260609T090000Z/PT1H'"
    )


def test_example_office_override_and_back_to_back_events() -> None:
    office = load_schedule(SCENARIOS / "example-office.yaml")
    frame = expand(office, at(BERLIN, 2026, 3, 2), at(BERLIN, 2026, 3, 3))

    lobby = frame[frame["owner"] == "lobby"]
    # 09:00-10:00 local, then 09:00Z (10:00 CET) to 11:00+01:00: they touch.
    assert spans(lobby, BERLIN) == [
        (at(BERLIN, 2026, 3, 2, 9), at(BERLIN, 2026, 3, 2, 10)),
        (at(BERLIN, 2026, 3, 2, 10), at(BERLIN, 2026, 3, 2, 11)),
    ]
    maintenance = expand(office, at(BERLIN, 2026, 3, 9), at(BERLIN, 2026, 3, 10))
    off = maintenance[maintenance["layer"] == "off"]
    assert off[["owner", "event_id"]].values.tolist() == [["room-3a", "maintenance-3a"]]


# --- The frame --------------------------------------------------------------


def test_empty_frame_has_the_columns_and_dtypes(makerspace: Schedule) -> None:
    empty = expand(makerspace, at(BERLIN, 1999, 1, 1), at(BERLIN, 1999, 1, 2))
    full = expand(makerspace, at(BERLIN, 2019, 3, 5), at(BERLIN, 2019, 3, 6))

    assert tuple(empty.columns) == COLUMNS == tuple(full.columns)
    assert len(empty) == 0
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    assert full["start"].dtype == "int64"
    assert full["end"].dtype == "int64"
    assert all(pd.api.types.is_string_dtype(full[c]) for c in ("owner", "layer"))


def test_naive_range_is_refused(makerspace: Schedule) -> None:
    with pytest.raises(ValueError, match="aware"):
        expand(makerspace, datetime(2019, 3, 5), datetime(2019, 3, 6))


def test_a_year_of_the_makerspace_expands_well_under_a_second(
    makerspace: Schedule,
) -> None:
    began = time.perf_counter()
    frame = expand(makerspace, at(BERLIN, 2026, 1, 1), at(BERLIN, 2027, 1, 1))
    elapsed = time.perf_counter() - began

    # Weekly series alone give more than 52 occurrences each.
    assert len(frame) > 4 * 52
    assert elapsed < 1.0


def test_expanding_again_gives_the_same_frame(makerspace: Schedule) -> None:
    # The calendar's query is kept between calls for its caches; a later,
    # overlapping call must not see anything of the earlier one.
    first = expand(makerspace, at(BERLIN, 2026, 3, 1), at(BERLIN, 2026, 4, 1))
    expand(makerspace, at(BERLIN, 2030, 1, 1), at(BERLIN, 2030, 2, 1))
    again = expand(makerspace, at(BERLIN, 2026, 3, 1), at(BERLIN, 2026, 4, 1))

    pd.testing.assert_frame_equal(first, again)


# --- Bad and extreme calendar input -----------------------------------------


def test_unknown_x_wr_timezone_leaves_floating_times_in_the_groups_zone(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        "BEGIN:VCALENDAR\nX-WR-TIMEZONE:Not/AZone\nBEGIN:VEVENT\nUID:f\n"
        "DTSTART:20190101T100000\nDTEND:20190101T110000\nEND:VEVENT\nEND:VCALENDAR\n",
        "nowhere.ics",
    )
    schedule = load_schedule(
        write("""\
            timezone: America/Chicago
            groups:
              room: {clients: [tv], calendars: [nowhere.ics]}
            """)
    )
    frame = expand(schedule, at(UTC, 2019, 1, 1), at(UTC, 2019, 1, 2))

    assert spans(frame, CHICAGO) == [
        (at(CHICAGO, 2019, 1, 1, 10), at(CHICAGO, 2019, 1, 1, 11)),
    ]
    assert "unknown time zone 'Not/AZone' in X-WR-TIMEZONE" in caplog.text


#: Events a real calendar may hold beyond what the engine handles (int64
#: nanoseconds: 1677 to 2262); tvpower keeps 1970 to 2200 of them.
FAR_ICS = """\
BEGIN:VCALENDAR
BEGIN:VEVENT
UID:year-1
DTSTART:00010101T100000Z
DTEND:00010101T110000Z
END:VEVENT
BEGIN:VEVENT
UID:year-9999
DTSTART;TZID=Europe/Berlin:99991231T100000
DTEND;TZID=Europe/Berlin:99991231T110000
END:VEVENT
BEGIN:VEVENT
UID:across-2200
DTSTART:21991231T120000Z
DTEND:22000101T120000Z
END:VEVENT
BEGIN:VEVENT
UID:since-1960
DTSTART:19600104T100000Z
DTEND:19600104T110000Z
RRULE:FREQ=WEEKLY
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def far(write: Write) -> Schedule:
    write(FAR_ICS, "far.ics")
    return load_schedule(
        write("""\
            timezone: UTC
            groups:
              room: {clients: [tv], calendars: [far.ics]}
            events:
              - {id: centuries, group: room, start: 1970-01-01T00:00:00Z,
                 end: 2199-01-01T00:00:00Z, rrule: FREQ=YEARLY}
            """)
    )


def test_occurrences_outside_1970_to_2200_are_skipped_or_clipped(
    far: Schedule,
) -> None:
    # The weekly series began on Monday 1960-01-04; 1970-01-05 is a Monday.
    frame = expand(far, at(UTC, 1960, 1, 1), at(UTC, 1970, 1, 10))
    weekly = of_uid(frame, "since-1960")
    assert spans(weekly, UTC) == [(at(UTC, 1970, 1, 5, 10), at(UTC, 1970, 1, 5, 11))]
    # The yearly event of 229 years: its first occurrence only, from 1970.
    assert spans(of_uid(frame, "centuries"), UTC) == [
        (at(UTC, 1970, 1, 1), at(UTC, 2199, 1, 1))
    ]

    frame = expand(far, at(UTC, 2199, 12, 31), at(UTC, 2263, 1, 1))
    # Occurrences that would end in 2428 stop where the engine's range does.
    assert set(frame["end"]) == {ns(at(UTC, 2200, 1, 1))}
    assert "across-2200" in set(frame["event_id"])
    assert "year-9999" not in set(frame["event_id"])


def test_expanding_any_range_never_overflows(far: Schedule) -> None:
    for start, end in [
        (datetime.min.replace(tzinfo=UTC), at(UTC, 1970, 1, 2)),
        (at(UTC, 2199, 12, 30), datetime.max.replace(tzinfo=UTC)),
        (at(UTC, 1, 1, 1), at(UTC, 2, 1, 1)),
        (at(UTC, 9998, 1, 1), at(UTC, 9999, 1, 1)),
    ]:
        frame = expand(far, start, end)

        assert frame["start"].min() >= ns(at(UTC, 1970, 1, 1)) or frame.empty
        assert frame["end"].max() <= ns(at(UTC, 2200, 1, 1)) or frame.empty
