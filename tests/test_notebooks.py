"""The analyst notebooks run top to bottom with papermill, as CI runs them.

The full scenario library goes through ``notebooks/verify.ipynb`` in
``.ci/run``; here a few scenarios keep the suite quick. The chart
``explore.ipynb`` draws is checked on its own, without a run.
"""

from __future__ import annotations

import itertools
import textwrap
from datetime import datetime
from pathlib import Path

import matplotlib.dates
import matplotlib.image
import nbformat
import pandas as pd
import papermill
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from tvpower.sim import Scenario, SimResult, load_scenario
from tvpower.sim.chart import ABSENT, DISCONNECTED, away_stretches, power_chart

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BROKEN = ROOT / "tests" / "data" / "sim-broken-expectation.yaml"
SCENARIOS = ROOT / "scenarios"
SHIPPED = [
    "../scenarios/makerspace-potsdam.yaml",
    "../scenarios/cancellation.yaml",
    "../scenarios/back-to-back.yaml",
]
# A client override with an unquoted ``off``, which tvpower reads as the
# string and a plain YAML 1.1 reader as False.
UNQUOTED_OFF = """\
    timezone: UTC
    groups:
      lobby:
        clients: [lobby-a, lobby-b]
    events:
      - {id: open-house, group: lobby,
         start: 2026-03-02T09:00:00Z, end: 2026-03-02T10:00:00Z}
      - {id: blackout-a, client: lobby-a, desired_state: off,
         start: 2026-03-02T09:20:00Z, end: 2026-03-02T09:40:00Z}
    simulation:
      start: 2026-03-02T08:30:00Z
      end: 2026-03-02T10:30:00Z
"""

pytestmark = pytest.mark.timeout(180)


def _execute(name: str, workdir: Path, **parameters: object) -> None:
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(workdir / name),
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
    )


def test_explore_draws_a_chart(tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    _execute("explore.ipynb", tmp_path, png=str(png))
    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.std() > 0.05, "the chart is one flat colour"
    assert (pixels < 0.9).any(axis=-1).mean() > 0.01, "the chart is almost all white"


def test_explore_what_if_keeps_an_unquoted_off(tmp_path: Path) -> None:
    scenario = tmp_path / "unquoted-off.yaml"
    scenario.write_text(textwrap.dedent(UNQUOTED_OFF))
    _execute("explore.ipynb", tmp_path, scenario=str(scenario))
    notebook = nbformat.read(tmp_path / "explore.ipynb", as_version=4)
    printed = [
        output.text
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    ]
    assert "what if: {'cancel': 'open-house'}\n" in printed


def test_verify_passes_the_shipped_scenarios(tmp_path: Path) -> None:
    _execute("verify.ipynb", tmp_path, scenarios=SHIPPED, out=str(tmp_path / "csv"))
    assert (tmp_path / "csv" / "summary.csv").is_file()


def test_verify_takes_one_scenario_as_a_string(tmp_path: Path) -> None:
    # As `papermill -p scenarios FILE` passes it.
    _execute("verify.ipynb", tmp_path, scenarios="../scenarios/lead-time.yaml")
    notebook = nbformat.read(tmp_path / "verify.ipynb", as_version=4)
    assert "all 1 scenarios passed" in notebook.cells[-1].outputs[0].text


def test_verify_fails_a_broken_expectation(tmp_path: Path) -> None:
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        _execute("verify.ipynb", tmp_path, scenarios=[str(BROKEN)])
    assert failure.value.ename == "AssertionError"
    assert "1 of 1 scenarios failed" in failure.value.evalue


@pytest.mark.parametrize(
    ("notebook", "parameters", "message"),
    [
        ("explore.ipynb", {"png": "/nonexistent/x.png"}, "png: no directory"),
        ("explore.ipynb", {"png": "chart.foo"}, "png: expected a file name ending"),
        ("explore.ipynb", {"png": "chart.png/"}, "png: expected a file name ending"),
        ("verify.ipynb", {"scenarios": 5}, "scenarios: expected a file"),
        ("verify.ipynb", {"scenarios": []}, "scenarios: the list is empty"),
    ],
    ids=["png-nowhere", "png-kind", "png-folder", "scenarios-number", "scenarios-none"],
)
def test_a_bad_parameter_fails_before_any_run(
    tmp_path: Path, notebook: str, parameters: dict[str, object], message: str
) -> None:
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        _execute(notebook, tmp_path, **parameters)
    assert message in failure.value.evalue
    executed = nbformat.read(tmp_path / notebook, as_version=4)
    printed = [
        output.get("text", "")
        for cell in executed.cells
        for output in cell.get("outputs", [])
    ]
    assert not any("intents received" in text for text in printed)


def test_notebooks_are_stored_without_outputs() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code[0].metadata.get("tags") == ["parameters"], path.name
        for cell in code:
            assert not cell.outputs, f"{path.name}: stored outputs"
            assert cell.execution_count is None, f"{path.name}: execution count"
        assert all(c.source.strip() for c in notebook.cells), path.name


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _result(scenario: Scenario, power: list[tuple[str, str, str, str]]) -> SimResult:
    """A run of ``scenario`` whose TVs had these stretches of power, and no more."""
    columns = ["client_id", "start", "end", "power"]
    table = pd.DataFrame(power, columns=columns)
    for column in ("start", "end"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return SimResult(
        scenario=scenario.name,
        clients=len(scenario.schedule.clients),
        received=pd.DataFrame(),
        power=table,
        violations=pd.DataFrame(),
        seconds=0.0,
    )


def _bars(figure: Figure, label: str) -> list[tuple[str, datetime, datetime]]:
    """The bars drawn under ``label``: client, start and end (UTC)."""
    ax = figure.axes[0]
    clients = [tick.get_text() for tick in ax.get_yticklabels()]
    bars = []
    for collection in ax.collections:
        if collection.get_label() != label:
            continue
        for path in collection.get_paths():
            box = path.get_extents()
            start, end = matplotlib.dates.num2date([box.x0, box.x1])
            bars.append((clients[round((box.y0 + box.y1) / 2)], start, end))
    return sorted(bars)


def test_the_chart_draws_absent_and_disconnected_apart_from_off() -> None:
    scenario = load_scenario(SCENARIOS / "client-reconnect.yaml")
    result = _result(
        scenario,
        [
            ("lobby-left", "2026-03-02T08:00Z", "2026-03-02T09:00Z", "off"),
            ("lobby-left", "2026-03-02T09:00Z", "2026-03-02T12:00Z", "on"),
            ("lobby-left", "2026-03-02T12:00Z", "2026-03-02T15:00Z", "off"),
            ("lobby-right", "2026-03-02T08:00Z", "2026-03-02T15:00Z", "off"),
            ("kiosk", "2026-03-02T13:15Z", "2026-03-02T15:00Z", "off"),
        ],
    )

    chart = power_chart(scenario, result)

    assert _bars(chart, ABSENT) == [
        ("kiosk", _at("2026-03-02T08:00Z"), _at("2026-03-02T13:15Z"))
    ]
    assert _bars(chart, DISCONNECTED) == [
        ("lobby-left", _at("2026-03-02T09:40Z"), _at("2026-03-02T10:50Z")),
        ("lobby-right", _at("2026-03-02T11:45Z"), _at("2026-03-02T12:20Z")),
    ]
    # Off is drawn as nothing: the only bar of a TV is its one stretch on.
    assert _bars(chart, "TV on") == [
        ("lobby-left", _at("2026-03-02T09:00Z"), _at("2026-03-02T12:00Z"))
    ]
    for collection in chart.axes[0].collections:
        if collection.get_label() in (ABSENT, DISCONNECTED):
            assert collection.get_hatch(), collection.get_label()
    legend = chart.axes[0].get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "TV on",
        ABSENT,
        DISCONNECTED,
        "switched on",
        "switched off",
        "action",
    ]


def test_away_stretches_run_to_the_end_without_a_reconnect(tmp_path: Path) -> None:
    scenario = tmp_path / "away.yaml"
    scenario.write_text(
        textwrap.dedent(
            """\
            timezone: UTC
            clients: {kiosk: {}, hall: {}}
            events: []
            simulation:
              start: 2026-03-02T08:00:00Z
              end: 2026-03-02T12:00:00Z
            timeline:
              - {at: 2026-03-02T08:00:00Z, join: kiosk}
              - {at: 2026-03-02T09:00:00Z, disconnect: kiosk}
              - {at: 2026-03-02T10:00:00Z, disconnect: hall}
            """
        )
    )

    stretches = away_stretches(load_scenario(scenario))

    # A join at the start leaves no stretch before it.
    assert stretches == [
        ("kiosk", _at("2026-03-02T09:00Z"), _at("2026-03-02T12:00Z"), DISCONNECTED),
        ("hall", _at("2026-03-02T10:00Z"), _at("2026-03-02T12:00Z"), DISCONNECTED),
    ]


def test_the_chart_names_close_actions_side_by_side() -> None:
    # A broker restart and a disconnect at 10:15, a reconnect at 10:16.
    scenario = load_scenario(SCENARIOS / "broker-restart.yaml")
    chart = power_chart(scenario, _result(scenario, []))
    chart.draw_without_rendering()

    ax = chart.axes[0]
    names = [name.get_text() for name in ax.texts]
    assert len(names) == len({a.at for a in scenario.actions}) == 3
    assert "restart broker, disconnect lobby-left" in names
    # The names' own boxes: their leader lines may cross.
    boxes = [Text.get_window_extent(name) for name in ax.texts]
    for one, other in itertools.combinations(boxes, 2):
        assert not one.overlaps(other)
    # Above the rows, under the title.
    (title,) = chart.texts
    assert title.get_text() == "TV power per client: scenario broker-restart"
    rows, top = ax.get_window_extent(), title.get_window_extent()
    assert all(rows.y1 <= box.y0 and box.y1 <= top.y0 for box in boxes)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (UTC)", "client")


def test_the_chart_counts_a_crowd_of_actions_and_lists_what_happened(
    tmp_path: Path,
) -> None:
    clients = [f"tv{n:02}" for n in range(12)]
    scenario_file = tmp_path / "crowd.yaml"
    scenario_file.write_text(
        "timezone: UTC\n"
        f"clients: {{{', '.join(f'{c}: {{}}' for c in clients)}}}\n"
        "simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T10:00:00Z}\n"
        "timeline:\n"
        + "".join(
            f"  - {{at: 2026-03-02T09:00:00Z, disconnect: {c}}}\n" for c in clients
        )
    )
    scenario = load_scenario(scenario_file)
    # Every TV off throughout: nothing switched.
    power = [(c, "2026-03-02T08:00Z", "2026-03-02T10:00Z", "off") for c in clients]
    chart = power_chart(scenario, _result(scenario, power))

    ax = chart.axes[0]
    assert [name.get_text() for name in ax.texts] == ["disconnect x12"]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [DISCONNECTED, "action"]


def test_the_chart_names_an_instants_actions_in_the_order_they_happen(
    tmp_path: Path,
) -> None:
    scenario_file = tmp_path / "order.yaml"
    scenario_file.write_text(
        "timezone: UTC\n"
        "clients: {tv: {}}\n"
        "events:\n"
        "  - {id: talk, client: tv, start: 2026-03-02T09:00:00Z,"
        " end: 2026-03-02T10:00:00Z}\n"
        "simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T11:00:00Z}\n"
        "timeline:\n"
        "  - {at: 2026-03-02T08:30:00Z, disconnect: tv}\n"
        "  - {at: 2026-03-02T09:00:00Z, reconnect: tv}\n"
        "  - {at: 2026-03-02T09:00:00Z, cancel: talk}\n"
    )
    scenario = load_scenario(scenario_file)
    chart = power_chart(scenario, _result(scenario, []))

    names = sorted(name.get_text() for name in chart.axes[0].texts)
    assert names == ["cancel talk, reconnect tv", "disconnect tv"]
