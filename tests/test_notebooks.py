"""The analyst notebooks run top to bottom with papermill, as CI runs them.

The full scenario library goes through ``notebooks/verify.ipynb`` in
``.ci/run``; here a few scenarios keep the suite quick.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.image
import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BROKEN = ROOT / "tests" / "data" / "sim-broken-expectation.yaml"
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


def test_notebooks_are_stored_without_outputs() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code[0].metadata.get("tags") == ["parameters"], path.name
        for cell in code:
            assert not cell.outputs, f"{path.name}: stored outputs"
            assert cell.execution_count is None, f"{path.name}: execution count"
        assert all(c.source.strip() for c in notebook.cells), path.name
