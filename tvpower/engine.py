"""The timeline engine: events in, each client's effective timeline out.

Pure and synchronous, on numpy and pandas: no loop per event or per client
in the hot path. Instants are int64 nanoseconds since the Unix epoch, UTC.

How a timeline is made:

1. Clients that share everything with their group (no events, overrides or
   window settings of their own) share the group's *profile*; any other
   client gets a profile of its own fed by its group's occurrences and its
   own. A profile is computed once however many clients use it.
2. Event occurrences are widened by ``lead_seconds`` before and ``merge_gap``
   after, merged where they overlap or touch (windows are half-open, so
   ``end == next start`` is one window), and the gap is taken off again.
3. Client overrides (``on`` and ``off``) are merged per state, and the three
   layers are swept together: an ``off`` override wins over an ``on``
   override, which wins over an event window; elsewhere the TV is off.
4. Adjacent segments with the same state and reason are one segment, and
   every ``on`` segment learns the whole run of ``on`` around it: its event
   window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tvpower.calendars import expand, first_start
from tvpower.schedule import EARLIEST_INSTANT, Schedule

__all__ = [
    "REASONS",
    "Fleet",
    "Timeline",
    "build_timeline",
    "compute_timeline",
    "fleet_of",
    "timeline_around",
]

NS = 1_000_000_000
DAY_NS = 86_400 * NS

Int64Array = npt.NDArray[np.int64]
# A client or group as the engine sees it: id, group, profile, grace seconds.
Member = tuple[str, str | None, int, int]

# State codes of the sweep, in order of precedence (higher wins).
_NO_EVENT, _EVENT, _OVERRIDE_ON, _OVERRIDE_OFF = 0, 1, 2, 3

#: The ``reason`` of each state code; ``on`` for codes 1 and 2.
REASONS = (
    "no_active_event",
    "event_window_active",
    "client_override_on",
    "client_override_off",
)
_DESIRED_STATE = np.array(["off", "on", "on", "off"], dtype=object)
_REASON = np.array(REASONS, dtype=object)
# The same typed as columns once: pandas would infer ``str`` from the
# objects on every call to :meth:`Timeline.at`, at more than the lookup costs.
_DESIRED_STATE_COLUMN = pd.Series(_DESIRED_STATE, copy=False).array
_REASON_COLUMN = pd.Series(_REASON, copy=False).array

# Spans (each side of the instant) tried by timeline_around, until the
# segment at the instant lies inside the computed range.
_AROUND_SPANS_DAYS = (2, 14, 98, 686, 4802)
_EARLIEST_NS = int(EARLIEST_INSTANT.timestamp()) * NS


@dataclass(frozen=True)
class Fleet:
    """Who shares which profile, and the window settings of each profile.

    ``clients``: index ``client_id``; columns ``group_id`` (str or None),
    ``profile`` (int), ``grace_seconds`` (int).
    ``profiles``: index ``profile`` (0..n-1); columns ``lead_ns``, ``gap_ns``.
    ``sources``: columns ``owner_kind``, ``owner``, ``profile``: the
    occurrences of that owner feed that profile.
    ``groups``: index ``group_id``; columns ``group_id``, ``profile`` (the
    group's own, for group topics), ``grace_seconds``.
    """

    clients: pd.DataFrame
    profiles: pd.DataFrame
    sources: pd.DataFrame
    groups: pd.DataFrame = field(default_factory=lambda: _members([]))


@dataclass(frozen=True)
class Timeline:
    """Every profile's segments over ``[start, end)``, and who uses which.

    ``segments`` columns: ``profile``, ``start``, ``end``, ``code`` (state
    code), ``window_start``, ``window_end`` (the ``on`` run around an ``on``
    segment, -1 for ``off``). A segment's bounds are certain only strictly
    inside ``(start, end)``: what lies beyond was not computed. With
    ``origin``, nothing of the schedule begins before ``start``: a segment
    that begins there has been so since the earliest instant.
    """

    start: int
    end: int
    segments: pd.DataFrame
    clients: pd.DataFrame
    groups: pd.DataFrame = field(default_factory=lambda: _members([]))
    origin: bool = False

    def at(self, instant: int) -> pd.DataFrame:
        """Each client's segment at ``instant`` (ns), one row per client.

        Columns: ``group_id``, ``grace_seconds``, ``start``, ``end``,
        ``desired_state``, ``reason``, ``window_start``, ``window_end``,
        ``start_known``, ``end_known``; index ``client_id``.
        """
        return self._at(self._client_blocks, instant)

    def groups_at(self, instant: int) -> pd.DataFrame:
        """Each group's own segment at ``instant``: its events, no overrides.

        The columns of :meth:`at`; index ``group_id``.
        """
        return self._at(self._group_blocks, instant)

    def _at(self, members: _Blocks, instant: int) -> pd.DataFrame:
        if not self.start <= instant < self.end:
            raise ValueError(f"instant {instant} outside the timeline")
        seg = self._arrays
        rows = self._rows_at(members, instant)

        start, end, code = seg.start[rows], seg.end[rows], seg.code[rows]
        start_known = start > self.start
        if self.origin:
            # Off since the earliest instant: a start that never moves, so
            # that intent ids do not depend on how far back the engine looked.
            start = np.where(start_known, start, _EARLIEST_NS)
            start_known = np.ones(len(rows), dtype=bool)
        return pd.DataFrame(
            {
                "group_id": members.group_id,
                "grace_seconds": members.grace_seconds,
                "start": start,
                "end": end,
                "desired_state": _labels(_DESIRED_STATE_COLUMN, code),
                "reason": _labels(_REASON_COLUMN, code),
                "window_start": seg.window_start[rows],
                "window_end": seg.window_end[rows],
                "start_known": start_known,
                "end_known": end < self.end,
            },
            # A new Index on the same data: a caller may rename its own.
            index=members.ids.copy(),
        )

    def _rows_at(self, members: _Blocks, instant: int) -> Int64Array:
        """The row of ``_arrays`` of each member's segment at ``instant``."""
        seg = self._arrays
        rows = _last_starting_by(seg.start, members.first, members.stop, instant)
        found = (rows >= members.first) & (seg.end.take(rows, mode="clip") > instant)
        if not found.all():
            raise ValueError(f"a profile has no segment at instant {instant}")
        return rows

    @cached_property
    def _arrays(self) -> _Segments:
        """The segments as arrays, sorted by profile, then start."""
        columns = {
            name: self.segments[name].to_numpy(dtype=np.int64)
            for name in (f.name for f in fields(_Segments))
        }
        profile, start = columns["profile"], columns["start"]
        if not _sorted_by(profile, start):
            order = _order_by(profile, start)
            columns = {name: values[order] for name, values in columns.items()}
        return _Segments(**columns)

    @cached_property
    def _client_blocks(self) -> _Blocks:
        return _blocks(self.clients, self._arrays.profile)

    @cached_property
    def _group_blocks(self) -> _Blocks:
        return _blocks(self.groups, self._arrays.profile)

    def client_segments(self, start: int, end: int) -> pd.DataFrame:
        """Every client's segments clipped to ``[start, end)``, in CSV order."""
        seg = self.segments
        seg = seg[(seg["end"] > start) & (seg["start"] < end)]
        clients = self.clients.reset_index()[["client_id", "profile"]]
        rows = clients.merge(seg, on="profile", how="inner", sort=False)
        rows["start"] = rows["start"].clip(lower=start)
        rows["end"] = rows["end"].clip(upper=end)
        rows = rows.sort_values(["client_id", "start"], kind="stable")
        rows = rows.reset_index(drop=True)
        described = self._describe(rows, self.clients.loc[rows["client_id"]])
        return described.reset_index()

    def _describe(self, rows: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
        """Rows of segments, one per member (client or group), made readable."""
        code = rows["code"].to_numpy(dtype=np.int64)
        out = pd.DataFrame(
            {
                "group_id": members["group_id"].to_numpy(),
                "grace_seconds": members["grace_seconds"].to_numpy(),
                "start": rows["start"].to_numpy(dtype=np.int64),
                "end": rows["end"].to_numpy(dtype=np.int64),
                "desired_state": _DESIRED_STATE[code],
                "reason": _REASON[code],
                "window_start": rows["window_start"].to_numpy(dtype=np.int64),
                "window_end": rows["window_end"].to_numpy(dtype=np.int64),
            },
            index=pd.Index(members.index.to_numpy(), name="client_id"),
        )
        out["start_known"] = out["start"] > self.start
        out["end_known"] = out["end"] < self.end
        return out


@dataclass(frozen=True)
class _Segments:
    """A timeline's segments as arrays, sorted by profile, then start."""

    profile: Int64Array
    start: Int64Array
    end: Int64Array
    code: Int64Array
    window_start: Int64Array
    window_end: Int64Array


@dataclass(frozen=True)
class _Blocks:
    """Clients or groups, typed as :meth:`Timeline.at` returns them; each
    one's segments are the rows ``[first, stop)`` of ``Timeline._arrays``.
    """

    ids: pd.Index
    group_id: Any
    grace_seconds: Any
    first: Int64Array
    stop: Int64Array


def _blocks(members: pd.DataFrame, profile: Int64Array) -> _Blocks:
    """Where each member's profile lies among segments sorted by profile."""
    theirs = members["profile"].to_numpy(dtype=np.int64)
    return _Blocks(
        ids=pd.Index(members.index.to_numpy(), name=members.index.name),
        group_id=_column(members["group_id"].to_numpy()),
        grace_seconds=_column(members["grace_seconds"].to_numpy()),
        first=np.searchsorted(profile, theirs, side="left").astype(np.int64),
        stop=np.searchsorted(profile, theirs, side="right").astype(np.int64),
    )


def _column(values: npt.NDArray[Any]) -> Any:
    """``values`` typed as a DataFrame column of them is (``str`` for strings)."""
    return pd.Series(values, copy=False).array


def _labels(names: Any, code: Int64Array) -> Any:
    """``names[code]``, typed as pandas infers a column of them."""
    if len(code) == 0:
        # pandas infers ``str`` only from a string; with none, ``object``.
        return np.empty(0, dtype=object)
    return names.take(code)


def _sorted_by(profile: Int64Array, time: Int64Array) -> bool:
    """Whether rows are sorted by profile, then time."""
    later = (profile[1:] > profile[:-1]) | (
        (profile[1:] == profile[:-1]) & (time[1:] >= time[:-1])
    )
    return bool(later.all())


def _last_starting_by(
    start: Int64Array, first: Int64Array, stop: Int64Array, instant: int
) -> Int64Array:
    """In each block ``[first, stop)`` of sorted ``start``, the last row that
    starts at or before ``instant``; ``first - 1`` where none does.

    A binary search of every block at once: as many steps as the longest
    block has bits, however many blocks there are.
    """
    low, high = first, stop
    while True:
        open_ = low < high
        if not open_.any():
            return low - 1
        middle = (low + high) // 2
        before = open_ & (start.take(middle, mode="clip") <= instant)
        low = np.where(before, middle + 1, low)
        high = np.where(open_ & ~before, middle, high)


def fleet_of(schedule: Schedule) -> Fleet:
    """The profiles of a schedule's clients (see the module docstring)."""
    client_owners = {e.owner_id for e in schedule.events if e.owner_kind == "client"}
    group_ids = sorted(schedule.groups)
    profile_of_group = {g: i for i, g in enumerate(group_ids)}
    rows: list[Member] = []
    profile_rows = [
        (schedule.groups[g].lead_seconds, schedule.groups[g].merge_gap_seconds)
        for g in group_ids
    ]
    sources = [("group", g, profile_of_group[g]) for g in group_ids]
    for client in sorted(schedule.clients.values(), key=lambda c: c.id):
        shared = (
            client.group_id is not None
            and not client.own_settings
            and client.id not in client_owners
        )
        if shared:
            profile = profile_of_group[client.group_id]  # type: ignore[index]
        else:
            profile = len(profile_rows)
            profile_rows.append((client.lead_seconds, client.merge_gap_seconds))
            sources.append(("client", client.id, profile))
            if client.group_id is not None:
                sources.append(("group", client.group_id, profile))
        rows.append((client.id, client.group_id, profile, client.grace_seconds))
    groups: list[Member] = [
        (g, g, profile_of_group[g], schedule.groups[g].grace_seconds) for g in group_ids
    ]
    return _fleet(rows, profile_rows, sources, groups)


def _fleet(
    rows: list[Member],
    profile_rows: list[tuple[int, int]],
    sources: list[tuple[str, str, int]],
    groups: list[Member] | None = None,
) -> Fleet:
    settings = np.array(profile_rows, dtype=np.int64).reshape(-1, 2) * NS
    profiles = pd.DataFrame({"lead_ns": settings[:, 0], "gap_ns": settings[:, 1]})
    source_frame = pd.DataFrame(sources, columns=["owner_kind", "owner", "profile"])
    return Fleet(
        clients=_members(rows),
        profiles=profiles,
        sources=source_frame,
        groups=_members(groups or [], index="group_id"),
    )


def _members(rows: list[Member], index: str = "client_id") -> pd.DataFrame:
    """Clients or groups: their group, profile and grace, indexed by their id."""
    columns = ["id", "group_id", "profile", "grace_seconds"]
    frame = pd.DataFrame(rows, columns=columns).set_index("id")
    return frame.rename_axis(index)


def compute_timeline(schedule: Schedule, start: datetime, end: datetime) -> Timeline:
    """The timeline of every client of ``schedule`` over ``[start, end)``.

    Occurrences are expanded a little beyond the range, by the largest
    ``merge_gap`` and ``lead_seconds``, so that states inside it are exact.
    """
    fleet = fleet_of(schedule)
    start_ns, end_ns = _ns(start), _ns(end)
    pad_before = int(fleet.profiles["gap_ns"].to_numpy().max(initial=0))
    # A later event bridges a gap inside the range if it starts within
    # merge_gap plus its lead of the range end.
    reach = fleet.profiles["lead_ns"] + fleet.profiles["gap_ns"]
    pad_after = int(reach.to_numpy().max(initial=0))
    occurrences = expand(
        schedule,
        pd.Timestamp(start_ns - pad_before, tz="UTC").to_pydatetime(),
        pd.Timestamp(end_ns + pad_after, tz="UTC").to_pydatetime(),
    )
    timeline = build_timeline(fleet, occurrences, start_ns, end_ns)
    # Windows open at most the largest lead before their first occurrence.
    first = first_start(schedule)
    lead = int(fleet.profiles["lead_ns"].to_numpy().max(initial=0))
    if first is None or start_ns <= _ns(first) - lead:
        timeline = replace(timeline, origin=True)
    return timeline


def timeline_around(schedule: Schedule, instant: datetime) -> Timeline:
    """A timeline around ``instant`` wide enough to know every client's segment.

    The range grows until the segment at the instant starts and ends inside
    it, so that event windows and segment starts (and with them intent ids)
    do not depend on how far the engine looked.
    """
    instant_ns = _ns(instant)
    for days in _AROUND_SPANS_DAYS:
        span = days * DAY_NS
        timeline = compute_timeline(
            schedule, _dt(instant_ns - span), _dt(instant_ns + span)
        )
        now = timeline.at(instant_ns)
        on = now["desired_state"] == "on"
        if (now["start_known"] & (now["end_known"] | ~on)).all():
            break
    # Known shortcoming: a window longer than the widest span keeps the
    # clipped bound; such a client's intent id changes as time passes.
    return timeline


def build_timeline(
    fleet: Fleet, occurrences: pd.DataFrame, start: int, end: int
) -> Timeline:
    """The core: profiles' segments over ``[start, end)`` from raw occurrences.

    ``occurrences`` has columns ``owner_kind``, ``owner``, ``layer``
    (``event``, ``on`` or ``off``), ``start`` and ``end`` (int64 ns).
    """
    fed = _feed_profiles(fleet, occurrences)
    profile = fed["profile"].to_numpy(dtype=np.int64)
    layer = fed["layer"].to_numpy()
    occ_start = fed["start"].to_numpy(dtype=np.int64)
    occ_end = fed["end"].to_numpy(dtype=np.int64)

    is_event = layer == "event"
    lead = fleet.profiles["lead_ns"].to_numpy(dtype=np.int64)
    # Widening by one nanosecond less than merge_gap bridges only gaps
    # strictly shorter than it; touching windows always merge.
    gap = np.maximum(fleet.profiles["gap_ns"].to_numpy(dtype=np.int64) - 1, 0)
    ep = profile[is_event]
    ew_p, ew_s, ew_e = _merge(
        ep, occ_start[is_event] - lead[ep], occ_end[is_event] + gap[ep]
    )
    ew_e = ew_e - gap[ew_p]

    is_override = ~is_event
    key = profile[is_override] * 2 + (layer[is_override] == "off")
    ow_k, ow_s, ow_e = _merge(key, occ_start[is_override], occ_end[is_override])

    edges = _edges(ew_p, ew_s, ew_e, ow_k, ow_s, ow_e)
    segments = _segments(edges, len(fleet.profiles), start, end)
    return Timeline(
        start=start,
        end=end,
        segments=segments,
        clients=fleet.clients,
        groups=fleet.groups,
    )


def _feed_profiles(fleet: Fleet, occurrences: pd.DataFrame) -> pd.DataFrame:
    """Each occurrence once per profile it feeds."""
    columns = ["owner_kind", "owner", "layer", "start", "end"]
    return occurrences[columns].merge(
        fleet.sources, on=["owner_kind", "owner"], how="inner", sort=False
    )


def _merge(
    key: Int64Array, start: Int64Array, end: Int64Array
) -> tuple[Int64Array, Int64Array, Int64Array]:
    """Merge overlapping or touching intervals that share a key."""
    if len(key) == 0:
        return key, start, end
    order = _order_by(key, start)
    key, start, end = key[order], start[order], end[order]
    reach = pd.Series(end).groupby(key).cummax().to_numpy()
    opens = np.ones(len(key), dtype=bool)
    opens[1:] = (key[1:] != key[:-1]) | (start[1:] > reach[:-1])
    first = np.flatnonzero(opens)
    return key[first], start[first], np.maximum.reduceat(end, first)


def _order_by(profile: Int64Array, time: Int64Array) -> Int64Array:
    """The order that sorts by profile, then time, stably."""
    if len(profile) and profile.max() < np.iinfo(np.int16).max:
        # Two stable passes; numpy radix-sorts 16-bit keys, far faster
        # than a two-key lexsort on millions of rows.
        by_time = np.argsort(time, kind="stable")
        by_profile = np.argsort(profile[by_time].astype(np.int16), kind="stable")
        return by_time[by_profile]
    return np.lexsort((time, profile))


def _edges(
    ew_p: Int64Array,
    ew_s: Int64Array,
    ew_e: Int64Array,
    ow_k: Int64Array,
    ow_s: Int64Array,
    ow_e: Int64Array,
) -> pd.DataFrame:
    """+1/-1 edges of each layer: event, override on, override off."""
    ow_p, ow_off = ow_k // 2, ow_k % 2
    layer = np.concatenate([np.zeros(len(ew_p), np.int64), 1 + ow_off])
    profile = np.concatenate([ew_p, ow_p])
    n = len(profile)
    return pd.DataFrame(
        {
            "profile": np.concatenate([profile, profile]),
            "time": np.concatenate([ew_s, ow_s, ew_e, ow_e]),
            "layer": np.concatenate([layer, layer]),
            "delta": np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)]),
        }
    )


def _segments(
    edges: pd.DataFrame, n_profiles: int, start: int, end: int
) -> pd.DataFrame:
    """Sweep the edges into each profile's segments over ``[start, end)``."""
    order = _order_by(
        edges["profile"].to_numpy(dtype=np.int64), edges["time"].to_numpy(np.int64)
    )
    edges = edges.iloc[order]
    profile = edges["profile"].to_numpy(dtype=np.int64)
    time = edges["time"].to_numpy(dtype=np.int64)
    counts = np.zeros((len(edges), 3), dtype=np.int64)
    counts[np.arange(len(edges)), edges["layer"].to_numpy()] = edges["delta"].to_numpy()
    # One running sum over all profiles is enough: each profile's edges
    # sum to zero, so nothing carries over into the next profile.
    counts = np.cumsum(counts, axis=0)

    # The state after the last edge at each (profile, time).
    last = np.ones(len(edges), dtype=bool)
    last[:-1] = (profile[1:] != profile[:-1]) | (time[1:] != time[:-1])
    profile, time, counts = profile[last], time[last], counts[last]
    code = np.where(
        counts[:, 2] > 0,
        _OVERRIDE_OFF,
        np.where(
            counts[:, 1] > 0,
            _OVERRIDE_ON,
            np.where(counts[:, 0] > 0, _EVENT, _NO_EVENT),
        ),
    )
    return _coalesce(profile, time, code, n_profiles, start, end)


def _coalesce(
    profile: Int64Array,
    time: Int64Array,
    code: npt.NDArray[np.int64],
    n_profiles: int,
    start: int,
    end: int,
) -> pd.DataFrame:
    """Boundaries to segments over ``[start, end)``, clipped to it.

    Every profile starts ``off`` before its first boundary. Bounds clipped to
    the range are unknown: the engine did not look beyond them.
    """
    # The boundaries come sorted by (profile, time): put an "off" boundary at
    # the beginning of time in front of each profile's first one.
    every = np.arange(n_profiles, dtype=np.int64)
    at = np.searchsorted(profile, every)
    profile = np.insert(profile, at, every)
    time = np.insert(time, at, np.iinfo(np.int64).min)
    code = np.insert(code, at, _NO_EVENT)

    # A boundary before the range start only sets the state it starts with.
    superseded = np.zeros(len(time), dtype=bool)
    superseded[:-1] = (profile[1:] == profile[:-1]) & (time[1:] <= start)
    keep = ~superseded
    profile, time, code = profile[keep], np.maximum(time[keep], start), code[keep]

    changes = np.ones(len(time), dtype=bool)
    changes[1:] = (profile[1:] != profile[:-1]) | (code[1:] != code[:-1])
    profile, time, code = profile[changes], time[changes], code[changes]

    seg_end = np.full(len(time), end, dtype=np.int64)
    same = profile[1:] == profile[:-1]
    seg_end[:-1] = np.where(same, np.minimum(time[1:], end), end)
    inside = (seg_end > start) & (time < end)
    segments = pd.DataFrame(
        {"profile": profile, "start": time, "end": seg_end, "code": code}
    )[inside].reset_index(drop=True)
    return _with_windows(segments)


def _with_windows(segments: pd.DataFrame) -> pd.DataFrame:
    """Add the run of consecutive ``on`` segments around each ``on`` segment."""
    profile = segments["profile"].to_numpy(dtype=np.int64)
    code = segments["code"].to_numpy(dtype=np.int64)
    on = (code == _EVENT) | (code == _OVERRIDE_ON)
    run_starts = on.copy()
    run_starts[1:] &= ~on[:-1] | (profile[1:] != profile[:-1])
    run = np.cumsum(run_starts)
    grouped = segments[on].groupby(run[on])
    window_start = np.full(len(segments), -1, dtype=np.int64)
    window_end = np.full(len(segments), -1, dtype=np.int64)
    window_start[on] = grouped["start"].transform("min").to_numpy()
    window_end[on] = grouped["end"].transform("max").to_numpy()
    segments["window_start"] = window_start
    segments["window_end"] = window_end
    return segments


def _ns(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError(f"instant {instant.isoformat()} has no time zone")
    return int(pd.Timestamp(instant).as_unit("ns").value)


def _dt(ns: int) -> datetime:
    return pd.Timestamp(ns, tz="UTC").to_pydatetime()
