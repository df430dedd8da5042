"""Every notebook runs top to bottom on the committed reference data, and fails on data that
contradicts what it claims."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from benchmarks._plots import REFERENCE, BenchRun
from benchmarks.notebooks import execute, inject_parameters, main, notebook_paths

NOTEBOOKS = notebook_paths()


def outputs(notebook: Any, output_type: str) -> list[Any]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == output_type
    ]


def test_there_are_six_numbered_notebooks() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


def test_the_reference_data_is_small_and_says_where_it_came_from() -> None:
    size = sum(p.stat().st_size for p in REFERENCE.iterdir())
    assert size < 5_000_000
    run = BenchRun.load(REFERENCE)
    reference = run.metadata["reference"]
    assert reference["runs"]
    assert "sampled" in reference
    assert run.metadata["cpu_count"]
    assert run.metadata["versions"]["fastapi"]
    assert not [s["id"] for s in run.summary["scenarios"] if s.get("error")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_on_the_reference_data(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    parameters = {"RESULTS": "results/reference", "FIGURES": str(tmp_path)}
    notebook = execute(path, parameters, timeout=60)
    assert not outputs(notebook, "error")
    figures = [o for o in outputs(notebook, "display_data") if "image/png" in o["data"]]
    assert figures, "no figure was drawn"
    exported = sorted(p.name for p in tmp_path.glob("*.png"))
    assert exported
    assert all(name.startswith(path.name[:3]) for name in exported)


@pytest.mark.timeout(120)
def test_a_notebook_fails_on_data_that_contradicts_its_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    summary = json.loads((REFERENCE / "summary.json").read_text())
    for scenario in summary["scenarios"]:
        if scenario["id"] == "sqlite/background-open":
            scenario["latency"]["p50_ms"] = 5000.0  # a regression: the accept got slow
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    shutil.copy(REFERENCE / "metadata.json", tmp_path)
    with pytest.raises(CellExecutionError) as failed:
        execute(NOTEBOOKS[0], {"RESULTS": str(tmp_path), "FIGURES": ""}, timeout=60)
    assert failed.value.ename == "AssertionError"
    assert "a typical background accept is over budget" in failed.value.evalue


def test_parameters_are_injected_after_the_parameters_cell() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell('RESULTS = "a"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(RESULTS)"),
    ]
    inject_parameters(notebook, {"RESULTS": "results/local/x", "FIGURES": ""})
    injected = notebook.cells[2]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert injected.source == "RESULTS = 'results/local/x'\nFIGURES = ''"


def test_a_notebook_without_a_parameters_cell_is_refused() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(ValueError, match="one cell tagged 'parameters'"):
        inject_parameters(notebook, {"RESULTS": "x"})


def test_the_runner_refuses_a_folder_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "has no summary.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
