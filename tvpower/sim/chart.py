"""The power chart of a run: every TV's power over the span, one row per client.

Green bars while a TV is on, nothing while it is off; hatched bands while a
client is away: grey before it joins, over its row while it is disconnected
(its TV keeps its power but hears no intents). The scenario's actions are
dashed lines, the publisher's outages grey spans.

Needs matplotlib (the ``notebooks`` extra); the rest of tvpower does not
import this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from tvpower.sim.scenario import Scenario

if TYPE_CHECKING:
    from tvpower.sim import SimResult

__all__ = ["ABSENT", "DISCONNECTED", "away_stretches", "power_chart"]

#: Legend labels of a client's stretches away.
ABSENT = "not joined yet"
DISCONNECTED = "disconnected"
_BAR = 0.3  # half the height of a row's bars
# Names of actions: how far above the chart, and how close side by side.
_LEADER_POINTS = 8.0
_NAME_POINTS = 11.0
# More actions at one instant are named by kind and count.
_NAMED_AT_ONCE = 3
_STYLES: dict[str, dict[str, Any]] = {
    ABSENT: {"facecolor": "0.92", "edgecolor": "0.6", "hatch": "///", "zorder": 1},
    # Over the row, and see-through: the TV's power shows beneath.
    DISCONNECTED: {
        "facecolor": (1.0, 1.0, 1.0, 0.45),
        "edgecolor": "0.25",
        "hatch": "xx",
        "zorder": 2,
    },
}

_LEGEND = (
    "TV on",
    ABSENT,
    DISCONNECTED,
    "switched on",
    "switched off",
    "action",
    "publisher down",
)

#: One stretch of a client away: client id, start, end, ``ABSENT`` or
#: ``DISCONNECTED``.
Away = tuple[str, datetime, datetime, str]


def power_chart(scenario: Scenario, result: SimResult) -> Figure:
    """Draw ``result.power`` against ``scenario``'s actions; a titled figure.

    The figure is not pyplot's: a notebook shows it as a cell's value, and
    ``savefig`` writes it.
    """
    clients = sorted(scenario.schedule.clients)
    figure = Figure(figsize=(11, 1.5 + 0.6 * len(clients)))
    ax = figure.subplots()
    for row, client in enumerate(clients):
        _draw_power(ax, row, result.power[result.power["client_id"] == client])
    for client, start, end, kind in away_stretches(scenario):
        left, right = _num([start, end])
        row = clients.index(client)
        bar = [(left, right - left)]
        ax.broken_barh(bar, (row - _BAR, 2 * _BAR), label=kind, **_STYLES[kind])
    names = _draw_actions(ax, scenario)

    _label(ax, scenario, clients)
    # Above the actions' names, which stand above the axes.
    figure.suptitle(f"TV power per client: scenario {result.scenario}")
    _make_room(figure, ax, names)
    return figure


def away_stretches(scenario: Scenario) -> list[Away]:
    """Each client's stretches away: before it joins, and while disconnected."""
    since = {c: (scenario.start, ABSENT) for c in scenario.joining}
    stretches = []
    for action in scenario.actions:
        if action.kind == "disconnect":
            since[action.target] = (action.at, DISCONNECTED)
        elif action.kind in ("join", "reconnect"):
            start, kind = since.pop(action.target)
            stretches.append((action.target, start, action.at, kind))
    stretches += [(c, start, scenario.end, kind) for c, (start, kind) in since.items()]
    return [s for s in stretches if s[1] < s[2]]


def _num(instants: Iterable[Any]) -> Any:
    """Matplotlib date numbers of aware instants, on a UTC axis."""
    index = pd.DatetimeIndex(pd.to_datetime(list(instants), utc=True))
    # matplotlib.dates has no annotations, here and in _label.
    return mdates.date2num(index.tz_localize(None))  # type: ignore[no-untyped-call]


def _draw_power(ax: Axes, row: int, power: pd.DataFrame) -> None:
    on = power[power["power"] == "on"]
    if not on.empty:
        starts, ends = _num(on["start"]), _num(on["end"])
        bars = list(zip(starts, ends - starts, strict=True))
        ax.broken_barh(bars, (row - _BAR, 2 * _BAR), color="tab:green", label="TV on")

    switched = power[power["power"] != power["power"].shift()].iloc[1:]
    for state, marker in (("on", "^"), ("off", "v")):
        at = _num(switched[switched["power"] == state]["start"])
        if not len(at):
            continue  # nor a legend entry for what never happened
        ax.plot(
            at,
            [row] * len(at),
            marker,
            color="black",
            zorder=3,
            label=f"switched {state}",
        )


def _draw_actions(ax: Axes, scenario: Scenario) -> list[Annotation]:
    """Dashed lines at the actions, named above the chart; the publisher's outages.

    The names stand outside the rows so that they hide none of them.
    """
    names = []
    at_once: dict[datetime, list[str]] = {}
    for action in scenario.in_order:  # named in the order they happen
        at_once.setdefault(action.at, []).append(f"{action.kind} {action.target}")
    for at, happening in at_once.items():
        x = _num([at])[0]
        ax.axvline(x, color="tab:red", linestyle="--", linewidth=1, label="action")
        name = ax.annotate(
            _name(happening),
            (x, 1),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, _LEADER_POINTS),
            textcoords="offset points",
            rotation=90,
            ha="center",
            va="bottom",
            fontsize=8,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": "tab:red", "linewidth": 0.5},
        )
        names.append(name)

    for stopped, started in scenario.outages:
        ax.axvspan(
            *_num([stopped, started]), color="0.85", zorder=0, label="publisher down"
        )
    return names


def _name(happening: list[str]) -> str:
    """What happens at one instant, in one line: the actions, or how many."""
    if len(happening) <= _NAMED_AT_ONCE:
        return ", ".join(happening)
    kinds = Counter(text.split(" ", 1)[0] for text in happening)
    return ", ".join(f"{kind} x{count}" for kind, count in kinds.items())


def _make_room(figure: Figure, ax: Axes, names: list[Annotation]) -> None:
    """Grow the figure by the longest name, lay it out, then spread close names."""
    if names:
        longest = max(name.get_window_extent().height for name in names)
        figure.set_figheight(figure.get_figheight() + longest / figure.dpi)
    figure.tight_layout()

    # Only now are the points between the names known.
    points_per_pixel = 72 / figure.dpi
    anchors = [
        ax.transData.transform((name.xy[0], 0))[0] * points_per_pixel for name in names
    ]
    order = sorted(range(len(names)), key=anchors.__getitem__)
    spread = _spread([anchors[i] for i in order], _NAME_POINTS)
    for i, x in zip(order, spread, strict=True):
        names[i].xyann = (x - anchors[i], _LEADER_POINTS)


def _spread(xs: list[float], gap: float) -> list[float]:
    """Sorted ``xs`` moved ``gap`` apart at least, each crowded run centred."""
    runs: list[list[float]] = []
    for x in xs:
        run = [x]
        while runs and _first(run, gap) - _last(runs[-1], gap) < gap:
            run = runs.pop() + run
        runs.append(run)
    return [_first(run, gap) + i * gap for run in runs for i in range(len(run))]


def _first(run: list[float], gap: float) -> float:
    return sum(run) / len(run) - (len(run) - 1) * gap / 2


def _last(run: list[float], gap: float) -> float:
    return sum(run) / len(run) + (len(run) - 1) * gap / 2


def _label(ax: Axes, scenario: Scenario, clients: list[str]) -> None:
    """A legend entry per kind, a row per client, a time axis in UTC."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    order = sorted(unique, key=_LEGEND.index)
    ax.legend(
        [unique[label] for label in order],
        order,
        loc="upper left",
        bbox_to_anchor=(1, 1),
    )
    ax.set_yticks(range(len(clients)), clients)
    ax.set_ylim(-0.7, len(clients) - 0.3)
    ax.set_xlim(_num([scenario.start, scenario.end]))

    locator = mdates.AutoDateLocator(minticks=4, maxticks=12)  # type: ignore[no-untyped-call]
    # Whole hours (or days) on the axis, not every 72 minutes.
    locator.intervald[mdates.HOURLY] = [1, 2, 3, 6, 12]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("client")
