"""Schedules: the validated, immutable model of a fleet and its events.

A schedule file (YAML) names the fleet (groups of clients, and clients of
their own), the events that switch TVs on, client overrides that force a
state, and the iCalendar files whose events belong to a group. Every
bad-input error of tvpower is born here, as a :class:`ScheduleError` naming
the file, the entry and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events
import yaml

# python-dateutil comes with pandas and icalendar; the venv has no stubs for it.
from dateutil.rrule import rrulestr

from tvpower.errors import ScheduleError

DEFAULT_GRACE_SECONDS = 30
DEFAULT_TTL_SECONDS = 600
MIN_TTL_SECONDS = 60
RESERVED_CLIENT_IDS = frozenset({"groups"})

DesiredState = Literal["on", "off"]


@dataclass(frozen=True)
class CalendarSource:
    """An iCalendar file whose events belong to one group.

    ``transparent`` and ``all_day`` say whether events marked free
    (``TRANSP:TRANSPARENT``) and all-day events switch TVs on. ``query`` is
    the calendar's ``recurring_ical_events`` query, made once and kept: its
    rule caches make later expansions of the same calendar ten times faster.
    """

    path: Path
    group_id: str
    calendar: Any = field(compare=False, repr=False)  # icalendar.Calendar
    transparent: bool = False
    all_day: bool = False
    query: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Group:
    """A group of clients (a room, a floor, a site), with its settings resolved.

    ``clients`` lists every member: those the group lists, then those whose
    own entry names the group.
    """

    id: str
    clients: tuple[str, ...]
    timezone: ZoneInfo
    grace_seconds: int
    merge_gap_seconds: int
    lead_seconds: int
    calendars: tuple[CalendarSource, ...] = ()


@dataclass(frozen=True)
class Client:
    """One TV client, with its settings resolved (client, group, schedule).

    ``own_settings`` is true when the client's entry sets ``merge_gap`` or
    ``lead_seconds`` itself, so its timeline cannot be shared with its group.
    """

    id: str
    group_id: str | None
    timezone: ZoneInfo
    grace_seconds: int
    merge_gap_seconds: int
    lead_seconds: int
    own_settings: bool = False


@dataclass(frozen=True)
class Event:
    """One event of the schedule file, recurring or not.

    ``start``, ``end`` and ``exdates`` are aware datetimes: in the applicable
    zone (a ``ZoneInfo``) when the file gave local wall time, otherwise with
    the file's fixed offset; recurrences expand in that zone.
    ``desired_state`` is set only on client overrides. ``entry`` names the
    event in error messages, like ``events[3] (id 'talk')``.
    """

    id: str
    owner_kind: Literal["group", "client"]
    owner_id: str
    start: datetime
    end: datetime
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    desired_state: DesiredState | None = None
    entry: str = ""


@dataclass(frozen=True)
class Schedule:
    """A whole schedule file: the fleet, its events and calendars, validated.

    ``clients`` holds every client, also those only listed in a group.
    """

    path: Path
    timezone: ZoneInfo
    ttl_seconds: int
    groups: Mapping[str, Group]
    clients: Mapping[str, Client]
    events: tuple[Event, ...]


def load_schedule(path: str | os.PathLike[str]) -> Schedule:
    """Read and validate the YAML schedule file at ``path``.

    Calendar files named by groups are read too, relative to the schedule
    file's directory. Any bad input raises :class:`ScheduleError` naming the
    file (as given), the entry and the field.
    """
    source = Path(path)
    top = _Entry(os.fspath(path))
    document = _read_document(source, top)
    settings = _schedule_settings(document, top)
    groups, clients = _fleet(document, settings, source.parent, top)
    return Schedule(
        path=source,
        timezone=settings.timezone,
        ttl_seconds=_ttl_seconds(document, top),
        groups=groups,
        clients=clients,
        events=_events(document.get("events"), groups, clients, top),
    )


# --- Where a value sits, and how errors show it -----------------------------

_SCHEDULE_KEYS = (
    "clients",
    "events",
    "grace_seconds",
    "groups",
    "lead_seconds",
    "merge_gap",
    "timezone",
    "ttl_seconds",
)
_GROUP_KEYS = (
    "calendars",
    "clients",
    "grace_seconds",
    "lead_seconds",
    "merge_gap",
    "timezone",
)
_CLIENT_KEYS = ("grace_seconds", "group", "lead_seconds", "merge_gap", "timezone")
_CALENDAR_KEYS = ("all_day", "path", "transparent")
_EVENT_KEYS = (
    "client",
    "desired_state",
    "end",
    "exdates",
    "group",
    "id",
    "rrule",
    "start",
    "timezone",
)


@dataclass(frozen=True)
class _Entry:
    """Where a value sits in the schedule file, so that errors can name it."""

    path: str
    name: str | None = None

    def at(self, name: str) -> _Entry:
        """Another entry of the same file."""
        return _Entry(self.path, name)

    def error(self, message: str, field: str | None = None) -> ScheduleError:
        """The error for a bad value of this entry."""
        return ScheduleError(self.path, message, entry=self.name, field=field)


def _describe(value: object) -> str:
    """How an error message shows a value that the file gave."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _listing(names: Iterable[str]) -> str:
    """Names for an error message, shortened for large fleets."""
    shown = [repr(name) for name in names]
    if not shown:
        return "none is declared"
    if len(shown) > 10:
        shown = [*shown[:10], "..."]
    return ", ".join(shown)


# --- Reading the file -------------------------------------------------------

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class _ScheduleLoader(yaml.SafeLoader):
    """Safe YAML loading without the YAML 1.1 readings that hurt schedules.

    Times stay strings, because only tvpower knows the zone they are in.
    Only true and false are booleans, so ``desired_state: off`` stays the
    string "off". A key given twice in one mapping is an error rather than a
    silent overwrite, so that a pasted second ``events:`` cannot hide the
    first.
    """

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key_node.value!r} twice",
                    key_node.start_mark,
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_ScheduleLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in {_TIMESTAMP_TAG, _BOOL_TAG}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ScheduleLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read_document(source: Path, top: _Entry) -> dict[str, Any]:
    """The schedule file's top-level mapping."""
    try:
        text = source.read_bytes()
    except OSError as error:
        raise top.error(f"cannot read the file: {error.strerror or error}") from error
    try:
        document = yaml.load(text, Loader=_ScheduleLoader)
    except yaml.YAMLError as error:
        raise top.error(f"invalid YAML{_yaml_problem(error)}") from error
    if not isinstance(document, dict):
        found = "an empty file" if document is None else _describe(document)
        raise top.error(
            f"expected a mapping with the keys {', '.join(_SCHEDULE_KEYS)}, got {found}"
        )
    _check_keys(document, _SCHEDULE_KEYS, top)
    return document


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line: where it is, what is wrong, in what context."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return f": {error}"
    text = f"{_at(error.problem_mark)}: {error.problem}"
    if error.context:
        text += f" ({error.context}{_at(error.context_mark)})"
    return text


def _at(mark: yaml.Mark | None) -> str:
    """Where a YAML mark points, counting from 1 like editors do."""
    if mark is None:
        return ""
    return f" at line {mark.line + 1}, column {mark.column + 1}"


def _check_keys(
    raw: Mapping[Any, Any], allowed: tuple[str, ...], entry: _Entry
) -> None:
    """Reject keys the format does not know, so that typos are caught."""
    for key in raw:
        if key not in allowed:
            raise entry.error(
                f"unknown key; expected one of {', '.join(allowed)}", str(key)
            )


def _require(raw: Mapping[str, Any], key: str, entry: _Entry, expected: str) -> Any:
    """The value of a key that must be present."""
    if key not in raw:
        raise entry.error(f"missing; expected {expected}", key)
    return raw[key]


def _mapping(value: Any, entry: _Entry, field: str | None = None) -> dict[str, Any]:
    """A mapping value; null counts as an empty mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise entry.error(f"expected a mapping, got {_describe(value)}", field)
    return value


# --- Plain values -----------------------------------------------------------

_ZONE_EXPECTED = "an IANA time zone name like 'Europe/Berlin'"
_ISO_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)
_DATE_AND_TIME = re.compile(r"\d{4}-?\d{2}-?\d{2}[Tt ]\d")


def _zone(value: Any, entry: _Entry, field: str) -> ZoneInfo:
    """An IANA time zone."""
    if isinstance(value, str) and value:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # a name that is no zone: reported below like any bad value
    raise entry.error(f"expected {_ZONE_EXPECTED}, got {_describe(value)}", field)


def _seconds(
    value: Any, entry: _Entry, field: str, *, minimum: int = 0, iso: bool = False
) -> int:
    """Whole seconds, or (with ``iso``) an ISO 8601 duration like 'PT15M'."""
    if isinstance(value, str) and iso:
        seconds = _iso_duration_seconds(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        seconds = None
    if seconds is not None and seconds >= minimum:
        return seconds

    expected = (
        "non-negative whole seconds" if minimum == 0 else f"whole seconds >= {minimum}"
    )
    if iso:
        expected += " or an ISO 8601 duration like 'PT15M'"
    raise entry.error(f"expected {expected}, got {_describe(value)}", field)


def _iso_duration_seconds(text: str) -> int | None:
    """The seconds of an ISO 8601 duration without years and months, or None."""
    match = _ISO_DURATION.fullmatch(text)
    if match is None or not any(match.groups()) or text.endswith("T"):
        return None
    parts = {name: int(value or 0) for name, value in match.groupdict().items()}
    return int(timedelta(**parts).total_seconds())


def _bool(value: Any, entry: _Entry, field: str) -> bool:
    """A YAML true or false."""
    if not isinstance(value, bool):
        raise entry.error(f"expected true or false, got {_describe(value)}", field)
    return value


def _text(value: Any, entry: _Entry, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise entry.error(f"expected a non-empty string, got {_describe(value)}", field)
    return value


def _topic_level(value: Any, entry: _Entry, field: str | None, kind: str) -> str:
    """An id that becomes one level of an MQTT topic."""
    if not isinstance(value, str) or not value or any(c in value for c in "/+#\0"):
        raise entry.error(
            f"expected each {kind} id to be one MQTT topic level "
            f"(not empty, without '/', '+', '#' or NUL), got {_describe(value)}",
            field,
        )
    return value


def _client_id(value: Any, entry: _Entry, field: str | None) -> str:
    """A client id: a topic level that is not reserved for group topics."""
    client_id = _topic_level(value, entry, field, "client")
    if client_id in RESERVED_CLIENT_IDS:
        raise entry.error(
            f"expected a client id other than {client_id!r} "
            f"(reserved for the group topics), got {client_id!r}",
            field,
        )
    return client_id


def _instant(value: Any, zone: ZoneInfo, entry: _Entry, field: str) -> datetime:
    """An aware datetime, floored to whole seconds.

    Local wall time gets ``zone`` with fold=0, which is RFC 5545's reading:
    a time in a DST gap moves forward by the gap, an ambiguous one means its
    first occurrence.
    """
    if isinstance(value, str) and _DATE_AND_TIME.match(value):
        try:
            moment = datetime.fromisoformat(value).replace(microsecond=0)
        except ValueError:
            pass  # looks like a date and time but is none: reported below
        else:
            if moment.tzinfo is None:
                return moment.replace(tzinfo=zone, fold=0)
            return moment
    raise entry.error(
        "expected an ISO 8601 date and time like '2019-03-05T14:00:00+01:00', "
        f"got {_describe(value)}",
        field,
    )


# --- Settings that clients inherit ------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """Settings a client inherits from its group, and a group from the schedule."""

    timezone: ZoneInfo
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    merge_gap_seconds: int = 0
    lead_seconds: int = 0

    def updated(self, raw: Mapping[str, Any], entry: _Entry) -> _Settings:
        """These settings, with those that ``raw`` sets itself replaced."""
        changes: dict[str, Any] = {}
        if "timezone" in raw:
            changes["timezone"] = _zone(raw["timezone"], entry, "timezone")
        if "grace_seconds" in raw:
            changes["grace_seconds"] = _seconds(
                raw["grace_seconds"], entry, "grace_seconds"
            )
        if "merge_gap" in raw:
            changes["merge_gap_seconds"] = _seconds(
                raw["merge_gap"], entry, "merge_gap", iso=True
            )
        if "lead_seconds" in raw:
            changes["lead_seconds"] = _seconds(
                raw["lead_seconds"], entry, "lead_seconds"
            )
        return replace(self, **changes)


def _schedule_settings(document: Mapping[str, Any], top: _Entry) -> _Settings:
    """The schedule-wide zone and defaults."""
    zone = _zone(_require(document, "timezone", top, _ZONE_EXPECTED), top, "timezone")
    return _Settings(timezone=zone).updated(document, top)


def _ttl_seconds(document: Mapping[str, Any], top: _Entry) -> int:
    """How long a published intent stays valid."""
    value = document.get("ttl_seconds", DEFAULT_TTL_SECONDS)
    return _seconds(value, top, "ttl_seconds", minimum=MIN_TTL_SECONDS)


# --- The fleet: groups and clients ------------------------------------------


def _fleet(
    document: Mapping[str, Any], settings: _Settings, directory: Path, top: _Entry
) -> tuple[dict[str, Group], dict[str, Client]]:
    """The groups, and every client, with their settings resolved."""
    groups_raw = _section(document, "groups", _GROUP_KEYS, top)
    clients_raw = _section(document, "clients", _CLIENT_KEYS, top)
    members = _memberships(groups_raw, clients_raw, top)
    group_settings = {
        group_id: settings.updated(raw, top.at(f"groups.{group_id}"))
        for group_id, raw in groups_raw.items()
    }

    groups = {
        group_id: _group(
            group_id, raw, members, group_settings[group_id], directory, top
        )
        for group_id, raw in groups_raw.items()
    }
    clients = {
        client_id: _client(
            client_id,
            group_id,
            clients_raw.get(client_id, {}),
            group_settings[group_id] if group_id else settings,
            top,
        )
        for client_id, group_id in members.items()
    }
    return groups, clients


def _section(
    document: Mapping[str, Any], key: str, allowed: tuple[str, ...], top: _Entry
) -> dict[str, dict[str, Any]]:
    """The ``groups`` or ``clients`` section: ids checked, entries mappings."""
    kind = key.removesuffix("s")
    section: dict[str, dict[str, Any]] = {}
    for item_id, body in _mapping(document.get(key), top, key).items():
        if kind == "client":
            _client_id(item_id, top.at(key), None)
        else:
            _topic_level(item_id, top.at(key), None, kind)
        entry = top.at(f"{key}.{item_id}")
        section[item_id] = _mapping(body, entry)
        _check_keys(section[item_id], allowed, entry)
    return section


def _memberships(
    groups_raw: Mapping[str, Mapping[str, Any]],
    clients_raw: Mapping[str, Mapping[str, Any]],
    top: _Entry,
) -> dict[str, str | None]:
    """Every client id, with the group it belongs to (None for none)."""
    members: dict[str, str | None] = {}
    for group_id, raw in groups_raw.items():
        entry = top.at(f"groups.{group_id}")
        for client_id in _client_list(raw.get("clients"), entry):
            if client_id in members:
                raise entry.error(
                    "expected each client in at most one group, got "
                    f"{client_id!r} again (already in group {members[client_id]!r})",
                    "clients",
                )
            members[client_id] = group_id
    for client_id, raw in clients_raw.items():
        entry = top.at(f"clients.{client_id}")
        members[client_id] = _named_group(
            raw, members.get(client_id), groups_raw, entry
        )
    return members


def _client_list(value: Any, entry: _Entry) -> list[str]:
    """A group's list of client ids."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise entry.error(
            f"expected a list of client ids, got {_describe(value)}", "clients"
        )
    return [_client_id(item, entry, "clients") for item in value]


def _named_group(
    raw: Mapping[str, Any],
    listed_in: str | None,
    groups_raw: Mapping[str, Any],
    entry: _Entry,
) -> str | None:
    """The group a client entry names, which must agree with the group listing it."""
    if "group" not in raw:
        return listed_in
    named = raw["group"]
    if not isinstance(named, str) or named not in groups_raw:
        raise entry.error(
            f"expected a declared group ({_listing(groups_raw)}), "
            f"got {_describe(named)}",
            "group",
        )
    if listed_in is not None and named != listed_in:
        raise entry.error(
            f"expected {listed_in!r}, the group that lists this client, got {named!r}",
            "group",
        )
    return named


def _group(
    group_id: str,
    raw: Mapping[str, Any],
    members: Mapping[str, str | None],
    settings: _Settings,
    directory: Path,
    top: _Entry,
) -> Group:
    """One group, with its members, settings and calendars."""
    entry = top.at(f"groups.{group_id}")
    return Group(
        id=group_id,
        clients=tuple(client for client, group in members.items() if group == group_id),
        timezone=settings.timezone,
        grace_seconds=settings.grace_seconds,
        merge_gap_seconds=settings.merge_gap_seconds,
        lead_seconds=settings.lead_seconds,
        calendars=_calendars(raw.get("calendars"), group_id, directory, entry),
    )


def _client(
    client_id: str,
    group_id: str | None,
    raw: Mapping[str, Any],
    inherited: _Settings,
    top: _Entry,
) -> Client:
    """One client, with its settings resolved."""
    settings = inherited.updated(raw, top.at(f"clients.{client_id}"))
    return Client(
        id=client_id,
        group_id=group_id,
        timezone=settings.timezone,
        grace_seconds=settings.grace_seconds,
        merge_gap_seconds=settings.merge_gap_seconds,
        lead_seconds=settings.lead_seconds,
        own_settings="merge_gap" in raw or "lead_seconds" in raw,
    )


# --- Calendar files ---------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _calendars(
    value: Any, group_id: str, directory: Path, entry: _Entry
) -> tuple[CalendarSource, ...]:
    """A group's calendar files, read and parsed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise entry.error(
            f"expected a list of calendar paths, got {_describe(value)}", "calendars"
        )
    return tuple(
        _calendar(
            item, entry.at(f"{entry.name}.calendars[{index}]"), group_id, directory
        )
        for index, item in enumerate(value)
    )


def _calendar(
    item: Any, entry: _Entry, group_id: str, directory: Path
) -> CalendarSource:
    """One calendar: a path, or a mapping of path, transparent and all_day."""
    raw = {"path": item} if isinstance(item, str) else _mapping(item, entry)
    _check_keys(raw, _CALENDAR_KEYS, entry)
    given = _text(_require(raw, "path", entry, "a path to an .ics file"), entry, "path")
    transparent = _bool(raw.get("transparent", False), entry, "transparent")
    all_day = _bool(raw.get("all_day", False), entry, "all_day")

    group_entry = entry.at(f"groups.{group_id}")
    calendar, query = _read_calendar(directory / given, given, group_entry)
    return CalendarSource(
        directory / given, group_id, calendar, transparent, all_day, query
    )


def _read_calendar(path: Path, given: str, entry: _Entry) -> tuple[Any, Any]:
    """The parsed icalendar.Calendar in ``path``, and its query, tried out once.

    icalendar parses property values lazily and recurring_ical_events reads
    them only when it expands, so a short trial expansion finds broken
    values now rather than in the middle of a publisher run.
    """
    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
        if calendar.name != "VCALENDAR":
            raise ValueError(f"found a {calendar.name} where a VCALENDAR belongs")
        query = recurring_ical_events.of(calendar)
        query.between(_EPOCH, _EPOCH + timedelta(days=1))
    except OSError as error:
        raise _calendar_error(
            path, given, entry, error.strerror or str(error)
        ) from error
    except KeyError as error:
        reason = f"a component lacks the property {error}"
        raise _calendar_error(path, given, entry, reason) from error
    except (ValueError, TypeError) as error:
        raise _calendar_error(path, given, entry, str(error)) from error
    return calendar, query


def _calendar_error(
    path: Path, given: str, entry: _Entry, reason: str
) -> ScheduleError:
    """The error for a calendar file that cannot be used."""
    where = "" if str(path) == given else f" (at {path})"
    return entry.error(
        f"expected a readable iCalendar file, got {given!r}{where}: {reason}",
        "calendars",
    )


# --- Events -----------------------------------------------------------------

_RRULE_EXPECTED = "an RFC 5545 RRULE value like 'FREQ=WEEKLY;BYDAY=TU'"
_DESIRED_STATES: dict[str, DesiredState] = {"on": "on", "off": "off"}

_Owner = TypeVar("_Owner", Group, Client)


def _events(
    value: Any,
    groups: Mapping[str, Group],
    clients: Mapping[str, Client],
    top: _Entry,
) -> tuple[Event, ...]:
    """The schedule's events, each checked, with unique ids."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise top.error(f"expected a list of events, got {_describe(value)}", "events")
    events: dict[str, Event] = {}
    for index, raw in enumerate(value):
        event = _event(index, raw, groups, clients, top)
        if event.id in events:
            raise top.at(event.entry).error(
                f"expected a unique id, got {event.id!r}, "
                f"already used by {events[event.id].entry}",
                "id",
            )
        events[event.id] = event
    return tuple(events.values())


def _event(
    index: int,
    raw: Any,
    groups: Mapping[str, Group],
    clients: Mapping[str, Client],
    top: _Entry,
) -> Event:
    """One event: its owner, times, recurrence and override state."""
    entry = top.at(_event_entry(index, raw))
    raw = _mapping(raw, entry)
    _check_keys(raw, _EVENT_KEYS, entry)
    event_id = _text(_require(raw, "id", entry, "a non-empty string"), entry, "id")
    owner_kind, owner = _owner(raw, groups, clients, entry)

    zone = (
        _zone(raw["timezone"], entry, "timezone")
        if "timezone" in raw
        else owner.timezone
    )
    start, end = _times(raw, zone, entry)
    rrule = _rrule(raw, start, entry)
    return Event(
        id=event_id,
        owner_kind=owner_kind,
        owner_id=owner.id,
        start=start,
        end=end,
        rrule=rrule,
        exdates=_exdates(raw, rrule, zone, entry),
        desired_state=_desired_state(raw, owner_kind, entry),
        entry=entry.name or "",
    )


def _event_entry(index: int, raw: Any) -> str:
    """How error messages name an event: by position, and by id if it has one."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(event_id, str):
        return f"events[{index}] (id {event_id!r})"
    return f"events[{index}]"


def _owner(
    raw: Mapping[str, Any],
    groups: Mapping[str, Group],
    clients: Mapping[str, Client],
    entry: _Entry,
) -> tuple[Literal["group", "client"], Group | Client]:
    """The declared group or client an event belongs to."""
    if ("group" in raw) == ("client" in raw):
        found = "both" if "group" in raw else "neither"
        raise entry.error(f"expected exactly one of 'group' and 'client', got {found}")
    if "group" in raw:
        return "group", _declared(raw["group"], groups, entry, "group")
    return "client", _declared(raw["client"], clients, entry, "client")


def _declared(
    value: Any, known: Mapping[str, _Owner], entry: _Entry, field: str
) -> _Owner:
    """The group or client that an event names."""
    if not isinstance(value, str) or value not in known:
        raise entry.error(
            f"expected a declared {field} ({_listing(known)}), got {_describe(value)}",
            field,
        )
    return known[value]


def _times(
    raw: Mapping[str, Any], zone: ZoneInfo, entry: _Entry
) -> tuple[datetime, datetime]:
    """An event's start and end, the end strictly later."""
    expected = "an ISO 8601 date and time"
    start = _instant(_require(raw, "start", entry, expected), zone, entry, "start")
    end = _instant(_require(raw, "end", entry, expected), zone, entry, "end")
    # Compare instants: aware datetimes in one zone compare by wall time.
    if end.timestamp() <= start.timestamp():
        raise entry.error(
            f"must be after start {start.isoformat()}, got {end.isoformat()}", "end"
        )
    return start, end


def _rrule(raw: Mapping[str, Any], start: datetime, entry: _Entry) -> str | None:
    """An RRULE value that both icalendar and dateutil understand."""
    if "rrule" not in raw:
        return None
    value = raw["rrule"]
    if not isinstance(value, str):
        raise entry.error(
            f"expected {_RRULE_EXPECTED}, got {_describe(value)}", "rrule"
        )
    try:
        if "FREQ" not in icalendar.vRecur.from_ical(value):
            raise ValueError("FREQ is missing")
        rrulestr(value, dtstart=start)
    except (ValueError, TypeError) as error:
        raise entry.error(
            f"expected {_RRULE_EXPECTED}, got {value!r}: {error}", "rrule"
        ) from error
    return value


def _exdates(
    raw: Mapping[str, Any], rrule: str | None, zone: ZoneInfo, entry: _Entry
) -> tuple[datetime, ...]:
    """The instants removed from a recurring event."""
    if "exdates" not in raw:
        return ()
    value = raw["exdates"]
    if rrule is None:
        raise entry.error("allowed only together with 'rrule'", "exdates")
    if not isinstance(value, list):
        raise entry.error(
            f"expected a list of date-times, got {_describe(value)}", "exdates"
        )
    return tuple(
        _instant(item, zone, entry, f"exdates[{index}]")
        for index, item in enumerate(value)
    )


def _desired_state(
    raw: Mapping[str, Any], owner_kind: str, entry: _Entry
) -> DesiredState | None:
    """The state a client override forces, or None for an ordinary event."""
    if "desired_state" not in raw:
        return None
    value = raw["desired_state"]
    if owner_kind != "client":
        raise entry.error(
            f"allowed only on client events (overrides), got {_describe(value)} "
            "on a group event",
            "desired_state",
        )
    state = _DESIRED_STATES.get(value) if isinstance(value, str) else None
    if state is None:
        raise entry.error(
            f"expected 'on' or 'off', got {_describe(value)}", "desired_state"
        )
    return state
