"""Occurrences: a schedule's events and calendars, expanded over a time range.

:func:`expand` turns a :class:`~tvpower.schedule.Schedule` into one row per
occurrence that overlaps a half-open range, ready for the engine:

=============  ============================================================
``owner``      the group or client id the occurrence belongs to
``owner_kind`` ``"group"`` or ``"client"``
``layer``      ``"event"``, or ``"on"`` / ``"off"`` for a client override
``start``      int64 nanoseconds since the Unix epoch, UTC (inclusive)
``end``        int64 nanoseconds since the Unix epoch, UTC (exclusive)
``event_id``   the schedule's event id, or the calendar event's UID
=============  ============================================================

Single events of the schedule file become rows directly. Recurring ones and
calendar files expand with ``recurring_ical_events`` in their own zone.
What a calendar event counts as:

- ``STATUS:CANCELLED`` occurrences never count.
- ``TRANSP:TRANSPARENT`` ("free") ones count only if the calendar source
  says ``transparent``.
- All-day ones (a date, not a date-time) count only if the source says
  ``all_day``; they then last from midnight to midnight in the group's zone.
- Floating times (no zone) are wall time in the zone the calendar names
  with ``X-WR-TIMEZONE`` (as Google exports do), else in the group's zone;
  an ``X-WR-TIMEZONE`` that names no known zone is ignored.
- Zero-length occurrences (a date-time DTSTART without DTEND and DURATION)
  never count. An explicit end not after the start is rejected at load.
- An EXDATE date-time removes the occurrence the series places at its
  instant (a moved one too), and nothing when there is none; a floating one
  is wall time in the zone of the event's DTSTART, an ambiguous one its
  first occurrence. An EXDATE date removes the series' occurrences of that
  day (in the zone of the DTSTART). An EXDATE period (which RFC 5545 does
  not allow) is rejected.
- A VEVENT with a RECURRENCE-ID moves (or cancels) the occurrence its
  series places at that instant, and only that one; a floating one is wall
  time in the zone of the series' DTSTART, an ambiguous one its first
  occurrence. It counts where it now lies, with its own DTEND or DURATION
  (without them, like any VEVENT, a date-time one has zero length and never
  counts), and also when its series places nothing at that instant. Of
  several for one instant, the highest SEQUENCE wins. A series that has a
  ``RANGE=THISANDFUTURE`` move is expanded with all its moves by
  ``recurring_ical_events``.
- A VEVENT without a UID (or with an empty one) is a series of its own:
  nothing attaches to it, and it attaches to nothing, also when it has a
  RECURRENCE-ID. Its occurrences have the event id ``""``.

Occurrences are clipped to the instants a schedule may name,
:data:`~tvpower.schedule.EARLIEST_INSTANT` to
:data:`~tvpower.schedule.LATEST_INSTANT`: a calendar event outside them is
skipped rather than rejected, so that old series and far-future entries of
a real calendar do no harm, and nothing overflows the int64 nanoseconds.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import numpy as np
import pandas as pd
import recurring_ical_events

from tvpower.errors import ScheduleError
from tvpower.schedule import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    CalendarSource,
    Event,
    Group,
    Schedule,
    describe,
)

__all__ = ["COLUMNS", "expand", "first_start"]

#: The columns of the frame that :func:`expand` returns, in order.
COLUMNS = ("owner", "owner_kind", "layer", "start", "end", "event_id")

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DTYPES = {
    "owner": "str",
    "owner_kind": "str",
    "layer": "str",
    "start": "int64",
    "end": "int64",
    "event_id": "str",
}
# recurring_ical_events tests spans against floating times and wall-clock
# ends; asking it for a day more on each side and filtering the exact
# instants here makes the range exact whatever the zones.
_SLACK = timedelta(days=1)

_Row = tuple[str, str, str, int, int, str]
_Span = tuple[datetime, datetime]


def expand(schedule: Schedule, start: datetime, end: datetime) -> pd.DataFrame:
    """Every occurrence that overlaps ``[start, end)``, one row each.

    ``start`` and ``end`` must be aware. The frame has the :data:`COLUMNS`,
    sorted by start, end, owner and event id; it is empty (with those
    columns and dtypes) when nothing overlaps. Occurrences are clipped to
    the earliest and latest instants (see the module's docstring).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"expected aware datetimes, got {start!r} and {end!r}")
    start = min(max(start, EARLIEST_INSTANT), LATEST_INSTANT)
    end = min(max(end, EARLIEST_INSTANT), LATEST_INSTANT)
    span = (start.astimezone(UTC) - _SLACK, end.astimezone(UTC) + _SLACK)

    rows = _single_event_rows(schedule.events)
    rows += _recurring_event_rows(schedule.events, span)
    for group in schedule.groups.values():
        for source in group.calendars:
            rows += _calendar_rows(source, group, span, schedule)
    return _frame(rows, _ns(start), _ns(end))


def first_start(schedule: Schedule) -> datetime | None:
    """An instant no occurrence of ``schedule`` starts before; None if it has none.

    A series starts at its DTSTART (RDATEs, which may lie before it, count
    too). Floating times and dates are read as UTC and a day is taken off,
    which is earlier than any zone can place them.
    """
    starts = [event.start for event in schedule.events]
    for group in schedule.groups.values():
        for source in group.calendars:
            for component in source.calendar.walk("VEVENT"):
                starts += _component_starts(component)
    if not starts:
        return None
    return max(min(starts) - _SLACK, EARLIEST_INSTANT)


def _component_starts(component: Any) -> list[datetime]:
    """DTSTART and every RDATE of a VEVENT, as UTC datetimes."""
    values = [component["DTSTART"].dt] if "DTSTART" in component else []
    values += _listed(component, "RDATE")
    result = []
    for value in values:
        if isinstance(value, tuple):  # an RDATE period: (start, end or duration)
            value = value[0]
        if isinstance(value, date):
            result.append(_localize(value, ZoneInfo("UTC")).astimezone(UTC))
    return result


def _listed(component: Any, name: str) -> list[Any]:
    """The values of a property that lists them, like RDATE and EXDATE.

    Each may be given on several lines, each line with several values.
    """
    return [item.dt for line in _lines(component, name) for item in line.dts]


def _lines(component: Any, name: str) -> list[Any]:
    """The lines of a property that may be given more than once."""
    lines = component.get(name, [])
    return [
        line
        for line in (lines if isinstance(lines, list) else [lines])
        if hasattr(line, "dts")
    ]


def _ns(moment: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime, exactly."""
    return (moment - _EPOCH) // _MICROSECOND * 1_000


_EARLIEST_NS = _ns(EARLIEST_INSTANT)
_LATEST_NS = _ns(LATEST_INSTANT)


def _row(event: Event, start_ns: int, end_ns: int) -> _Row:
    """The row of one occurrence of a schedule event."""
    layer = event.desired_state or "event"
    return (event.owner_id, event.owner_kind, layer, start_ns, end_ns, event.id)


def _frame(rows: list[_Row], range_start: int, range_end: int) -> pd.DataFrame:
    """The occurrence frame: rows that overlap the range, sorted."""
    rows = _clipped(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    arrays = {
        name: np.array(values, dtype=np.int64 if _DTYPES[name] == "int64" else object)
        for name, values in zip(COLUMNS, columns, strict=True)
    }
    starts, ends = arrays["start"], arrays["end"]
    keep = (starts < range_end) & (ends > range_start) & (ends > starts)

    frame = pd.DataFrame({name: array[keep] for name, array in arrays.items()})
    frame = frame.astype(_DTYPES)
    return frame.sort_values(
        ["start", "end", "owner_kind", "owner", "layer", "event_id"],
        kind="stable",
        ignore_index=True,
    )


def _clipped(rows: list[_Row]) -> list[_Row]:
    """Rows clipped to the earliest and latest instants, empty ones dropped.

    Their times are Python integers until here; clipped, they fit int64.
    """
    clipped = []
    for owner, owner_kind, layer, start, end, event_id in rows:
        start, end = max(start, _EARLIEST_NS), min(end, _LATEST_NS)
        if start < end:
            clipped.append((owner, owner_kind, layer, start, end, event_id))
    return clipped


# --- Events of the schedule file --------------------------------------------


def _single_event_rows(events: tuple[Event, ...]) -> list[_Row]:
    """Events without a rule: their own start and end, no expansion needed."""
    return [
        _row(event, _ns(event.start), _ns(event.end))
        for event in events
        if not event.rrule
    ]


def _recurring_event_rows(events: tuple[Event, ...], span: _Span) -> list[_Row]:
    """Occurrences of the events with an RRULE, less those their exdates remove.

    Each occurrence lasts the exact duration of its event (RFC 5545,
    3.8.5.3, for a series given with DTEND). recurring_ical_events adds the
    duration in wall-clock time, which is wrong across a DST change: an hour
    starting in the spring gap would end where it starts.
    """
    recurring = [event for event in events if event.rrule]
    if not recurring:
        return []
    calendar = icalendar.Calendar()
    for index, event in enumerate(recurring):
        calendar.add_component(_vevent(event, uid=str(index)))
    exdates = _Exdates(
        frozenset(
            (str(index), _ns(exdate))
            for index, event in enumerate(recurring)
            for exdate in event.exdates
        )
    )

    rows = []
    for occurrence in recurring_ical_events.of(calendar).between(*span):
        if not exdates.remove(occurrence):
            event, start_ns = recurring[int(occurrence["UID"])], _ns(occurrence.start)
            end_ns = start_ns + _ns(event.end) - _ns(event.start)
            rows.append(_row(event, start_ns, end_ns))
    return rows


def _vevent(event: Event, uid: str) -> Any:
    """A VEVENT for a schedule event's series, in the event's own zone.

    It has no EXDATE: :class:`_Exdates` applies the exdates.
    """
    vevent = icalendar.Event()
    vevent.add("uid", uid)
    vevent.add("dtstart", event.start)
    vevent.add("dtend", event.end)
    if event.rrule:
        vevent.add("rrule", icalendar.vRecur.from_ical(event.rrule))
    return vevent


# --- Exdates ----------------------------------------------------------------


@dataclass(frozen=True)
class _Exdates:
    """The occurrences that exdates remove, dropped after expansion.

    recurring_ical_events matches an EXDATE by its UTC instant or by its
    wall-clock digits alone, whatever the offset and fold: ``13:00Z`` would
    remove a 13:00 New York occurrence besides the 09:00 one it names, and
    02:30 Berlin on the night DST ends an occurrence at the second 02:30
    besides the first. So expansion never sees an EXDATE; an occurrence is
    dropped here when an exdate names the instant of its RECURRENCE-ID (where
    its series places it, before any move), or, for a date, its day. Series
    are told apart by the UID that expansion knows them by (see
    :func:`_vevents`).
    """

    #: (UID, ns since the epoch) of each date-time exdate.
    instants: frozenset[tuple[str, int]]
    #: (UID, date) of each date exdate, a day in the zone of the series.
    days: frozenset[tuple[str, date]] = frozenset()
    #: The zone of floating RECURRENCE-IDs, read as :func:`_lengths` reads them.
    floating: tzinfo = UTC

    def remove(self, occurrence: Any) -> bool:
        """Whether an exdate removes this occurrence of the expansion."""
        uid = str(occurrence.get("UID", ""))
        return self.names(uid, occurrence["RECURRENCE-ID"].dt, self.floating)

    def names(self, uid: str, named: date, zone: tzinfo) -> bool:
        """Whether an exdate of series ``uid`` names ``named``, floating in ``zone``."""
        instant = _ns(_localize(named, zone))
        day = named.date() if isinstance(named, datetime) else named
        return (uid, instant) in self.instants or (uid, day) in self.days


# --- Moved occurrences ------------------------------------------------------


#: A series occurrence as a moved one names it: by UID and the instant (ns
#: since the epoch) of a date-time, or the day of a date.
_Named = tuple[str, int | date]


def _named(uid: str, value: date, zone: tzinfo) -> _Named:
    """How a RECURRENCE-ID names an occurrence; a floating one is in ``zone``."""
    if isinstance(value, datetime):
        return uid, _ns(_localize(value, zone))
    return uid, value


@dataclass(frozen=True)
class _Moves:
    """The occurrences that VEVENTs with a RECURRENCE-ID move, applied after expansion.

    recurring_ical_events matches a RECURRENCE-ID by its UTC instant or by
    its wall-clock digits alone: moving 11:00 New York (15:00Z) would also
    replace an occurrence at 15:00 New York. So expansion never sees the
    moves (see :func:`_for_expansion`): a series occurrence is dropped here
    when a move names the instant of its RECURRENCE-ID (a date, for an
    all-day series), and each move is an occurrence of its own, wherever it
    now lies, unless an exdate names its RECURRENCE-ID.
    """

    #: Each move, by the occurrence it names.
    moves: dict[_Named, tuple[tzinfo, Any]]
    #: The zone of floating RECURRENCE-IDs of the expansion's occurrences.
    floating: tzinfo

    def replace(self, occurrence: Any) -> bool:
        """Whether a move replaces this occurrence of the expansion."""
        uid = str(occurrence["UID"])
        named = _named(uid, occurrence["RECURRENCE-ID"].dt, self.floating)
        return named in self.moves

    def standing(self, exdates: _Exdates) -> list[Any]:
        """The moves that are occurrences: those whose instant no exdate names."""
        return [
            move
            for (uid, _), (zone, move) in self.moves.items()
            if not exdates.names(uid, move["RECURRENCE-ID"].dt, zone)
        ]


def _calendar_moves(vevents: list[tuple[str, Any]], floating: ZoneInfo) -> _Moves:
    """The moves of the series (see :func:`_moves`).

    A floating RECURRENCE-ID is wall time in the zone of the series' DTSTART
    (else in ``floating``), an ambiguous one the first. Of several moves of
    one occurrence, the one with the highest SEQUENCE counts, the first of
    equals, as in recurring_ical_events.
    """
    zones: dict[str, tzinfo] = {}
    for uid, vevent in vevents:
        if _is_series(vevent):
            zones.setdefault(uid, _series_zone(vevent, floating))
    moves: dict[_Named, tuple[tzinfo, Any]] = {}
    for uid, vevent in _moves(vevents):
        named = _named(uid, vevent["RECURRENCE-ID"].dt, zones[uid])
        if named not in moves or vevent.sequence > moves[named][1].sequence:
            moves[named] = (zones[uid], vevent)
    return _Moves(moves, floating)


# --- Calendar files ---------------------------------------------------------


@dataclass(frozen=True)
class _Length:
    """How long an occurrence lasts (RFC 5545, 3.3.6 and 3.8.5.3).

    With DTEND every occurrence lasts the same exact time; with DURATION,
    days are nominal (wall-clock days in the event's zone), the rest exact.
    recurring_ical_events adds both in wall-clock time, which is wrong when
    a DST change falls inside the event.
    """

    days: int
    seconds: int

    def end_ns(self, start: datetime) -> int:
        """The end of the occurrence that starts at ``start``."""
        return _ns(start + timedelta(days=self.days)) + self.seconds * NS


#: Each component's length by (UID, RECURRENCE-ID in ns), with the UID that
#: expansion knows it by: None for a series or a single event, the instant
#: for a moved occurrence. A length of None means the library's own end is
#: right.
_Lengths = dict[tuple[str, int | None], _Length | None]


def _calendar_rows(
    source: CalendarSource, group: Group, span: _Span, schedule: Schedule
) -> list[_Row]:
    """The occurrences of one calendar file that switch the group's TVs on."""
    # recurring_ical_events reads floating times in the calendar's own zone
    # when it names one; lengths and RECURRENCE-IDs are read alike here.
    floating = _calendar_zone(source.calendar) or group.timezone
    vevents = _vevents(source.calendar)
    problem = _exdate_problem(vevents)
    if problem is not None:
        raise _calendar_error(source, group, schedule, problem)
    lengths = _lengths(vevents, floating)
    exdates = _calendar_exdates(vevents, floating)
    moves = _calendar_moves(vevents, floating)
    try:
        occurrences = _query(source).between(*span)
    except (ValueError, KeyError, TypeError) as error:
        problem = f"cannot be expanded: {error}"
        raise _calendar_error(source, group, schedule, problem) from error

    event_ids = {uid: str(vevent.get("UID", "")) for uid, vevent in vevents}
    spans = [
        _span(
            occurrence,
            group.timezone,
            floating,
            _length_of(occurrence, lengths, floating),
        )
        for occurrence in occurrences
        if _switches_on(occurrence, source)
        and not exdates.remove(occurrence)
        and not moves.replace(occurrence)
    ]
    spans += [
        _span(move, group.timezone, floating, _length(move, floating))
        for move in moves.standing(exdates)
        if _switches_on(move, source)
    ]
    return [
        (group.id, "group", "event", start_ns, end_ns, event_ids[uid])
        for uid, start_ns, end_ns in spans
    ]


def _calendar_error(
    source: CalendarSource, group: Group, schedule: Schedule, problem: str
) -> ScheduleError:
    """The error for a calendar file that cannot be expanded."""
    return ScheduleError(
        str(schedule.path),
        f"calendar file {describe(str(source.path))}: {problem}",
        entry=f"groups.{group.id}",
        field="calendars",
    )


def _vevents(calendar: Any) -> list[tuple[str, Any]]:
    """Each VEVENT of the calendar, with the UID that expansion knows it by.

    RECURRENCE-IDs attach to a series by its UID, so a VEVENT without one
    (RFC 5545 requires it, some exports lack it) can only stand alone: it is
    known by a UID of its own, which no real UID of the calendar starts with.
    An empty UID counts as none.
    """
    vevents = calendar.walk("VEVENT")
    uids = [str(vevent.get("UID", "")) for vevent in vevents]
    prefix = "tvpower-no-uid-"
    while any(uid.startswith(prefix) for uid in uids):
        prefix += "-"
    return [
        (uid or f"{prefix}{index}", vevent)
        for index, (uid, vevent) in enumerate(zip(uids, vevents, strict=True))
    ]


def _exdate_problem(vevents: list[tuple[str, Any]]) -> str | None:
    """An EXDATE period: RFC 5545 allows none, but icalendar reads them."""
    for index, (_, vevent) in enumerate(vevents):
        for line in _lines(vevent, "EXDATE"):
            if any(isinstance(item.dt, tuple) for item in line.dts):
                return (
                    f"{_event_name(vevent, index)}: property 'EXDATE': expected "
                    f"dates or date-times, got the period "
                    f"{describe(line.to_ical().decode())}"
                )
    return None


def _event_name(vevent: Any, index: int) -> str:
    """How errors name a VEVENT, like the checks at load: by UID, else position."""
    uid = str(vevent.get("UID", ""))
    return f"event {describe(uid)}" if uid else f"VEVENT #{index + 1} (no UID)"


#: The query of each loaded calendar's copy without EXDATEs, keyed by the
#: query its schedule made (which found the calendar's errors at load).
_QUERIES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _query(source: CalendarSource) -> Any:
    """The recurring_ical_events query of the source's calendar without EXDATEs.

    Made once per loaded calendar and kept, for the rule caches that make
    later expansions of the same calendar many times faster.
    """
    if source.query is None:  # a CalendarSource made by hand, not loaded
        return recurring_ical_events.of(_for_expansion(source.calendar))
    query = _QUERIES.get(source.query)
    if query is None:
        query = recurring_ical_events.of(_for_expansion(source.calendar))
        _QUERIES[source.query] = query
    return query


def _for_expansion(calendar: Any) -> Any:
    """A copy of the calendar as expansion sees it; property values are shared.

    Each VEVENT has the UID of :func:`_vevents`, and series have no EXDATE:
    :func:`_calendar_exdates` reads what they remove. The VEVENTs of
    :func:`_moves` are left out: :class:`_Moves` applies them. The EXDATEs
    of a moved occurrence's VEVENT stay, as recurring_ical_events ignores
    them there.
    """
    vevents = _vevents(calendar)
    uids = {id(vevent): uid for uid, vevent in vevents}
    left_out = {id(vevent) for _, vevent in _moves(vevents)}
    copy = calendar.copy()  # shallow: without subcomponents
    stack = [(calendar, copy)]
    while stack:  # not recursive: the nesting may be deep
        original, duplicate = stack.pop()
        for component in original.subcomponents:
            if id(component) in left_out:
                continue
            duplicate.add_component(component.copy())
            stack.append((component, duplicate.subcomponents[-1]))
            if id(component) in uids:
                _for_series(duplicate.subcomponents[-1], uids[id(component)])
    return copy


def _for_series(vevent: Any, uid: str) -> None:
    """Give a VEVENT of the copy its UID, and a series' no EXDATE."""
    vevent["UID"] = icalendar.vText(uid)
    if _is_series(vevent):
        vevent.pop("EXDATE", None)


def _moves(vevents: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The VEVENTs that :class:`_Moves` applies, with their UID.

    They are those with a RECURRENCE-ID whose UID has a series, unless the
    series has a ``RANGE=THISANDFUTURE`` one: it moves later occurrences
    too, and recurring_ical_events applies it and all the series' others.
    One whose UID has no series stands alone, like a single event.
    """
    # Known shortcoming: such a series keeps recurring_ical_events' matching
    # of RECURRENCE-IDs and EXDATEs by wall-clock digits as well as by
    # instant, which may remove a second occurrence; applying a range of
    # moves ourselves is not built.
    series = {uid for uid, vevent in vevents if _is_series(vevent)}
    series -= {
        uid
        for uid, vevent in vevents
        if not _is_series(vevent)
        and vevent["RECURRENCE-ID"].params.get("RANGE", "").upper() == "THISANDFUTURE"
    }
    return [
        (uid, vevent)
        for uid, vevent in vevents
        if uid in series and not _is_series(vevent)
    ]


def _calendar_exdates(vevents: list[tuple[str, Any]], floating: ZoneInfo) -> _Exdates:
    """What the EXDATEs of the series remove (see :class:`_Exdates`).

    A floating one is wall time in the zone of the event's DTSTART (else in
    ``floating``), and like any local time means the first of an ambiguous
    pair.
    """
    instants, days = set(), set()
    for uid, component in vevents:
        if _is_series(component) and "EXDATE" in component:
            zone = _series_zone(component, floating)
            for value in _listed(component, "EXDATE"):
                if isinstance(value, datetime):
                    instants.add((uid, _ns(_localize(value, zone))))
                else:
                    days.add((uid, value))
    return _Exdates(frozenset(instants), frozenset(days), floating)


def _series_zone(vevent: Any, floating: ZoneInfo) -> tzinfo:
    """The zone of a series' floating times: its DTSTART's, else ``floating``."""
    return getattr(vevent["DTSTART"].dt, "tzinfo", None) or floating


def _is_series(component: Any) -> bool:
    """Whether a component is a VEVENT that defines a series, not a moved occurrence."""
    return component.name == "VEVENT" and "RECURRENCE-ID" not in component


def _switches_on(occurrence: Any, source: CalendarSource) -> bool:
    """Whether a calendar occurrence counts, by its status, TRANSP and kind."""
    if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
        return False
    if (
        str(occurrence.get("TRANSP", "")).upper() == "TRANSPARENT"
        and not source.transparent
    ):
        return False
    return source.all_day or isinstance(occurrence.start, datetime)


def _calendar_zone(calendar: Any) -> ZoneInfo | None:
    """The zone a calendar names with X-WR-TIMEZONE, if it is a known one."""
    name = calendar.get("X-WR-TIMEZONE")
    if name is None:
        return None
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None  # recurring_ical_events leaves the times floating then


def _lengths(vevents: list[tuple[str, Any]], zone: ZoneInfo) -> _Lengths:
    """The length of every VEVENT, keyed as :data:`_Lengths`."""
    lengths: _Lengths = {}
    for uid, component in vevents:
        moved = component.get("RECURRENCE-ID")
        key = None if moved is None else _ns(_localize(moved.dt, zone))
        lengths[uid, key] = _length(component, zone)
    return lengths


def _length(component: Any, zone: ZoneInfo) -> _Length | None:
    """The length of one VEVENT, or None where the library's own end is right.

    All-day events need no fixing (dates have no DST), and one without DTEND
    or DURATION has zero length, which never counts.
    """
    start = component["DTSTART"].dt
    if not isinstance(start, datetime):
        return None
    if "DTEND" in component:
        end = component["DTEND"].dt
        return _Length(
            0, (_ns(_localize(end, zone)) - _ns(_localize(start, zone))) // NS
        )
    if "DURATION" in component:
        duration = component["DURATION"].dt
        return _Length(duration.days, duration.seconds)
    return None


def _length_of(
    occurrence: Any, lengths: _Lengths, floating: ZoneInfo
) -> _Length | None:
    """The length of an occurrence of the expansion.

    A moved occurrence has a component of its own, found by its
    RECURRENCE-ID (read like :func:`_lengths` reads it); any other takes the
    length of its series.
    """
    uid = str(occurrence.get("UID", ""))
    moved = (uid, _ns(_localize(occurrence["RECURRENCE-ID"].dt, floating)))
    return lengths[moved] if moved in lengths else lengths.get((uid, None))


def _span(
    occurrence: Any, zone: ZoneInfo, floating: ZoneInfo, length: _Length | None
) -> tuple[str, int, int]:
    """UID, start and end of a calendar occurrence, in ns since the epoch.

    Dates are read in the group's ``zone``, floating times in ``floating``
    (as the expansion reads them). Without a ``length``, the occurrence's
    own end is right.
    """
    start = _local(occurrence.start, zone, floating)
    if length is None:
        end_ns = _ns(_local(occurrence.end, zone, floating))
    else:
        end_ns = length.end_ns(start)
    return str(occurrence.get("UID", "")), _ns(start), end_ns


def _local(value: date, zone: ZoneInfo, floating: ZoneInfo) -> datetime:
    """A date's midnight in ``zone``, a floating time as wall time in ``floating``."""
    return _localize(value, floating if isinstance(value, datetime) else zone)


def _localize(value: date, zone: tzinfo) -> datetime:
    """An aware datetime: a date is its midnight, floating time is wall time in zone."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        return value.replace(tzinfo=zone, fold=0)
    return value
