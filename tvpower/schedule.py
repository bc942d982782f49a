"""Schedules: the validated, immutable model of a fleet and its events.

A schedule file (YAML) names the fleet (groups of clients, and clients of
their own), the events that switch TVs on, client overrides that force a
state, and the iCalendar files whose events belong to a group. Every
bad-input error of tvpower is born here, as a :class:`ScheduleError` naming
the file, the entry and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

DEFAULT_GRACE_SECONDS = 30
DEFAULT_TTL_SECONDS = 600
RESERVED_CLIENT_IDS = frozenset({"groups"})

DesiredState = Literal["on", "off"]


@dataclass(frozen=True)
class CalendarSource:
    """An iCalendar file whose events belong to one group.

    ``transparent`` and ``all_day`` say whether events marked free
    (``TRANSP:TRANSPARENT``) and all-day events switch TVs on.
    """

    path: Path
    group_id: str
    calendar: Any = field(compare=False, repr=False)  # icalendar.Calendar
    transparent: bool = False
    all_day: bool = False


@dataclass(frozen=True)
class Group:
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
    ``desired_state`` is set only on client overrides.
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
    path: Path
    timezone: ZoneInfo
    ttl_seconds: int
    groups: Mapping[str, Group]
    clients: Mapping[str, Client]
    events: tuple[Event, ...]
