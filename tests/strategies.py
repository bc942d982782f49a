"""Hypothesis strategies shared by the tests: small fleets and their occurrences.

A :class:`Scenario` describes a fleet the way the engine sees it after
:func:`tvpower.engine.fleet_of`: groups, clients (sharing their group's
profile, or with a profile of their own), occurrences per owner, and a
range. Times are whole seconds on a small grid, so that touching and
overlapping windows, and gaps as long as ``merge_gap`` or ``lead``, are
frequent; :meth:`Scenario.timeline` hands everything to the engine in
nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from tvpower.engine import NS, Fleet, Timeline, _fleet, build_timeline

#: Occurrences start in ``[0, GRID_SECONDS)`` and last 1 to ``MAX_LENGTH`` s.
GRID_SECONDS = 30
MAX_LENGTH = 8
MAX_LEAD = 4
MAX_GAP = 5

#: A range of whole seconds wide enough to hold every occurrence, widened by
#: any lead, with time to spare on both sides.
OUTER = (-MAX_LEAD - 5, GRID_SECONDS + MAX_LENGTH + 5)


@dataclass(frozen=True)
class GroupSpec:
    id: str
    lead: int = 0
    gap: int = 0


@dataclass(frozen=True)
class ClientSpec:
    """A client; ``own`` clients have a profile of their own (see fleet_of)."""

    id: str
    group_id: str | None = None
    own: bool = True
    lead: int = 0
    gap: int = 0
    grace: int = 30


@dataclass(frozen=True)
class Occurrence:
    """One occurrence in whole seconds; ``layer`` is event, on or off."""

    owner_kind: str
    owner: str
    layer: str
    start: int
    end: int


@dataclass(frozen=True)
class Scenario:
    """A fleet, its occurrences, and the range ``[start, end)`` in seconds."""

    groups: tuple[GroupSpec, ...]
    clients: tuple[ClientSpec, ...]
    occurrences: tuple[Occurrence, ...]
    start: int
    end: int

    def fleet(self) -> Fleet:
        """The engine's fleet, with profiles numbered as fleet_of does."""
        groups = sorted(self.groups, key=lambda g: g.id)
        profile_of_group = {g.id: i for i, g in enumerate(groups)}
        profile_rows = [(g.lead, g.gap) for g in groups]
        sources = [("group", g.id, profile_of_group[g.id]) for g in groups]
        rows = []
        for client in sorted(self.clients, key=lambda c: c.id):
            if client.own:
                profile = len(profile_rows)
                profile_rows.append((client.lead, client.gap))
                sources.append(("client", client.id, profile))
                if client.group_id is not None:
                    sources.append(("group", client.group_id, profile))
            else:
                assert client.group_id is not None, "a shared client needs a group"
                profile = profile_of_group[client.group_id]
            rows.append((client.id, client.group_id, profile, client.grace))
        return _fleet(rows, profile_rows, sources)

    def frame(self) -> pd.DataFrame:
        """The occurrences as build_timeline takes them (times in ns)."""
        return occurrence_frame(self.occurrences)

    def timeline(self) -> Timeline:
        return build_timeline(
            self.fleet(), self.frame(), self.start * NS, self.end * NS
        )

    def occurrences_of(self, client: ClientSpec) -> list[Occurrence]:
        """What feeds the client: its group's occurrences and its own."""
        owners = {("client", client.id), ("group", client.group_id)}
        return [o for o in self.occurrences if (o.owner_kind, o.owner) in owners]


def occurrence_frame(occurrences: Iterable[Occurrence]) -> pd.DataFrame:
    rows = list(occurrences)
    return pd.DataFrame(
        {
            "owner_kind": pd.Series([o.owner_kind for o in rows], dtype=object),
            "owner": pd.Series([o.owner for o in rows], dtype=object),
            "layer": pd.Series([o.layer for o in rows], dtype=object),
            "start": np.array([o.start for o in rows], dtype=np.int64) * NS,
            "end": np.array([o.end for o in rows], dtype=np.int64) * NS,
        }
    )


leads = st.integers(0, MAX_LEAD)
gaps = st.integers(0, MAX_GAP)


@st.composite
def windows(draw: st.DrawFn, marks: Sequence[int]) -> tuple[int, int]:
    """A half-open window ``(start, end)`` of whole seconds on the grid.

    Starts and ends are often taken from ``marks``, times shared by all the
    windows of a scenario, so that windows touch (one's end is another's
    start) as often as they overlap.
    """
    start = draw(st.sampled_from(marks) | st.integers(0, GRID_SECONDS - 1))
    later = [m for m in marks if start < m <= start + MAX_LENGTH]
    length = st.integers(1, MAX_LENGTH)
    if later:
        return start, draw(st.sampled_from(later) | length.map(start.__add__))
    return start, start + draw(length)


def _occurrences(
    draw: st.DrawFn,
    marks: Sequence[int],
    owner: tuple[str, str],
    layer: str,
    max_size: int,
) -> list[Occurrence]:
    drawn = draw(st.lists(windows(marks), max_size=max_size))
    return [Occurrence(*owner, layer, s, e) for s, e in drawn]


@st.composite
def scenarios(
    draw: st.DrawFn, *, overrides: bool = True, settings: bool = True
) -> Scenario:
    """A fleet of up to 3 groups and 1 to 5 clients, and a range.

    ``overrides=False`` leaves out client overrides; ``settings=False`` sets
    every ``lead`` and ``merge_gap`` to 0.
    """
    lead = leads if settings else st.just(0)
    gap = gaps if settings else st.just(0)
    n_groups = draw(st.integers(0, 3))
    groups = tuple(GroupSpec(f"g{i}", draw(lead), draw(gap)) for i in range(n_groups))

    clients = []
    for i in range(draw(st.integers(1, 5))):
        group = draw(st.sampled_from((None, *groups)))
        grace = draw(st.integers(0, 120))
        if group is not None and draw(st.booleans()):
            shared = ClientSpec(f"c{i}", group.id, False, group.lead, group.gap, grace)
            clients.append(shared)
        else:
            group_id = None if group is None else group.id
            own = ClientSpec(f"c{i}", group_id, True, draw(lead), draw(gap), grace)
            clients.append(own)

    marks = draw(st.lists(st.integers(0, GRID_SECONDS - 1), min_size=1, max_size=5))
    occurrences = []
    for g in groups:
        occurrences += _occurrences(draw, marks, ("group", g.id), "event", 6)
    for c in clients:
        if not c.own:
            continue
        owner = ("client", c.id)
        occurrences += _occurrences(draw, marks, owner, "event", 3)
        if overrides:
            occurrences += _occurrences(draw, marks, owner, "on", 2)
            occurrences += _occurrences(draw, marks, owner, "off", 2)
    occurrences = draw(st.permutations(occurrences))

    start = draw(st.integers(OUTER[0], GRID_SECONDS + MAX_LENGTH))
    end = draw(st.integers(start + 1, OUTER[1]))
    return Scenario(tuple(groups), tuple(clients), tuple(occurrences), start, end)
