"""Properties of the timeline engine, against a slow brute-force reference.

All boundaries of a :mod:`strategies` scenario are whole seconds, so a
client's state is constant on every ``[t, t + 1)``: the reference decides
the state at each whole second from the contract's rules, one instant at a
time, and the engine's segments must say the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvpower.engine import NS, REASONS, Timeline, build_timeline
from tvpower.schedule import EARLIEST_INSTANT

from .strategies import OUTER, ClientSpec, Occurrence, Scenario, scenarios

PROPERTY = settings(max_examples=200, deadline=None)

ON_CODES = (1, 2)

COLUMNS = ["start", "end", "desired_state", "reason", "window_start", "window_end"]

# (start, end, desired_state, reason, window_start, window_end), in seconds.
Row = tuple[int, int, str, str, int, int]


# The reference -----------------------------------------------------------


def reference_codes(scenario: Scenario, client: ClientSpec) -> dict[int, int]:
    """The state code of ``client`` at every whole second, by brute force.

    Precedence: an ``off`` override, then an ``on`` override, then an event
    (each occurrence turned on ``lead`` before its start, and gaps shorter
    than ``merge_gap`` between covered instants bridged), then off.
    """
    seconds = range(min(OUTER[0], scenario.start), max(OUTER[1], scenario.end))
    mine = scenario.occurrences_of(client)
    events = [o for o in mine if o.layer == "event"]
    covered = [any(o.start - client.lead <= t < o.end for o in events) for t in seconds]
    covered = _bridge(covered, client.gap)

    codes = {}
    for t, in_event in zip(seconds, covered, strict=True):
        if _covers(mine, "off", t):
            codes[t] = 3
        elif _covers(mine, "on", t):
            codes[t] = 2
        else:
            codes[t] = int(in_event)
    return codes


def _covers(occurrences: Sequence[Occurrence], layer: str, t: int) -> bool:
    return any(o.layer == layer and o.start <= t < o.end for o in occurrences)


def _bridge(covered: list[bool], gap: int) -> list[bool]:
    """Fill each run of uncovered seconds between covered ones shorter than gap."""
    bridged = list(covered)
    on = [i for i, c in enumerate(covered) if c]
    for a, b in itertools.pairwise(on):
        if b - a - 1 < gap:
            bridged[a + 1 : b] = [True] * (b - a - 1)
    return bridged


def reference_rows(scenario: Scenario, client: ClientSpec) -> list[Row]:
    """The client's segments over the scenario's range, from the reference."""
    codes = reference_codes(scenario, client)
    runs: list[list[int]] = []  # [start, end, code]
    for t in range(scenario.start, scenario.end):
        if runs and runs[-1][2] == codes[t]:
            runs[-1][1] = t + 1
        else:
            runs.append([t, t + 1, codes[t]])
    states = ["on" if code in ON_CODES else "off" for _, _, code in runs]
    windows = _on_runs([(s, e) for s, e, _ in runs], states)
    return [
        (s, e, state, REASONS[code], *window)
        for (s, e, code), state, window in zip(runs, states, windows, strict=True)
    ]


def _on_runs(
    bounds: Sequence[tuple[int, int]], states: Sequence[str]
) -> list[tuple[int, int]]:
    """For each segment, the run of adjacent ``on`` segments around it."""
    windows = [(-1, -1)] * len(bounds)
    i = 0
    while i < len(bounds):
        j = i
        while states[i] == "on" and j + 1 < len(bounds) and states[j + 1] == "on":
            j += 1
        if states[i] == "on":
            windows[i : j + 1] = [(bounds[i][0], bounds[j][1])] * (j + 1 - i)
        i = j + 1
    return windows


def merged(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching intervals as one."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# The engine's answers, in seconds ------------------------------------------


def seconds(ns: int) -> int:
    assert ns % NS == 0, f"{ns} ns is not a whole second"
    return ns // NS


def engine_rows(timeline: Timeline) -> dict[str, list[Row]]:
    """Each client's segments over the whole timeline."""
    frame = timeline.client_segments(timeline.start, timeline.end)
    rows: dict[str, list[Row]] = {c: [] for c in timeline.clients.index}
    for r in frame.to_dict("records"):
        rows[r["client_id"]].append(
            (
                seconds(r["start"]),
                seconds(r["end"]),
                r["desired_state"],
                r["reason"],
                *(window_seconds(r[w]) for w in ("window_start", "window_end")),
            )
        )
    return rows


def window_seconds(ns: int) -> int:
    return ns if ns == -1 else seconds(ns)


def instants(timeline: Timeline, low: int, high: int) -> st.SearchStrategy[int]:
    """Instants in ``[low, high)`` (ns), often a segment bound or next to one."""
    bounds = sorted(set(timeline.segments["start"]) | set(timeline.segments["end"]))
    near = [t + d for t in bounds for d in (-1, 0, 1) if low <= t + d < high]
    anywhere = st.integers(low, high - 1)
    return st.sampled_from(near) | anywhere if near else anywhere


def group_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# Properties --------------------------------------------------------------


@PROPERTY
@given(scenarios(overrides=False, settings=False))
def test_on_segments_are_the_union_of_event_windows(scenario: Scenario) -> None:
    rows = engine_rows(scenario.timeline())

    for client in scenario.clients:
        events = [(o.start, o.end) for o in scenario.occurrences_of(client)]
        clipped = [
            (max(s, scenario.start), min(e, scenario.end))
            for s, e in merged(events)
            if e > scenario.start and s < scenario.end
        ]
        on = [(r[0], r[1]) for r in rows[client.id] if r[2] == "on"]
        assert on == clipped
        assert {r[3] for r in rows[client.id] if r[2] == "on"} <= {REASONS[1]}


@PROPERTY
@given(scenarios(overrides=False, settings=False))
def test_no_off_between_touching_or_overlapping_events(scenario: Scenario) -> None:
    rows = engine_rows(scenario.timeline())

    for client in scenario.clients:
        events = [(o.start, o.end) for o in scenario.occurrences_of(client)]
        offs = [(r[0], r[1]) for r in rows[client.id] if r[2] == "off"]
        for a_start, a_end in events:
            for b_start, b_end in events:
                if a_start <= b_start <= a_end:  # b overlaps or touches a
                    joint = (a_start, max(a_end, b_end))
                    assert not [o for o in offs if o[0] < joint[1] and joint[0] < o[1]]


@PROPERTY
@given(scenarios())
def test_segments_tile_each_profile(scenario: Scenario) -> None:
    timeline = scenario.timeline()
    segments = timeline.segments

    assert set(segments["profile"]) == set(range(len(scenario.fleet().profiles)))
    for _, seg in segments.groupby("profile"):
        seg = seg.sort_values("start")
        starts, ends = seg["start"].tolist(), seg["end"].tolist()
        codes = seg["code"].tolist()
        assert starts[0] == timeline.start
        assert ends[-1] == timeline.end
        assert ends[:-1] == starts[1:]
        assert all(s < e for s, e in zip(starts, ends, strict=True))
        assert all(a != b for a, b in itertools.pairwise(codes))


@PROPERTY
@given(scenarios())
def test_consecutive_client_segments_differ(scenario: Scenario) -> None:
    for rows in engine_rows(scenario.timeline()).values():
        meanings = [(r[2], r[3]) for r in rows]
        assert all(a != b for a, b in itertools.pairwise(meanings))


@PROPERTY
@given(scenarios())
def test_effective_state_matches_reference(scenario: Scenario) -> None:
    rows = engine_rows(scenario.timeline())

    for client in scenario.clients:
        expected = reference_rows(scenario, client)
        assert [r[:4] for r in rows[client.id]] == [r[:4] for r in expected], client


@PROPERTY
@given(scenarios())
def test_event_window_is_the_run_of_on_around_a_segment(scenario: Scenario) -> None:
    rows = engine_rows(scenario.timeline())

    for client in scenario.clients:
        own = rows[client.id]
        runs = _on_runs([(r[0], r[1]) for r in own], [r[2] for r in own])
        assert [r[4:] for r in own] == runs
        assert [r[4:] for r in own] == [r[4:] for r in reference_rows(scenario, client)]


@PROPERTY
@given(scenarios(), st.data())
def test_at_agrees_with_segments(scenario: Scenario, data: st.DataObject) -> None:
    timeline = scenario.timeline()
    frame = timeline.client_segments(timeline.start, timeline.end)
    instant = data.draw(instants(timeline, timeline.start, timeline.end), label="t")

    now = timeline.at(instant)

    assert sorted(now.index) == sorted(c.id for c in scenario.clients)
    covering = frame[(frame["start"] <= instant) & (instant < frame["end"])]
    assert covering["client_id"].is_unique
    expected = covering.set_index("client_id").loc[now.index]
    for column in [*COLUMNS, "grace_seconds"]:
        assert now[column].tolist() == expected[column].tolist(), column
    assert (now["start_known"] == (now["start"] > timeline.start)).all()
    assert (now["end_known"] == (now["end"] < timeline.end)).all()
    groups = {c.id: c.group_id for c in scenario.clients}
    assert [group_or_none(g) for g in now["group_id"]] == [groups[c] for c in now.index]


@PROPERTY
@given(scenarios())
def test_at_refuses_instants_outside_the_range(scenario: Scenario) -> None:
    timeline = scenario.timeline()

    for instant in (timeline.start - 1, timeline.end):
        with pytest.raises(ValueError, match="outside the timeline"):
            timeline.at(instant)


def groups_frame(scenario: Scenario) -> pd.DataFrame:
    """The scenario's groups as a timeline holds them: profiles as fleet_of's."""
    ids = sorted(g.id for g in scenario.groups)
    return pd.DataFrame(
        {
            "group_id": ids,
            "profile": list(range(len(ids))),
            "grace_seconds": [60 + i for i in range(len(ids))],
        },
        index=pd.Index(ids, name="group_id"),
    )


def looked_up(timeline: Timeline, members: pd.DataFrame, instant: int) -> pd.DataFrame:
    """Each member's segment at ``instant``, by a plain pandas lookup."""
    seg = timeline.segments
    current = seg[(seg["start"] <= instant) & (instant < seg["end"])]
    rows = current.set_index("profile").loc[members["profile"]]
    on = rows["code"].isin(ON_CODES).to_numpy()
    start = rows["start"].to_numpy()
    start_known = start > timeline.start
    if timeline.origin:
        start = np.where(start_known, start, int(EARLIEST_INSTANT.timestamp()) * NS)
        start_known[:] = True
    return pd.DataFrame(
        {
            "group_id": members["group_id"].to_numpy(),
            "grace_seconds": members["grace_seconds"].to_numpy(),
            "start": start,
            "end": rows["end"].to_numpy(),
            "desired_state": np.where(on, "on", "off").astype(object),
            "reason": np.array(REASONS, dtype=object)[rows["code"].to_numpy()],
            "window_start": rows["window_start"].to_numpy(),
            "window_end": rows["window_end"].to_numpy(),
            "start_known": start_known,
            "end_known": rows["end"].to_numpy() < timeline.end,
        },
        index=pd.Index(members.index.to_numpy(), name=members.index.name),
    )


@PROPERTY
@given(scenarios(), st.data(), st.booleans())
def test_at_is_a_plain_lookup_of_the_segments(
    scenario: Scenario, data: st.DataObject, origin: bool
) -> None:
    built = scenario.timeline()
    order = data.draw(st.permutations(range(len(built.segments))), label="order")
    # With no groups, the empty frame the engine itself makes for them.
    groups = groups_frame(scenario) if scenario.groups else built.groups
    timeline = replace(
        built, segments=built.segments.iloc[order], groups=groups, origin=origin
    )
    instant = data.draw(instants(timeline, timeline.start, timeline.end), label="t")

    clients, groups = timeline.at(instant), timeline.groups_at(instant)

    pd.testing.assert_frame_equal(
        clients, looked_up(timeline, timeline.clients, instant)
    )
    pd.testing.assert_frame_equal(groups, looked_up(timeline, timeline.groups, instant))
    # A result is the caller's own: changing it changes no later answer.
    clients.index.name = "renamed"
    clients.loc[:, "grace_seconds"] = 0
    pd.testing.assert_frame_equal(
        timeline.at(instant), looked_up(timeline, timeline.clients, instant)
    )


@PROPERTY
@given(scenarios(), st.data())
def test_client_segments_clip_and_cover_each_client(
    scenario: Scenario, data: st.DataObject
) -> None:
    timeline = scenario.timeline()
    full = engine_rows(timeline)
    a = data.draw(instants(timeline, timeline.start, timeline.end), label="from")
    b = data.draw(instants(timeline, a + 1, timeline.end + 1), label="to")

    frame = timeline.client_segments(a, b)

    assert frame["client_id"].tolist() == sorted(frame["client_id"])
    assert set(frame["client_id"]) == {c.id for c in scenario.clients}
    for client_id, rows in frame.groupby("client_id", sort=False):
        assert isinstance(client_id, str)
        starts, ends = rows["start"].tolist(), rows["end"].tolist()
        assert starts[0] == a
        assert ends[-1] == b
        assert ends[:-1] == starts[1:]
        # Bounds are clipped to [a, b); event windows are the timeline's.
        expected = [
            (max(s * NS, a), min(e * NS, b), state, reason, *window)
            for s, e, state, reason, *window in full[client_id]
            if e * NS > a and s * NS < b
        ]
        got = [
            (s, e, state, reason, window_seconds(w_start), window_seconds(w_end))
            for s, e, state, reason, w_start, w_end in rows[COLUMNS].to_numpy()
        ]
        assert got == expected


@PROPERTY
@given(scenarios(), st.data())
def test_order_and_repetition_of_occurrences_change_nothing(
    scenario: Scenario, data: st.DataObject
) -> None:
    twice = pd.concat([scenario.frame(), scenario.frame()], ignore_index=True)
    order = data.draw(st.permutations(range(len(twice))), label="order")
    start, end = scenario.start * NS, scenario.end * NS

    shuffled = build_timeline(scenario.fleet(), twice.iloc[order], start, end)

    pd.testing.assert_frame_equal(shuffled.segments, scenario.timeline().segments)
