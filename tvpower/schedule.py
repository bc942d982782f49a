"""Schedules: the validated, immutable model of a fleet and its events.

A schedule file (YAML) names the fleet (groups of clients, and clients of
their own), the events that switch TVs on, client overrides that force a
state, and the iCalendar files whose events belong to a group. Every
bad-input error of tvpower is born here, as a :class:`ScheduleError` naming
the file, the entry and the field.
"""

from __future__ import annotations

import logging
import math
import os
import re
import reprlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
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
#: The MQTT Message Expiry Interval is 32-bit; a day is plenty for a refresh.
MAX_TTL_SECONDS = 86_400
#: grace_seconds, lead_seconds and merge_gap: longer is no TV schedule.
MAX_SETTING_SECONDS = 7 * 86_400
RESERVED_CLIENT_IDS = frozenset({"groups"})
#: The longest client or group id, in bytes of UTF-8.
MAX_ID_BYTES = 200
#: The instants a schedule may name: well inside the engine's int64
#: nanoseconds (years 1677 to 2262). Calendar occurrences outside them are
#: skipped when expanding.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
#: A recurrence rule may give at most this many occurrences a day: an
#: hourly rule over ten years is already 87,600 rows to expand.
MAX_OCCURRENCES_PER_DAY = 24

DesiredState = Literal["on", "off"]

_log = logging.getLogger(__name__)


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
    the file's fixed offset; recurrences expand in the zone of ``start``.
    Each exdate removes the occurrence that starts at its instant, if any.
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
    document = _read_document(top)
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
# A scenario for ``tvpower.sim`` is a schedule with these keys added; the
# publisher runs it as a schedule and leaves them to the simulation.
SCENARIO_KEYS = ("expect", "simulation", "timeline")
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


#: How many characters of a value or of raw input an error message shows.
_EXCERPT = 80


def describe(value: object) -> str:
    """How an error message shows a value that the file gave: short, one line.

    Containers are shown only as deep and as long as a line allows (a YAML
    alias can make a small file hold a huge one); longer, they are named.
    """
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return _excerpt(value)
    text = " ".join(_SHORT.repr(value).split())  # one line, whatever the type
    if len(text) <= _EXCERPT:
        return text
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{text[: _EXCERPT - 3]}..."


_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxlevel = 3
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 4
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = _EXCERPT


def _excerpt(text: str) -> str:
    """A string as a Python literal (control characters escaped), cut short."""
    if len(text) > _EXCERPT:
        return f"{text[:_EXCERPT]!r}..."
    return repr(text)


def _one_line(reason: str) -> str:
    """A third-party error message, which may quote raw input, made safe to show.

    Characters that are not printable, and the replacement character that
    stands for undecodable bytes, are escaped; a long message keeps its head
    and its tail, where the libraries put what went wrong.
    """
    text = "".join(
        c if c.isprintable() and c != "\ufffd" else ascii(c)[1:-1] for c in reason
    )
    if len(text) > 2 * _EXCERPT:
        return f"{text[:_EXCERPT]} ... {text[-_EXCERPT // 2 :]}"
    return text


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
_MAX_YAML_DEPTH = 50
#: Files are read whole; a device like /dev/zero must not fill the memory.
_MAX_FILE_BYTES = 64 * 1024 * 1024
#: Anchors may repeat a node, but not blow a small file up into a huge
#: document ("billion laughs"): the nodes a reader would see, aliases
#: expanded, may be at most this many more than the file's own.
_MAX_ALIAS_EXPANSION = 100_000


class ScheduleLoader(yaml.SafeLoader):
    """Safe YAML loading without the YAML 1.1 readings that hurt schedules.

    Times stay strings, because only tvpower knows the zone they are in.
    Only true and false are booleans, so ``desired_state: off`` stays the
    string "off". A key given twice in one mapping is an error rather than a
    silent overwrite, so that a pasted second ``events:`` cannot hide the
    first. Nesting deeper than any schedule needs is an error too, before
    PyYAML's recursion runs out of stack.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > _MAX_YAML_DEPTH:
                # The stubs leave peek_event untyped; it returns a yaml.Event.
                event: Any = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested too deeply (more than {_MAX_YAML_DEPTH} levels)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_aliases(node)
        return node

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


def _check_aliases(root: yaml.Node) -> None:
    """No alias inside the node it names, and no blow-up or deep nest by aliases.

    One pass over the distinct nodes, depth first without recursion (aliased
    nodes can chain deeper than Python's stack), counting each node's size
    with its aliases expanded.
    """
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            depths[key] = 1 + max((depths[id(child)] for child in children), default=0)
            if depths[key] > _MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"aliases nest it more than {_MAX_YAML_DEPTH} levels deep",
                    node.start_mark,
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "an alias inside the node it names", node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise yaml.composer.ComposerError(
                    None, None, "an alias inside the node it names", child.start_mark
                )
            if id(child) not in sizes:
                stack.append((child, False))
    if sizes[id(root)] > len(sizes) + _MAX_ALIAS_EXPANSION:
        raise yaml.composer.ComposerError(
            None,
            None,
            f"aliases expand the document to {sizes[id(root)]:,} nodes, more than "
            f"{_MAX_ALIAS_EXPANSION:,} beyond its own",
            root.start_mark,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


ScheduleLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in {_TIMESTAMP_TAG, _BOOL_TAG}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ScheduleLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read_bytes(path: Path) -> bytes:
    """The bytes of a file, refusing files larger than any schedule or calendar."""
    with path.open("rb") as file:
        data = file.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise OSError(f"larger than {_MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return data


def read_yaml_mapping(
    path: str | os.PathLike[str], expected: str = "a mapping"
) -> dict[str, Any]:
    """The top-level mapping of a YAML file, read as schedules are read.

    Times stay strings (see :class:`ScheduleLoader`); a file that is too
    large, is not YAML or holds no mapping raises :class:`ScheduleError`
    naming the file, with ``expected`` saying what it should hold.
    """
    top = _Entry(os.fspath(path))
    source = Path(path)
    if source.exists() and not (source.is_file() or source.is_dir()):
        raise top.error("cannot read the file: not a regular file")
    try:
        text = _read_bytes(source)
    except OSError as error:
        raise top.error(f"cannot read the file: {error.strerror or error}") from error
    try:
        document = yaml.load(text, Loader=ScheduleLoader)
    except yaml.YAMLError as error:
        raise top.error(f"invalid YAML{_yaml_problem(error)}") from error
    except RecursionError as error:
        raise top.error("invalid YAML: nested too deeply") from error
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise top.error(f"invalid YAML: {_one_line(str(error))}") from error
    if not isinstance(document, dict):
        found = "an empty file" if document is None else describe(document)
        raise top.error(f"expected {expected}, got {found}")
    return document


def _read_document(top: _Entry) -> dict[str, Any]:
    """The schedule file's top-level mapping."""
    expected = f"a mapping with the keys {', '.join(_SCHEDULE_KEYS)}"
    document = read_yaml_mapping(top.path, expected)
    if "schedule" in document:
        raise top.error(
            "a scenario that names its schedule file; give that file instead",
            "schedule",
        )
    _check_keys(document, _SCHEDULE_KEYS + SCENARIO_KEYS, top)
    return document


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line: where it is, what is wrong, in what context."""
    if isinstance(error, yaml.reader.ReaderError):
        character = error.character
        code = character if isinstance(character, int) else ord(character)
        return (
            f" at position {error.position}: "
            f"unacceptable character #x{code:04x}: {error.reason}"
        )
    if not isinstance(error, yaml.MarkedYAMLError):
        return f": {_one_line(str(error))}"
    text = f"{_at(error.problem_mark)}: {_one_line(str(error.problem))}"
    if error.context:
        text += f" ({_one_line(str(error.context))}{_at(error.context_mark)})"
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
        raise entry.error(f"expected a mapping, got {describe(value)}", field)
    return value


# --- Plain values -----------------------------------------------------------

_ZONE_EXPECTED = "an IANA time zone name like 'Europe/Berlin'"
_RRULE_EXPECTED = "an RFC 5545 RRULE value like 'FREQ=WEEKLY;BYDAY=TU'"
_ISO_DURATION = re.compile(
    r"P(?:(?P<weeks>[0-9]{1,20})W)?(?:(?P<days>[0-9]{1,20})D)?"
    r"(?:T(?:(?P<hours>[0-9]{1,20})H)?(?:(?P<minutes>[0-9]{1,20})M)?"
    r"(?:(?P<seconds>[0-9]{1,20})S)?)?"
)
_ISO_UNIT_SECONDS = {
    "weeks": 7 * 86_400,
    "days": 86_400,
    "hours": 3_600,
    "minutes": 60,
    "seconds": 1,
}
_DATE_AND_TIME = re.compile(r"\d{4}-?\d{2}-?\d{2}[Tt ]\d")


def _zone(value: Any, entry: _Entry, field: str) -> ZoneInfo:
    """An IANA time zone."""
    if isinstance(value, str) and value:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # a name that is no zone: reported below like any bad value
    raise entry.error(f"expected {_ZONE_EXPECTED}, got {describe(value)}", field)


def _seconds(
    value: Any,
    entry: _Entry,
    field: str,
    *,
    minimum: int = 0,
    maximum: int = MAX_SETTING_SECONDS,
    iso: bool = False,
) -> int:
    """Whole seconds in a range, or (with ``iso``) an ISO 8601 duration like 'PT15M'.

    The bounds keep every duration far inside the engine's int64
    nanoseconds and the MQTT expiry's 32 bits.
    """
    if isinstance(value, str) and iso:
        seconds = _iso_duration_seconds(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        seconds = None
    if seconds is not None and minimum <= seconds <= maximum:
        return seconds

    days = maximum // 86_400
    expected = (
        f"whole seconds from {minimum} to {maximum} "
        f"({days} day{'' if days == 1 else 's'})"
    )
    if iso:
        expected += " or an ISO 8601 duration like 'PT15M'"
    raise entry.error(f"expected {expected}, got {describe(value)}", field)


def _iso_duration_seconds(text: str) -> int | None:
    """The seconds of an ISO 8601 duration without years and months, or None."""
    match = _ISO_DURATION.fullmatch(text)
    if match is None or not any(match.groups()) or text.endswith("T"):
        return None
    return sum(
        int(value or 0) * _ISO_UNIT_SECONDS[unit]
        for unit, value in match.groupdict().items()
    )


def _bool(value: Any, entry: _Entry, field: str) -> bool:
    """A YAML true or false."""
    if not isinstance(value, bool):
        raise entry.error(f"expected true or false, got {describe(value)}", field)
    return value


def _text(value: Any, entry: _Entry, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise entry.error(f"expected a non-empty string, got {describe(value)}", field)
    return value


# MQTT (5.0, 1.5.4) forbids NUL and surrogates in topics and lets a broker
# treat control characters (C0, DEL, C1) and Unicode noncharacters as a
# malformed packet: it drops the connection, and with it the whole fleet.
_NOT_IN_TOPIC_LEVEL = re.compile("[/+#\x00-\x1f\x7f-\x9f\ufdd0-\ufdef]")


def _topic_level(value: Any, entry: _Entry, field: str | None, kind: str) -> str:
    """An id that becomes one level of an MQTT topic."""
    if isinstance(value, str) and _is_topic_level(value):
        return value

    found = describe(value)
    size = _utf8_size(value) if isinstance(value, str) else None
    if size is not None and size > MAX_ID_BYTES:
        found += f" ({size} bytes)"
    raise entry.error(
        f"expected each {kind} id to be one MQTT topic level (1 to {MAX_ID_BYTES} "
        "bytes of UTF-8, without '/', '+', '#', control characters or "
        f"noncharacters), got {found}",
        field,
    )


def _is_topic_level(text: str) -> bool:
    """Whether ``text`` is a safe MQTT topic level: short, and nothing forbidden."""
    size = _utf8_size(text)
    return (
        size is not None
        and 0 < size <= MAX_ID_BYTES
        and not _NOT_IN_TOPIC_LEVEL.search(text)
        # The noncharacters U+FFFE, U+FFFF, U+1FFFE, ... U+10FFFF
        and not any((ord(c) & 0xFFFE) == 0xFFFE for c in text)
    )


def _utf8_size(text: str) -> int | None:
    """The length of ``text`` in UTF-8, or None if it has lone surrogates."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


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
    """An aware datetime between the earliest and latest instants, whole seconds.

    Local wall time gets ``zone`` with fold=0, which is RFC 5545's reading:
    a time in a DST gap moves forward by the gap, an ambiguous one means its
    first occurrence.
    """
    moment = _parsed_instant(value, zone)
    if moment is None:
        raise entry.error(
            "expected an ISO 8601 date and time like '2019-03-05T14:00:00+01:00', "
            f"got {describe(value)}",
            field,
        )
    if not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise entry.error(f"expected {_INSTANT_RANGE}, got {describe(value)}", field)
    return moment


_INSTANT_RANGE = (
    f"an instant from {EARLIEST_INSTANT:%Y-%m-%dT%H:%M:%SZ} "
    f"to {LATEST_INSTANT:%Y-%m-%dT%H:%M:%SZ}"
)


def _parsed_instant(value: Any, zone: ZoneInfo) -> datetime | None:
    """The aware datetime an ISO 8601 string gives, or None if it gives none."""
    if not isinstance(value, str) or not _DATE_AND_TIME.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value).replace(microsecond=0)
    except ValueError:
        return None  # looks like a date and time but is none
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone, fold=0)
    return moment


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
    return _seconds(
        value, top, "ttl_seconds", minimum=MIN_TTL_SECONDS, maximum=MAX_TTL_SECONDS
    )


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
            f"expected a list of client ids, got {describe(value)}", "clients"
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
            f"got {describe(named)}",
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
        calendars=_calendars(
            raw.get("calendars"), group_id, settings.timezone, directory, entry
        ),
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
#: Longer calendar events are broken data, and their ends would overflow
#: datetime arithmetic in the recurrence libraries.
_LONGEST_EVENT = timedelta(days=365_250)
_LONGEST_EVENT_WORDS = "1000 years"
_ICAL_EXPECTED = {
    "DTSTART": "a date or date-time",
    "DTEND": "a date or date-time",
    "RECURRENCE-ID": "a date or date-time",
    "DURATION": "a duration like 'PT1H'",
    "EXDATE": "dates or date-times",
    "RDATE": "dates, date-times or periods",
    "RRULE": _RRULE_EXPECTED,
}
#: What the libraries raise on values they cannot use (KeyError: a missing
#: property; OverflowError: a date beyond the year 9999; IndexError: dateutil
#: on a rule it did not check).
_ICAL_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OverflowError,
    RecursionError,
    IndexError,
)


def _calendars(
    value: Any, group_id: str, zone: ZoneInfo, directory: Path, entry: _Entry
) -> tuple[CalendarSource, ...]:
    """A group's calendar files, read, parsed and checked."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise entry.error(
            f"expected a list of calendar paths, got {describe(value)}", "calendars"
        )
    return tuple(
        _calendar(
            item,
            entry.at(f"{entry.name}.calendars[{index}]"),
            group_id,
            zone,
            directory,
        )
        for index, item in enumerate(value)
    )


def _calendar(
    item: Any, entry: _Entry, group_id: str, zone: ZoneInfo, directory: Path
) -> CalendarSource:
    """One calendar: a path, or a mapping of path, transparent and all_day."""
    raw = {"path": item} if isinstance(item, str) else _mapping(item, entry)
    _check_keys(raw, _CALENDAR_KEYS, entry)
    given = _text(_require(raw, "path", entry, "a path to an .ics file"), entry, "path")
    transparent = _bool(raw.get("transparent", False), entry, "transparent")
    all_day = _bool(raw.get("all_day", False), entry, "all_day")

    file = _CalendarFile(directory / given, given, entry.at(f"groups.{group_id}"))
    calendar, query = _read_calendar(file, zone)
    return CalendarSource(
        directory / given, group_id, calendar, transparent, all_day, query
    )


@dataclass(frozen=True)
class _CalendarFile:
    """A calendar file as the schedule names it, so that errors can name both."""

    path: Path
    given: str
    entry: _Entry

    def error(self, reason: str) -> ScheduleError:
        """The error for a calendar file that cannot be read or parsed."""
        return self.entry.error(
            f"expected a readable iCalendar file, got {describe(self.given)}"
            f"{self._where()}: {reason}",
            "calendars",
        )

    def event_error(self, event: str, problem: str) -> ScheduleError:
        """The error for one bad event of a calendar file."""
        return self.entry.error(
            f"calendar file {describe(self.given)}{self._where()}: {event}: {problem}",
            "calendars",
        )

    def _where(self) -> str:
        return "" if str(self.path) == self.given else f" (at {self.path})"


def _read_calendar(file: _CalendarFile, zone: ZoneInfo) -> tuple[Any, Any]:
    """The parsed icalendar.Calendar of a file, checked, and its query.

    icalendar parses property values lazily and recurring_ical_events reads
    them only when it expands, so every event is checked now (naming its
    UID), and a short trial expansion finds what is left, rather than in
    the middle of a publisher run.
    """
    try:
        calendar = icalendar.Calendar.from_ical(_read_bytes(file.path))
        if calendar.name != "VCALENDAR":
            raise ValueError(f"found a {calendar.name} where a VCALENDAR belongs")
        events = calendar.walk("VEVENT")
    except OSError as error:
        raise file.error(error.strerror or str(error)) from error
    except _ICAL_ERRORS as error:
        raise file.error(_ical_reason(error)) from error

    floating = _floating_zone(calendar, file, zone)
    for index, event in enumerate(events):
        _check_vevent(event, index, floating, file)
    try:
        query = recurring_ical_events.of(calendar)
        query.between(_EPOCH, _EPOCH + timedelta(days=1))
    except _ICAL_ERRORS as error:
        raise file.error(_ical_reason(error)) from error
    return calendar, query


def _ical_reason(error: Exception) -> str:
    """What a library error says, in one safe line."""
    if isinstance(error, KeyError):
        return f"a component lacks the property {_one_line(str(error))}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return _one_line(str(error))


def _floating_zone(calendar: Any, file: _CalendarFile, zone: ZoneInfo) -> ZoneInfo:
    """The zone of the calendar's floating times: its X-WR-TIMEZONE, or ``zone``.

    An X-WR-TIMEZONE that names no known zone is dropped (and logged), so
    that recurring_ical_events, which would fail on it, reads floating times
    like tvpower does: in the group's zone.
    """
    name = calendar.get("X-WR-TIMEZONE")
    if name is None:
        return zone
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        _log.warning(
            "calendar %s: unknown time zone %s in X-WR-TIMEZONE; "
            "floating times are read in %s",
            file.path,
            _excerpt(str(name)),
            zone,
        )
        del calendar["X-WR-TIMEZONE"]
        return zone


def _check_vevent(
    component: Any, index: int, floating: ZoneInfo, file: _CalendarFile
) -> None:
    """Reject an event whose times or rule tvpower cannot use."""
    try:
        problem = _vevent_problem(component, floating)
    except _ICAL_ERRORS as error:
        problem = _ical_reason(error)
    if problem is not None:
        raise file.event_error(_vevent_name(component, index), problem)


def _vevent_name(component: Any, index: int) -> str:
    """How errors name a calendar event: its UID, and its SUMMARY if short."""
    uid = component.get("UID")
    name = f"event {_excerpt(str(uid))}" if uid else f"VEVENT #{index + 1} (no UID)"
    summary = str(component.get("SUMMARY", ""))
    if 0 < len(summary) <= 40:
        name += f" ({_excerpt(summary)})"
    return name


def _vevent_problem(component: Any, floating: ZoneInfo) -> str | None:
    """What is wrong with one VEVENT's times or rules, or None."""
    for name, message in getattr(component, "errors", ()):
        if name in _ICAL_EXPECTED:
            return (
                f"property {name!r}: expected {_ICAL_EXPECTED[name]}, "
                f"got {_ical_text(component.get(name))}: {_one_line(message)}"
            )
    if "DTSTART" not in component:
        return f"property 'DTSTART': missing; expected {_ICAL_EXPECTED['DTSTART']}"
    return _length_problem(component, floating) or _rules_problem(component)


def _ical_text(value: Any) -> str:
    """A property value, short: as icalendar writes it, or as the file did if broken."""
    values = value if isinstance(value, list) else [value]
    broken = [item for item in values if isinstance(item, icalendar.vBroken)]
    item = (broken or values)[0]
    text = item.to_ical() if hasattr(item, "to_ical") else str(item)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return describe(text)


def _length_problem(component: Any, floating: ZoneInfo) -> str | None:
    """An end not after the start, or an event longer than any real one.

    Without DTEND and DURATION an all-day event lasts its day, and a timed
    one is an instant that never switches a TV on: both are fine.
    """
    start = component["DTSTART"].dt
    if "DTEND" in component:
        end = component["DTEND"].dt
        length = _as_instant(end, floating) - _as_instant(start, floating)
        if length <= timedelta(0):
            return (
                f"property 'DTEND': must be after DTSTART {start.isoformat()}, "
                f"got {end.isoformat()}"
            )
        if length > _LONGEST_EVENT:
            return (
                f"property 'DTEND': must be at most {_LONGEST_EVENT_WORDS} after "
                f"DTSTART {start.isoformat()}, got {end.isoformat()}"
            )
    elif "DURATION" in component:
        duration = component["DURATION"].dt
        if not timedelta(0) < duration <= _LONGEST_EVENT:
            return (
                f"property 'DURATION': expected a positive duration of at most "
                f"{_LONGEST_EVENT_WORDS}, got {_ical_text(component['DURATION'])}"
            )
    return None


def _as_instant(value: date, zone: ZoneInfo) -> datetime:
    """An aware datetime: a date is its midnight, floating time is wall time in zone."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        return value.replace(tzinfo=zone, fold=0)
    return value


def _rules_problem(component: Any) -> str | None:
    """A problem of one of the event's RRULEs, checked like a schedule's rrule."""
    rules = component.get("RRULE", [])
    for rule in rules if isinstance(rules, list) else [rules]:
        text = _ical_text(rule)
        parts = dict(rule)
        if "FREQ" not in parts:
            return (
                f"property 'RRULE': expected {_RRULE_EXPECTED}, got {text}: "
                "FREQ is missing"
            )
        # UNTIL is icalendar's to check: recurring_ical_events reconciles an
        # UNTIL that dateutil would refuse next to DTSTART.
        without_until = {key: value for key, value in parts.items() if key != "UNTIL"}
        recur: Any = icalendar.vRecur(without_until)
        try:
            rrulestr(recur.to_ical().decode(), dtstart=datetime(2000, 1, 1))
        except (ValueError, TypeError) as error:
            return (
                f"property 'RRULE': expected {_RRULE_EXPECTED}, got {text}: "
                f"{_one_line(str(error))}"
            )
        problem = _rule_problem(parts, text)
        if problem is not None:
            return f"property 'RRULE': {problem}"
    return None


# --- Events -----------------------------------------------------------------

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
        raise top.error(f"expected a list of events, got {describe(value)}", "events")
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
            f"expected a declared {field} ({_listing(known)}), got {describe(value)}",
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
    """An RRULE value that icalendar and dateutil understand, and that ends well.

    Its occurrences come at most hourly, and its UNTIL lies in the range of
    instants, not before the start.
    """
    if "rrule" not in raw:
        return None
    value = raw["rrule"]
    if not isinstance(value, str):
        raise entry.error(f"expected {_RRULE_EXPECTED}, got {describe(value)}", "rrule")
    try:
        parts = dict(icalendar.vRecur.from_ical(value))
        if "FREQ" not in parts:
            raise ValueError("FREQ is missing")
        rrulestr(value, dtstart=start)
    except (ValueError, TypeError) as error:
        raise entry.error(
            f"expected {_RRULE_EXPECTED}, got {describe(value)}: "
            f"{_one_line(str(error))}",
            "rrule",
        ) from error

    problem = _rule_problem(parts, describe(value)) or _until_problem(parts, start)
    if problem is not None:
        raise entry.error(problem, "rrule")
    return value


def _rule_problem(parts: Mapping[str, list[Any]], text: str) -> str | None:
    """Why a parsed recurrence rule would expand forever or too densely, or None.

    dateutil loops forever on INTERVAL=0 and the timeline of a rule that
    repeats every minute takes minutes and gigabytes, so rules repeat at
    most :data:`MAX_OCCURRENCES_PER_DAY` times a day.
    """
    if any(interval < 1 for interval in parts.get("INTERVAL", [])):
        return f"expected a positive INTERVAL, got {text}"
    if any(count < 1 for count in parts.get("COUNT", [])):
        return f"expected a positive COUNT, got {text}"
    byday = _byday_problem(parts, text)
    if byday is not None:
        return byday
    if "SECONDLY" in parts["FREQ"]:
        return (
            f"expected FREQ=MINUTELY or slower (SECONDLY is not supported), got {text}"
        )
    per_day = _occurrences_per_day(parts)
    if per_day > MAX_OCCURRENCES_PER_DAY:
        return (
            f"expected at most {MAX_OCCURRENCES_PER_DAY} occurrences a day "
            f"(FREQ=MINUTELY needs INTERVAL=60 or more), got {text}, "
            f"up to {per_day} a day"
        )
    return None


_BYDAY = re.compile(r"([+-]?[0-9]+)?[A-Z]{2}")


def _byday_problem(parts: Mapping[str, list[Any]], text: str) -> str | None:
    """A BYDAY ordinal beyond its month or year, which crashes dateutil, or None.

    Other rules than monthly and yearly ones ignore the ordinals.
    """
    freq = str(parts["FREQ"][0])
    if freq not in ("MONTHLY", "YEARLY"):
        return None
    limit, period = (53, "year") if freq == "YEARLY" else (5, "month")
    if "BYMONTH" in parts:
        limit, period = 5, "month"
    for day in parts.get("BYDAY", []):
        match = _BYDAY.fullmatch(str(day).upper())
        if match and match[1] and not 1 <= abs(int(match[1])) <= limit:
            return (
                f"expected BYDAY ordinals from 1 to {limit} (or -1 to -{limit}) "
                f"in a {period}, got {text}"
            )
    return None


def _occurrences_per_day(parts: Mapping[str, list[Any]]) -> int:
    """How many occurrences a rule gives in a day, at most.

    Each BYHOUR, BYMINUTE and BYSECOND value multiplies the occurrences of
    a rule that is slower than its unit; an hourly or minutely rule gives
    one for each of its intervals in the day (RFC 5545, 3.3.10).
    """
    interval = int(min(parts.get("INTERVAL", [1])))
    hours, minutes, seconds = (
        len(set(parts.get(key, []))) or None
        for key in ("BYHOUR", "BYMINUTE", "BYSECOND")
    )
    freq = str(parts["FREQ"][0])
    if freq == "MINUTELY":
        slots = min((hours or 24) * (minutes or 60), math.ceil(1440 / interval))
        return slots * (seconds or 1)
    if freq == "HOURLY":
        slots = min(hours or 24, math.ceil(24 / interval))
        return slots * (minutes or 1) * (seconds or 1)
    return (hours or 1) * (minutes or 1) * (seconds or 1)


def _until_problem(parts: Mapping[str, list[Any]], start: datetime) -> str | None:
    """An UNTIL outside the range of instants or before the start, or None.

    dateutil has already required an UTC date-time next to an aware start.
    """
    for until in parts.get("UNTIL", []):
        if not isinstance(until, datetime):
            continue
        if not EARLIEST_INSTANT <= until <= LATEST_INSTANT:
            return f"expected UNTIL to be {_INSTANT_RANGE}, got {until.isoformat()}"
        if until < start:
            return (
                f"expected UNTIL at or after the start, got UNTIL "
                f"{until.isoformat()} before start {start.isoformat()}"
            )
    return None


def _exdates(
    raw: Mapping[str, Any], rrule: str | None, zone: ZoneInfo, entry: _Entry
) -> tuple[datetime, ...]:
    """The instants removed from a recurring event.

    An exdate with an offset names its instant; local wall time is read in
    ``zone`` like a start is, so an ambiguous one means its first occurrence.
    """
    if "exdates" not in raw:
        return ()
    value = raw["exdates"]
    if rrule is None:
        raise entry.error("allowed only together with 'rrule'", "exdates")
    if not isinstance(value, list):
        raise entry.error(
            f"expected a list of date-times, got {describe(value)}", "exdates"
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
            f"allowed only on client events (overrides), got {describe(value)} "
            "on a group event",
            "desired_state",
        )
    state = _DESIRED_STATES.get(value) if isinstance(value, str) else None
    if state is None:
        raise entry.error(
            f"expected 'on' or 'off', got {describe(value)}", "desired_state"
        )
    return state
