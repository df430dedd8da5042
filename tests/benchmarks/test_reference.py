"""benchmarks.reference: the committed results folder, reduced from real runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks._plots import BenchRun
from benchmarks.reference import main, make_reference, sample_lines


def scenario(target: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"{target}/{key}", "target": target, "key": key, "error": None,
            "model": "open", "passed": True, "latency": {"p95_ms": 5.0}, **extra}  # fmt: skip


def make_run(path: Path, scenarios: list[dict[str, Any]], rows: int = 10) -> Path:
    path.mkdir(parents=True)
    summary = {"settings": {"budget_ms": 200.0}, "scenarios": scenarios}
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "metadata.json").write_text(json.dumps({"date": path.name, "cpu_count": 2}))
    for s in scenarios:
        prefix = s["id"].replace("/", "-")
        lines = ["start_s,ms"] + [f"{n},{n / 10}" for n in range(rows)]
        (path / f"{prefix}_requests.csv").write_text("\n".join(lines) + "\n")
        (path / f"{prefix}_probe.csv").write_text("start_s,ms\n1,2\n")
        (path / f"{prefix}_stats.csv").write_text("Locust's own\n")
    (path / "percentiles.png").write_bytes(b"\x89PNG")
    return path


def test_sampling_keeps_the_same_rows_in_their_order() -> None:
    lines = [str(n) for n in range(1000)]
    kept = sample_lines(lines, 100, seed="a")
    assert len(kept) == 100
    assert kept == sorted(kept, key=int)
    assert kept == sample_lines(lines, 100, seed="a")
    assert kept != sample_lines(lines, 100, seed="b")
    assert sample_lines(lines[:5], 100, seed="a") == lines[:5]


def test_one_run_is_copied_without_logs_or_pngs_and_samples_long_files(tmp_path: Path) -> None:
    run = make_run(tmp_path / "20261128T100000Z", [scenario("sqlite", "health-open")], rows=50)
    out = tmp_path / "reference"
    record = make_reference([run], out, max_requests=20)
    assert sorted(p.name for p in out.iterdir()) == [
        "metadata.json",
        "sqlite-health-open_probe.csv",
        "sqlite-health-open_requests.csv",
        "summary.json",
    ]
    requests = (out / "sqlite-health-open_requests.csv").read_text().splitlines()
    assert requests[0] == "start_s,ms"
    assert len(requests) == 21
    assert record["sampled"] == {"sqlite-health-open_requests.csv": {"rows": 50, "kept": 20}}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["date"] == "20261128T100000Z"  # the run's own metadata, kept
    assert meta["reference"]["runs"][0]["scenarios"] == ["sqlite/health-open"]
    assert "Sampled to 20 random rows each" in meta["reference"]["note"]
    assert BenchRun.load(out).ids() == ["sqlite/health-open"]


def test_a_later_run_replaces_and_adds_scenarios(tmp_path: Path) -> None:
    first = make_run(tmp_path / "a", [scenario("sqlite", "x"), scenario("lab", "y")])
    second = make_run(
        tmp_path / "b", [scenario("lab", "y", title="new"), scenario("postgres", "z")]
    )
    out = tmp_path / "reference"
    record = make_reference([first, second], out)
    summary = json.loads((out / "summary.json").read_text())
    assert [s["id"] for s in summary["scenarios"]] == ["sqlite/x", "lab/y", "postgres/z"]
    assert summary["scenarios"][1]["title"] == "new"
    assert [r["scenarios"] for r in record["runs"]] == [["sqlite/x"], ["lab/y", "postgres/z"]]
    assert record["sampled"] == {}


def test_the_accept_group_merges_by_id_and_the_comparison_is_left_behind(tmp_path: Path) -> None:
    first = make_run(tmp_path / "a", [scenario("sqlite", "x")])
    second = make_run(tmp_path / "b", [scenario("postgres", "z")])
    for run, accept in ((first, ["floor/accept-closed", "sqlite/overload"]),
                        (second, ["floor/accept-closed", "postgres/overload"])):  # fmt: skip
        summary = json.loads((run / "summary.json").read_text())
        summary["accept"] = [{"id": i, "error": None, "from": run.name} for i in accept]
        summary["comparison"] = {"rows": []}
        (run / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "reference"
    make_reference([first, second], out)
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["id"], r["from"]) for r in summary["accept"]] == [
        ("floor/accept-closed", "b"),
        ("sqlite/overload", "a"),
        ("postgres/overload", "b"),
    ]
    assert "comparison" not in summary
    assert [t["name"] for t in summary["accept_targets"]][:2] == [
        "floor_vs_plain",
        "sqlite_accept_vs_floor",
    ]


def test_a_second_reduction_removes_the_files_of_the_first(tmp_path: Path) -> None:
    out = tmp_path / "reference"
    make_reference([make_run(tmp_path / "a", [scenario("sqlite", "x")])], out)
    (out / "README.md").write_text("mine")
    make_reference([make_run(tmp_path / "b", [scenario("lab", "y")])], out)
    assert not (out / "sqlite-x_requests.csv").exists()
    assert (out / "lab-y_requests.csv").exists()
    assert (out / "README.md").read_text() == "mine"


def test_the_command_refuses_a_folder_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no summary.json" in capsys.readouterr().err


def test_the_command_reports_the_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "a", [scenario("sqlite", "x")])
    assert main([str(run), "--out", str(tmp_path / "out"), "--max-requests", "5"]) == 0
    assert "MB; sampled 1 files" in capsys.readouterr().out
