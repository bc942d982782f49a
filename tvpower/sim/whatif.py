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
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tvpower.engine import compute_timeline
from tvpower.errors import ScheduleError
from tvpower.schedule import Schedule
from tvpower.sim.scenario import (
    EVENT_ACTIONS,
    Action,
    Scenario,
    edited,
    event_action,
    load_edited,
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


def what_if(scenario: Scenario, change: Mapping[str, Any] | None = None) -> WhatIf:
    """Apply ``change`` to the scenario's schedule; the segments that differ.

    Without a change: the first YAML event that runs in the span (or
    recurs) removed, or, if there is none, an event for the first group (or
    client) added from two hours to one hour before the span's end. A bad
    change raises :class:`~tvpower.errors.ScheduleError` naming the field.
    """
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
    known = {
        e.get("id")
        for e in scenario.document.get("events") or []
        if isinstance(e, dict)
    }
    return event_action(
        scenario.start, kinds[0], raw[kinds[0]], scenario.path, _ENTRY, known
    )


def _default_change(scenario: Scenario) -> dict[str, Any]:
    inside = [
        e.id
        for e in scenario.schedule.events
        if e.rrule or (e.start < scenario.end and e.end > scenario.start)
    ]
    if inside:
        return {"cancel": inside[0]}
    schedule = scenario.schedule
    owner = "group" if schedule.groups else "client"
    end = scenario.end - timedelta(hours=1)
    return {
        "add": {
            "id": "what-if",
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
