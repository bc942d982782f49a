"""Scenario files: a schedule, a simulated span, what happens when, what to expect.

Every problem is a :class:`ScheduleError` naming the scenario file, the entry
(``timeline[2]``, ``expect[0]``) and the field.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tvpower.engine import REASONS, Timeline, compute_timeline
from tvpower.errors import ScheduleError
from tvpower.intents import format_instant
from tvpower.publisher import ExpiryPolicy

# read_yaml_mapping reads as the schedule loader does, times and "off" as
# strings: the scenario and the schedule data it edits read the same way.
from tvpower.schedule import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    SCENARIO_KEYS,
    Schedule,
    describe,
    load_schedule,
    read_yaml_mapping,
)

__all__ = ["Action", "Expectation", "Scenario", "load_scenario"]

_KEYS = ("schedule", *SCENARIO_KEYS)
_SIMULATION_KEYS = ("start", "end", "group_topics", "expiry_policy", "on_expiry")
_CLIENT_ACTIONS = ("disconnect", "reconnect", "join")
EVENT_ACTIONS = ("cancel", "edit", "add")
ACTIONS = (*_CLIENT_ACTIONS, "restart", "stop", "start", *EVENT_ACTIONS)
#: Actions after which the publisher publishes every intent again.
_REPUBLISHING = ("restart", "start")
RESTARTABLE = ("publisher", "broker")
#: The publisher's expiry policies (``--expiry-policy``).
EXPIRY_POLICIES = ("ttl", "window")
#: What a client does when the intent it holds expires with nothing newer:
#: ``keep`` the TV as it is, or switch it ``off`` after its grace.
ON_EXPIRY = ("keep", "off")
#: The longest simulated span: the stepped clock stops at every refresh
#: (half the TTL), and a run takes a bounded number of steps.
MAX_SPAN = timedelta(days=62)
#: The most publishes to clients' topics a run may take, transitions and
#: refreshes: the embedded broker moves about a thousand a second.
MAX_PUBLISHES = 200_000
#: The most instants a run may step through for transitions and refreshes
#: (the harness stops a run after 20,000 steps of any kind).
MAX_STEPS = 15_000
#: The most broker restarts a run may take: each costs about a second of
#: real time, which the stepped clock cannot skip.
MAX_BROKER_RESTARTS = 60
STATES = ("on", "off")
_NS = 1_000_000_000


@dataclass(frozen=True)
class Action:
    """One thing that happens at ``at``: ``kind`` is one of ``ACTIONS``.

    ``target`` is a client id, ``publisher``/``broker``, or an event id;
    ``fields`` the event fields of an ``edit`` or ``add``.
    """

    at: datetime
    kind: str
    target: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Expectation:
    """A statement about one client: its state at an instant, or no off."""

    entry: str
    client_id: str
    at: datetime | None = None
    state: str | None = None
    reason: str | None = None
    no_off_between: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Scenario:
    path: Path
    schedule_path: Path
    schedule: Schedule
    document: Mapping[str, Any]
    start: datetime
    end: datetime
    actions: tuple[Action, ...]
    expectations: tuple[Expectation, ...]
    group_topics: bool
    expiry_policy: ExpiryPolicy = "ttl"
    on_expiry: str = "keep"

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def edits(self) -> bool:
        """Whether the schedule changes during the run."""
        return any(a.kind in EVENT_ACTIONS for a in self.actions)

    @property
    def in_order(self) -> list[Action]:
        """The actions as a run takes them: by instant, an instant's edits first."""
        return sorted(self.actions, key=lambda a: (a.at, a.kind not in EVENT_ACTIONS))

    @property
    def outages(self) -> tuple[tuple[datetime, datetime], ...]:
        """When the publisher is stopped: ``[stop, start)``, the last to the end."""
        stops = [a.at for a in self.actions if a.kind == "stop"]
        starts = [a.at for a in self.actions if a.kind == "start"]
        starts += [self.end] * (len(stops) - len(starts))
        return tuple(zip(stops, starts, strict=True))

    @property
    def joining(self) -> frozenset[str]:
        """Clients absent at the start that join later."""
        return frozenset(a.target for a in self.actions if a.kind == "join")


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file and its schedule.

    The schedule is the file itself (its schedule keys next to
    ``simulation``, ``timeline`` and ``expect``), or the file that its
    ``schedule`` key names, relative to the scenario.
    """
    path = Path(path)
    document = _read(path)
    if "schedule" in document:
        _check_scenario_keys(document, path)
        named = _text(document, "schedule", path, None)
        schedule_path = (path.parent / named).resolve()
        if not schedule_path.is_file():
            raise ScheduleError(
                str(path), f"no schedule file at {schedule_path}", field="schedule"
            )
        schedule = load_schedule(schedule_path)  # errors name it
        raw_schedule = read_yaml_mapping(schedule_path)
    else:
        # Errors name the file as given when the scenario is its own
        # schedule; a misspelt scenario key is one of them.
        schedule_path, raw_schedule = path.resolve(), document
        schedule = load_schedule(path)
    simulation = document.get("simulation")
    if not isinstance(simulation, dict):
        raise ScheduleError(
            str(path),
            "expected a mapping with start and end, got "
            f"{'nothing' if simulation is None else describe(simulation)}; "
            "a schedule without it is not a scenario",
            field="simulation",
        )
    if not schedule.clients:
        raise ScheduleError(
            str(path), "the schedule has no clients: nothing to simulate"
        )
    start, end = _span(simulation, path)
    group_topics = _choice(simulation, "group_topics", (False, True), path)
    actions = _actions(document.get("timeline", []), path, schedule, raw_schedule)
    schedule_document = {
        k: v for k, v in raw_schedule.items() if k not in SCENARIO_KEYS
    }
    for index, action in enumerate(actions):
        if not start <= action.at < end:
            raise ScheduleError(
                str(path),
                "expected an instant from start to before end, "
                f"got {format_instant(action.at)}",
                entry=f"timeline[{index}]",
                field="at",
            )
    edits = _try_edits(actions, schedule_document, schedule_path, path)
    _check_work([(start, schedule), *edits], actions, start, end, group_topics, path)
    expectations = _expectations(document.get("expect", []), path, schedule)
    joins = {a.target: a.at for a in actions if a.kind == "join"}
    for expectation in expectations:
        _check_inside(expectation, start, joins, end, path)
    return Scenario(
        path=path,
        schedule_path=schedule_path,
        schedule=schedule,
        document=schedule_document,
        start=start,
        end=end,
        actions=actions,
        expectations=expectations,
        group_topics=group_topics,
        expiry_policy=_choice(simulation, "expiry_policy", EXPIRY_POLICIES, path),
        on_expiry=_choice(simulation, "on_expiry", ON_EXPIRY, path),
    )


def _span(raw: Mapping[str, Any], path: Path) -> tuple[datetime, datetime]:
    """The simulated span, from the ``simulation`` mapping."""
    unknown = sorted(set(raw) - set(_SIMULATION_KEYS), key=str)
    if unknown:
        raise ScheduleError(
            str(path),
            f"unknown key; expected one of {', '.join(_SIMULATION_KEYS)}",
            entry="simulation",
            field=str(unknown[0]),
        )
    start = _instant(raw.get("start"), path, "simulation", "start")
    end = _instant(raw.get("end"), path, "simulation", "end")
    if end - start < timedelta(seconds=1):
        raise ScheduleError(
            str(path),
            "expected end at least a second after start (intents speak in "
            f"whole seconds), got {(end - start).total_seconds():g} s",
            entry="simulation",
            field="end",
        )
    for field, instant in (("start", start), ("end", end)):
        if not EARLIEST_INSTANT <= instant <= LATEST_INSTANT:
            raise ScheduleError(
                str(path),
                f"expected an instant from {EARLIEST_INSTANT.year} to "
                f"{LATEST_INSTANT.year}, got {instant.isoformat()}",
                entry="simulation",
                field=field,
            )
    if end - start > MAX_SPAN:
        raise ScheduleError(
            str(path),
            f"expected a span of at most {MAX_SPAN.days} days, "
            f"got {(end - start) / timedelta(days=1):g} days",
            entry="simulation",
            field="end",
        )
    return start, end


def _check_inside(
    expectation: Expectation,
    start: datetime,
    joins: Mapping[str, datetime],
    end: datetime,
    path: Path,
) -> None:
    """An expectation speaks of instants the run simulates, with its client there."""
    if expectation.at is not None:
        instants = [("at", expectation.at)]
    else:
        assert expectation.no_off_between is not None
        instants = [("no_off_between", t) for t in expectation.no_off_between]
    for field, instant in instants:
        if not start <= instant <= end:
            raise ScheduleError(
                str(path),
                "expected an instant inside the simulation, from "
                f"{format_instant(start)} to {format_instant(end)}, "
                f"got {format_instant(instant)}",
                entry=expectation.entry,
                field=field,
            )
        joined = joins.get(expectation.client_id)
        if joined is not None and instant < joined:
            raise ScheduleError(
                str(path),
                f"client {expectation.client_id!r} joins only at "
                f"{format_instant(joined)}; got {format_instant(instant)}",
                entry=expectation.entry,
                field=field,
            )


def _check_work(
    versions: list[tuple[datetime, Schedule]],
    actions: tuple[Action, ...],
    start: datetime,
    end: datetime,
    group_topics: bool,
    path: Path,
) -> None:
    """Refuse a run that would take hours, before it starts.

    The stepped clock stops at every transition, a grace after each switch
    to ``off`` (when the TVs follow), at every refresh and at every action;
    intents are published at transitions, every half TTL, and all of them
    again whenever the publisher (re)connects. Counted from the engine's
    segments of each schedule version over the time it rules: an estimate,
    not a promise, but one that grows as the run does.
    """
    bounds = [int(since.timestamp()) * _NS for since, _ in versions]
    bounds.append(int(end.timestamp()) * _NS)
    pieces = []
    for (_, schedule), lo, hi in zip(versions, bounds, bounds[1:], strict=False):
        if lo < hi:
            timeline = compute_timeline(schedule, start, end)
            rows = timeline.client_segments(lo, hi)
            pieces.append(rows[["start", "end", "desired_state"]])
            if group_topics:
                pieces.append(_group_segments(timeline, lo, hi))
    segments = pd.concat(pieces, ignore_index=True)
    schedule = versions[0][1]
    half = schedule.ttl_seconds / 2
    seconds = (segments["end"] - segments["start"]).to_numpy() / _NS
    # Clients whose segments start together refresh together.
    longest = pd.Series(seconds).groupby(segments["start"].to_numpy()).max()
    offs = segments.loc[segments["desired_state"] == "off", "start"].nunique()
    steps = int(np.ceil(longest.to_numpy() / half).sum()) + offs + len(actions)
    reconnects = sum(a.kind in _REPUBLISHING for a in actions)
    topics = len(schedule.clients) + (len(schedule.groups) if group_topics else 0)
    publishes = int(np.ceil(seconds / half).sum()) + reconnects * topics
    made = f"refreshes every {schedule.ttl_seconds // 2} s"
    restarts = [a for a in actions if a.kind == "restart" and a.target == "broker"]
    if len(restarts) > MAX_BROKER_RESTARTS:
        raise ScheduleError(
            str(path),
            f"{len(restarts)} broker restarts, more than {MAX_BROKER_RESTARTS}: "
            "each takes about a second of real time",
            entry="timeline",
        )
    if steps > MAX_STEPS:
        raise ScheduleError(
            str(path),
            f"transitions, {made} and actions over this span make about "
            f"{steps:,} steps, more than {MAX_STEPS:,}: shorten the span or "
            "raise ttl_seconds",
            entry="simulation",
            field="end",
        )
    if publishes > MAX_PUBLISHES:
        raise ScheduleError(
            str(path),
            f"{topics:,} topics' transitions, {made} and republishing after "
            f"restarts over this span make about {publishes:,} publishes, "
            f"more than {MAX_PUBLISHES:,}: shorten the span, raise ttl_seconds "
            "or simulate fewer clients",
            entry="simulation",
            field="end",
        )


def _group_segments(timeline: Timeline, lo: int, hi: int) -> pd.DataFrame:
    """Each group's own segments (its topic's intents), clipped to ``[lo, hi)``."""
    profiles = timeline.groups[["profile"]]
    rows = profiles.merge(timeline.segments, on="profile", how="inner")
    starts = rows["start"].to_numpy(dtype=np.int64).clip(min=lo)
    ends = rows["end"].to_numpy(dtype=np.int64).clip(max=hi)
    # A group's own profile holds its events only: on means an event.
    on = rows["code"].to_numpy() == REASONS.index("event_window_active")
    keep = starts < ends
    return pd.DataFrame(
        {
            "start": starts[keep],
            "end": ends[keep],
            "desired_state": np.where(on[keep], "on", "off"),
        }
    )


def _choice(
    raw: Mapping[str, Any], key: str, choices: tuple[Any, ...], path: Path
) -> Any:
    """A ``simulation`` setting: one of ``choices``, by default the first."""
    value = raw.get(key, choices[0])
    if value not in choices or type(value) is not type(choices[0]):
        words = " or ".join(str(c).lower() for c in choices)
        raise ScheduleError(
            str(path),
            f"expected {words}, got {describe(value)}",
            entry="simulation",
            field=key,
        )
    return value


def _read(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "a mapping with a simulation and a schedule")


def _check_scenario_keys(document: Mapping[str, Any], path: Path) -> None:
    """A scenario that names its schedule file holds no schedule keys itself."""
    unknown = sorted(set(document) - set(_KEYS), key=str)
    if unknown:
        raise ScheduleError(
            str(path),
            "unknown key next to 'schedule'; expected one of "
            f"{', '.join(_KEYS)} (schedule keys belong in the schedule file)",
            field=str(unknown[0]),
        )


def _text(raw: Mapping[str, Any], key: str, path: Path, entry: str | None) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ScheduleError(
            str(path),
            f"expected a non-empty string, got {describe(value)}",
            entry=entry,
            field=key,
        )
    return value


def _instant(value: Any, path: Path, entry: str | None, field: str) -> datetime:
    expected = "an ISO 8601 instant with a zone, such as 2019-03-05T12:00:00Z"
    try:
        instant = datetime.fromisoformat(value) if isinstance(value, str) else None
        if instant is not None and instant.tzinfo is not None:
            return instant.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 in UTC
        pass
    raise ScheduleError(
        str(path),
        f"expected {expected}, got {describe(value)}",
        entry=entry,
        field=field,
    )


def _list(value: Any, path: Path, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScheduleError(
            str(path), f"expected a list, got {describe(value)}", field=field
        )
    return value


def _actions(
    value: Any, path: Path, schedule: Schedule, raw_schedule: Mapping[str, Any]
) -> tuple[Action, ...]:
    events = [
        e.get("id") for e in raw_schedule.get("events") or [] if isinstance(e, dict)
    ]
    known_events = set(events)
    actions = []
    previous: datetime | None = None
    running = True
    raws = _list(value, path, "timeline")
    joining = {
        r.get("join")
        for r in raws
        if isinstance(r, dict) and isinstance(r.get("join"), str)
    }
    # Each client: absent until it joins, then connected or disconnected.
    states = {c: "absent" if c in joining else "connected" for c in schedule.clients}
    for index, raw in enumerate(raws):
        entry = f"timeline[{index}]"
        action = _action(raw, path, entry, schedule, known_events)
        if previous is not None and action.at < previous:
            raise ScheduleError(
                str(path),
                "expected the timeline in order of time",
                entry=entry,
                field="at",
            )
        if action.kind in _CLIENT_ACTIONS:
            _check_client_action(action, states, path, entry)
        if action.target == "publisher":
            needs = action.kind != "start"
            if running != needs:
                state = "running" if running else "stopped"
                raise ScheduleError(
                    str(path),
                    f"the publisher is already {state} then",
                    entry=entry,
                    field=action.kind,
                )
            running = action.kind != "stop"
        previous = action.at
        actions.append(action)
    return tuple(actions)


def _action(
    raw: Any, path: Path, entry: str, schedule: Schedule, known_events: set[Any]
) -> Action:
    if not isinstance(raw, dict):
        raise ScheduleError(
            str(path), f"expected a mapping, got {describe(raw)}", entry=entry
        )
    at = _instant(raw.get("at"), path, entry, "at")
    kinds = [k for k in raw if k != "at"]
    if len(kinds) != 1 or kinds[0] not in ACTIONS:
        raise ScheduleError(
            str(path),
            f"expected 'at' and one of {', '.join(ACTIONS)}, "
            f"got {', '.join(map(str, kinds)) or 'none'}",
            entry=entry,
        )
    kind = kinds[0]
    value = raw[kind]
    if kind in _CLIENT_ACTIONS:
        return Action(at, kind, _client(value, path, entry, kind, schedule), {})
    if kind in ("restart", "stop", "start"):
        # The broker only restarts: a publisher facing a dead broker backs
        # off in real seconds, which a stepped clock cannot skip.
        expected = (
            "publisher or broker"
            if kind == "restart"
            else "publisher (the broker can only restart)"
        )
        if value not in (RESTARTABLE if kind == "restart" else ("publisher",)):
            raise ScheduleError(
                str(path),
                f"expected {expected}, got {describe(value)}",
                entry=entry,
                field=kind,
            )
        return Action(at, kind, value, {})
    return event_action(at, kind, value, path, entry, known_events)


def event_action(
    at: datetime, kind: str, value: Any, path: Path, entry: str, known: set[Any]
) -> Action:
    """A ``cancel``, ``edit`` or ``add`` of the events ``known`` then (updated)."""
    if kind == "cancel":
        if not isinstance(value, str) or value not in known:
            raise ScheduleError(
                str(path),
                "expected the id of an event in the schedule then, "
                f"got {describe(value)}",
                entry=entry,
                field=kind,
            )
        known.discard(value)
        return Action(at, kind, value, {})
    if not isinstance(value, dict) or "id" not in value:
        raise ScheduleError(
            str(path),
            f"expected a mapping with an id, got {describe(value)}",
            entry=entry,
            field=kind,
        )
    if not isinstance(value["id"], str):
        raise ScheduleError(
            str(path),
            f"expected an event id that is text, got {describe(value['id'])}",
            entry=entry,
            field=f"{kind}.id",
        )
    if kind == "edit" and value["id"] not in known:
        raise ScheduleError(
            str(path),
            "expected the id of an event in the schedule then, "
            f"got {describe(value['id'])}",
            entry=entry,
            field="edit.id",
        )
    if kind == "add" and value["id"] in known:
        raise ScheduleError(
            str(path),
            f"expected a new event id, got {describe(value['id'])}, "
            "which is in the schedule",
            entry=entry,
            field="add.id",
        )
    known.add(value["id"])
    return Action(at, kind, value["id"], copy.deepcopy(value))


def edited(document: Mapping[str, Any], action: Action) -> dict[str, Any]:
    """A copy of a raw schedule with an ``add``, ``edit`` or ``cancel`` applied."""
    result = copy.deepcopy(dict(document))
    events: list[Any] = result.setdefault("events", []) or []
    result["events"] = events
    if action.kind == "add":
        events.append(dict(action.fields))
        return result
    index = next(i for i, e in enumerate(events) if e.get("id") == action.target)
    if action.kind == "cancel":
        del events[index]
    else:
        events[index] = {**events[index], **action.fields}
    return result


def with_absolute_calendars(document: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """A copy of a raw schedule whose calendar paths no longer need ``base``."""
    result = copy.deepcopy(dict(document))
    for group in (result.get("groups") or {}).values():
        calendars = group.get("calendars") if isinstance(group, dict) else None
        if not isinstance(calendars, list):
            continue
        for index, source in enumerate(calendars):
            if isinstance(source, str):
                calendars[index] = str(base / source)
            elif isinstance(source, dict) and "path" in source:
                source["path"] = str(base / str(source["path"]))
    return result


def _try_edits(
    actions: tuple[Action, ...],
    document: Mapping[str, Any],
    schedule_path: Path,
    path: Path,
) -> list[tuple[datetime, Schedule]]:
    """The schedule after each edit of the timeline, which tvpower must accept."""
    versions = []
    with tempfile.TemporaryDirectory(prefix="tvpower-scenario-") as workdir:
        trial = Path(workdir) / "schedule.yaml"
        for index, action in enumerate(actions):
            if action.kind not in EVENT_ACTIONS:
                continue
            document = edited(document, action)
            where = (str(path), f"timeline[{index}]", action.kind)
            versions.append(
                (action.at, load_edited(document, schedule_path, trial, where=where))
            )
    return versions


def load_edited(
    document: Mapping[str, Any],
    schedule_path: Path,
    trial: Path,
    *,
    where: tuple[str, str, str],
) -> Schedule:
    """Load an edited raw schedule, written to ``trial``, as if at ``schedule_path``.

    A schedule tvpower would reject is a :class:`ScheduleError` of the
    edit, at ``where`` (file, entry, field), quoting what the schedule
    loader said.
    """
    absolute = with_absolute_calendars(document, schedule_path.parent)
    try:
        text = yaml.safe_dump(absolute, sort_keys=False)
    except yaml.representer.RepresenterError as error:
        value = error.args[1] if len(error.args) > 1 else None
        path, entry, field = where
        raise ScheduleError(
            path,
            f"expected values a YAML schedule can hold, got {describe(value)}",
            entry=entry,
            field=field,
        ) from error
    trial.write_text(text)
    try:
        return load_schedule(trial)
    except ScheduleError as error:
        inside = "".join(f"{x}: " for x in (error.entry, error.field) if x)
        path, entry, field = where
        raise ScheduleError(
            path,
            f"the schedule after it is not valid: {inside}{error.reason}",
            entry=entry,
            field=field,
        ) from error


def _check_client_action(
    action: Action, states: dict[str, str], path: Path, entry: str
) -> None:
    """Clients join once, disconnect while connected, reconnect when not."""
    state = states[action.target]
    allowed = {"join": "absent", "disconnect": "connected", "reconnect": "disconnected"}
    if state != allowed[action.kind]:
        raise ScheduleError(
            str(path),
            f"client {action.target!r} is {state} then; "
            f"{action.kind} needs it {allowed[action.kind]}",
            entry=entry,
            field=action.kind,
        )
    states[action.target] = (
        "disconnected" if action.kind == "disconnect" else "connected"
    )


def _client(value: Any, path: Path, entry: str, field: str, schedule: Schedule) -> str:
    if not isinstance(value, str) or value not in schedule.clients:
        raise ScheduleError(
            str(path),
            f"expected a client of {schedule.path}, got {describe(value)}",
            entry=entry,
            field=field,
        )
    return str(value)


def _expectations(
    value: Any, path: Path, schedule: Schedule
) -> tuple[Expectation, ...]:
    result = []
    for index, raw in enumerate(_list(value, path, "expect")):
        entry = f"expect[{index}]"
        if not isinstance(raw, dict):
            raise ScheduleError(
                str(path), f"expected a mapping, got {describe(raw)}", entry=entry
            )
        unknown = sorted(
            set(raw) - {"client", "at", "state", "reason", "no_off_between"}, key=str
        )
        if unknown:
            raise ScheduleError(
                str(path),
                "expected client, at, state, reason or no_off_between",
                entry=entry,
                field=str(unknown[0]),
            )
        alongside = sorted({"at", "state", "reason"} & set(raw))
        if "no_off_between" in raw and alongside:
            raise ScheduleError(
                str(path),
                "no_off_between is a statement of its own; put "
                f"{', '.join(alongside)} in another entry",
                entry=entry,
                field=alongside[0],
            )
        client_id = _client(raw.get("client"), path, entry, "client", schedule)
        result.append(_expectation(raw, client_id, path, entry))
    return tuple(result)


def _expectation(
    raw: Mapping[str, Any], client_id: str, path: Path, entry: str
) -> Expectation:
    if "no_off_between" in raw:
        between = raw["no_off_between"]
        if not isinstance(between, list) or len(between) != 2:
            raise ScheduleError(
                str(path),
                f"expected [START, END], got {describe(between)}",
                entry=entry,
                field="no_off_between",
            )
        lo = _instant(between[0], path, entry, "no_off_between")
        hi = _instant(between[1], path, entry, "no_off_between")
        if hi <= lo:
            raise ScheduleError(
                str(path),
                f"expected START before END, got {format_instant(lo)} "
                f"and {format_instant(hi)}",
                entry=entry,
                field="no_off_between",
            )
        return Expectation(entry, client_id, no_off_between=(lo, hi))
    at = _instant(raw.get("at"), path, entry, "at")
    state = raw.get("state")
    if state is not None and state not in STATES:
        raise ScheduleError(
            str(path),
            f"expected on or off, got {describe(state)}",
            entry=entry,
            field="state",
        )
    reason = raw.get("reason")
    if reason is not None and reason not in REASONS:
        raise ScheduleError(
            str(path),
            f"expected one of {', '.join(REASONS)}, got {describe(reason)}",
            entry=entry,
            field="reason",
        )
    if state is None and reason is None:
        raise ScheduleError(
            str(path), "expected state, reason or no_off_between", entry=entry
        )
    return Expectation(entry, client_id, at=at, state=state, reason=reason)
