"""What if the schedule were different? The engine's answer over a scenario.

A change is written as a timeline action without ``at`` (``{"cancel":
ID}``, ``{"edit": {"id": ID, ...}}``, ``{"add": {"id": ID, ...}}``) and
applies from the start: the engine computes the scenario's span with and
without it, and the segments that differ are the answer. No broker, no
publisher: this is what the schedule means, not what a run delivers.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tvpower.calendars import expand
from tvpower.engine import compute_timeline
from tvpower.errors import ScheduleError
from tvpower.schedule import Schedule, describe
from tvpower.sim.scenario import (
    EVENT_ACTIONS,
    Action,
    Scenario,
    edited,
    event_action,
    load_edited,
    load_scenario,
)

__all__ = ["WhatIf", "what_if"]

_ENTRY = "what_if"
_NS = 1_000_000_000
_COLUMNS = ["client_id", "start", "end", "desired_state", "reason"]


@dataclass(frozen=True)
class WhatIf:
    """The change as applied, the schedule it makes, and what differs.

    ``segments``: one row per engine segment found in only one of the two
    schedules over the scenario's span, ``schedule`` saying which
    (``original`` or ``edited``), sorted by client and start.
    """

    change: dict[str, Any]
    schedule: Schedule
    segments: pd.DataFrame


def what_if(
    scenario: Scenario | str | Path, change: Mapping[str, Any] | None = None
) -> WhatIf:
    """Apply ``change`` to the scenario's schedule; the segments that differ.

    ``scenario`` is a loaded one or the path of its file.

    Without a change: the first YAML event that runs in the span (or
    recurs) removed, or, if there is none, an event for the first group (or
    client) added from two hours to one hour before the span's end. A bad
    change raises :class:`~tvpower.errors.ScheduleError` naming the field.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if change is not None and not isinstance(change, Mapping):
        raise ScheduleError(
            str(scenario.path),
            "expected a change such as {cancel: EVENT_ID} or {edit: {id: "
            f"EVENT_ID, end: ...}}}}, got {describe(change)}",
            entry=_ENTRY,
        )
    raw = dict(change) if change is not None else _default_change(scenario)
    action = _action(scenario, raw)
    with tempfile.TemporaryDirectory(prefix="tvpower-what-if-") as workdir:
        schedule = load_edited(
            edited(scenario.document, action),
            scenario.schedule_path,
            Path(workdir) / scenario.schedule_path.name,
            where=(str(scenario.path), _ENTRY, action.kind),
        )
    original, changed = (
        _segments(scenario, scenario.schedule),
        _segments(scenario, schedule),
    )
    both = original.merge(changed, how="outer", indicator="schedule")
    differ = both[both["schedule"] != "both"].copy()
    differ["schedule"] = (
        differ["schedule"]
        .map({"left_only": "original", "right_only": "edited"})
        .astype(str)
    )
    differ = differ.sort_values(["client_id", "start", "schedule"])
    return WhatIf(
        change=raw,
        schedule=schedule,
        segments=differ[["schedule", *_COLUMNS]].reset_index(drop=True),
    )


def _action(scenario: Scenario, raw: dict[str, Any]) -> Action:
    kinds = list(raw)
    if len(kinds) != 1 or kinds[0] not in EVENT_ACTIONS:
        raise ScheduleError(
            str(scenario.path),
            f"expected one of {', '.join(EVENT_ACTIONS)}, "
            f"got {', '.join(map(str, kinds)) or 'none'}",
            entry=_ENTRY,
        )
    raw = {kinds[0]: _plain(raw[kinds[0]], (scenario.path, kinds[0]))}
    known = {
        e.get("id")
        for e in scenario.document.get("events") or []
        if isinstance(e, dict)
    }
    return event_action(
        scenario.start, kinds[0], raw[kinds[0]], scenario.path, _ENTRY, known
    )


def _plain(value: Any, where: tuple[Path, str]) -> Any:
    """A change's value as a YAML schedule holds it: instants as ISO text."""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                path, kind = where
                raise ScheduleError(
                    str(path),
                    f"expected field names that are text, got {describe(key)}",
                    entry=_ENTRY,
                    field=kind,
                )
        return {key: _plain(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    return value


def _default_change(scenario: Scenario) -> dict[str, Any]:
    schedule = scenario.schedule
    occurring = set(expand(schedule, scenario.start, scenario.end)["event_id"])
    inside = [e.id for e in schedule.events if e.id in occurring]
    if inside:
        return {"cancel": inside[0]}
    owner = "group" if schedule.groups else "client"
    end = scenario.end - timedelta(hours=1)
    taken = {e.id for e in schedule.events}
    name = next(
        f"what-if-{n}" if n else "what-if"
        for n in range(len(taken) + 1)
        if (f"what-if-{n}" if n else "what-if") not in taken
    )
    return {
        "add": {
            "id": name,
            owner: next(iter(schedule.groups or schedule.clients)),
            "start": (end - timedelta(hours=1)).isoformat(),
            "end": end.isoformat(),
        }
    }


def _segments(scenario: Scenario, schedule: Schedule) -> pd.DataFrame:
    timeline = compute_timeline(schedule, scenario.start, scenario.end)
    span = (int(scenario.start.timestamp()) * _NS, int(scenario.end.timestamp()) * _NS)
    rows = timeline.client_segments(*span)[_COLUMNS].copy()
    for column in ("start", "end"):
        rows[column] = pd.to_datetime(rows[column], unit="ns", utc=True)
    return rows
