"""How fast the timeline engine is, in seconds and in units of a sort.

Two fleets of 10,000 clients with 1,000,000 occurrences over a year:

(a) 100 groups of 100 clients, 10,000 occurrences per group: every client
    shares its group's profile, so the engine computes 100 profiles.
(b) 100 groups of 100 clients, every client with 100 occurrences of its own:
    10,100 profiles (each group keeps one, unused).

For each, the best of ``--repeat`` runs of ``build_timeline`` over the year
and of ``Timeline.at`` at an instant inside it, next to ``np.sort`` of the
same 1,000,000 start times measured in the same run. ``at(instant)`` is a
call on a timeline that has answered before; ``first at()`` includes the
arrays a timeline prepares on its first answer. If the makerspace
scenario exists, ``compute_timeline`` over 2019 on it too.

Run: ``.venv/bin/python bench/engine.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from report import table

from tvpower.engine import DAY_NS, NS, Fleet, _fleet, build_timeline, compute_timeline

GROUPS = 100
CLIENTS_PER_GROUP = 100
OCCURRENCES = 1_000_000
YEAR_START = pd.Timestamp("2025-01-01", tz="UTC").value
YEAR_END = YEAR_START + 365 * DAY_NS
LEAD_SECONDS = 120
MERGE_GAP_SECONDS = 900
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
MAKERSPACE = SCENARIOS / "makerspace-potsdam.yaml"


# client_id, group_id, profile, grace_seconds: a row of the engine's fleet.
ClientRow = tuple[str, str | None, int, int]


@dataclass(frozen=True)
class Shape:
    name: str
    fleet: Fleet
    occurrences: pd.DataFrame


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The shortest of ``repeat`` wall-clock times of ``run()``, in seconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def occurrences(
    owner_kind: str, owners: list[str], per_owner: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``per_owner`` events of each owner: on whole minutes, 15 min to 4 h long."""
    n = len(owners) * per_owner
    minute = 60 * NS
    start = YEAR_START + rng.integers(0, (YEAR_END - YEAR_START) // minute, n) * minute
    length = rng.integers(15, 241, n) * minute
    return pd.DataFrame(
        {
            "owner_kind": owner_kind,
            "owner": np.repeat(np.array(owners, dtype=object), per_owner),
            "layer": "event",
            "start": start,
            "end": start + length,
        }
    )


def group_ids() -> list[str]:
    return [f"g{i:03d}" for i in range(GROUPS)]


def client_ids(group: str) -> list[str]:
    return [f"{group}-c{i:03d}" for i in range(CLIENTS_PER_GROUP)]


def shared_profiles(rng: np.random.Generator) -> Shape:
    groups = group_ids()
    settings = [(LEAD_SECONDS, MERGE_GAP_SECONDS)] * len(groups)
    rows: list[ClientRow] = [
        (c, g, p, 30) for p, g in enumerate(groups) for c in client_ids(g)
    ]
    sources = [("group", g, p) for p, g in enumerate(groups)]
    per_group = OCCURRENCES // len(groups)
    return Shape(
        f"(a) {GROUPS} groups x {CLIENTS_PER_GROUP} clients, shared",
        _fleet(rows, settings, sources),
        occurrences("group", groups, per_group, rng),
    )


def own_profiles(rng: np.random.Generator) -> Shape:
    groups = group_ids()
    settings = [(LEAD_SECONDS, MERGE_GAP_SECONDS)] * len(groups)
    sources = [("group", g, p) for p, g in enumerate(groups)]
    rows: list[ClientRow] = []
    for g in groups:
        for c in client_ids(g):
            profile = len(settings)
            settings.append((LEAD_SECONDS, MERGE_GAP_SECONDS))
            sources += [("client", c, profile), ("group", g, profile)]
            rows.append((c, g, profile, 30))
    per_client = OCCURRENCES // len(rows)
    clients = [c for c, _, _, _ in rows]
    return Shape(
        f"(b) {len(rows):,} clients x {per_client} own",
        _fleet(rows, settings, sources),
        occurrences("client", clients, per_client, rng),
    )


def measure(shape: Shape, repeat: int) -> list[str]:
    starts = shape.occurrences["start"].to_numpy()
    sort = best_of(repeat, lambda: np.sort(starts))
    build = best_of(
        repeat,
        lambda: build_timeline(shape.fleet, shape.occurrences, YEAR_START, YEAR_END),
    )
    timeline = build_timeline(shape.fleet, shape.occurrences, YEAR_START, YEAR_END)
    instant = YEAR_START + 200 * DAY_NS + 12 * 3600 * NS
    first_at = best_of(repeat, lambda: replace(timeline).at(instant))
    at = best_of(repeat, lambda: timeline.at(instant))
    return [
        shape.name,
        f"{len(shape.occurrences):,}",
        f"{len(timeline.segments):,}",
        f"{build:.3f} s",
        f"{build / sort:.0f}",
        f"{first_at * 1e3:.1f} ms",
        f"{at * 1e3:.1f} ms",
        f"{sort * 1e3:.1f} ms",
    ]


def makerspace(repeat: int) -> str:
    """compute_timeline over 2019 on the makerspace scenario, or why not."""
    if not MAKERSPACE.exists():
        return f"{MAKERSPACE.name}: not found, skipped"
    from tvpower.schedule import load_schedule

    schedule = load_schedule(MAKERSPACE)
    start, end = datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)
    seconds = best_of(repeat, lambda: compute_timeline(schedule, start, end))
    segments = len(compute_timeline(schedule, start, end).segments)
    return (
        f"compute_timeline, {MAKERSPACE.name}, 2019: {seconds:.3f} s"
        f" ({segments:,} segments, best of {repeat})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    header = [
        "shape",
        "occurrences",
        "segments",
        "build_timeline",
        "x sort",
        "first at()",
        "at(instant)",
        "np.sort",
    ]
    shapes = (shared_profiles, own_profiles)
    rows = [measure(shape(rng), args.repeat) for shape in shapes]
    print(f"best of {args.repeat} runs; x sort: build_timeline / np.sort of starts")
    print(table(header, rows))
    print(makerspace(args.repeat))


if __name__ == "__main__":
    main()
