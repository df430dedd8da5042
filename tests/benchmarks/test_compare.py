"""benchmarks._compare: this run against the committed reference run, on synthetic summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks._compare import compare, format_comparison, load_reference, machine_kind

MACHINE = {"cpu_count": 2, "platform": "Linux-6.18-x86_64-with-glibc2.36", "loadavg_start": [1]}


def scenario(run_id: str, p95: float, rps: float, **extra: Any) -> dict[str, Any]:
    return {"id": run_id, "latency": {"p95_ms": p95, "rps": rps}, "error": None, **extra}


def summary(scenarios: list[dict[str, Any]], accept: list[dict[str, Any]] | None = None,
            machine: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {"machine": machine or MACHINE, "scenarios": scenarios, "accept": accept or []}


def test_a_run_like_the_reference_is_not_flagged() -> None:
    old = summary([scenario("sqlite/health-closed", 7.0, 50.0)])
    new = summary([scenario("sqlite/health-closed", 10.0, 40.0)])  # 1.43x, 0.8x: inside
    result = compare(new, old)
    assert result["same_machine_kind"] is True
    [row] = result["rows"]
    assert [(m["metric"], m["ratio"]) for m in row["metrics"]] == [("p95", 1.43), ("req/s", 0.8)]
    assert row["flagged"] is False
    assert result["flagged"] == []


def test_a_p95_over_the_tolerance_or_a_rate_under_it_is_flagged() -> None:
    old = summary(
        [scenario("sqlite/a", 10.0, 100.0), scenario("sqlite/b", 10.0, 100.0)],
        accept=[{"id": "sqlite/overload", "error": None, "p95_ms": 900.0, "accepted_per_s": 800.0,
                 "finished_during_per_s": 400.0, "unloaded_max_per_s": 800.0}],
    )  # fmt: skip
    new = summary(
        [scenario("sqlite/a", 16.0, 100.0), scenario("sqlite/b", 9.0, 60.0)],
        accept=[{"id": "sqlite/overload", "error": None, "p95_ms": 900.0, "accepted_per_s": 800.0,
                 "finished_during_per_s": 200.0, "unloaded_max_per_s": 790.0}],
    )  # fmt: skip
    result = compare(new, old)
    assert result["flagged"] == ["sqlite/a", "sqlite/b", "sqlite/overload"]
    overload = result["rows"][2]["metrics"]
    assert [m["metric"] for m in overload] == ["p95", "202/s", "finished/s", "unloaded max/s"]
    assert [m["worse"] for m in overload] == [False, False, True, False]
    text = format_comparison(result)
    assert any(line.startswith("! sqlite/a") and "p95 16/10 1.6x !" in line for line in text)
    assert text[-1] == "3 of 3 compared past the tolerance: sqlite/a, sqlite/b, sqlite/overload"


def test_only_scenarios_in_both_and_without_errors_are_compared() -> None:
    old = summary([scenario("sqlite/a", 10.0, 100.0), scenario("sqlite/b", 1.0, 1.0)])
    new = summary([scenario("sqlite/b", 50.0, 1.0, error="locust exited with 2"),
                   scenario("sqlite/c", 50.0, 1.0), scenario("sqlite/a", 10.0, 100.0)])  # fmt: skip
    new["scenarios"].append({"id": "sqlite/d", "latency": None, "error": None})
    old["scenarios"].append(scenario("sqlite/d", 1.0, 1.0))
    assert [r["id"] for r in compare(new, old)["rows"]] == ["sqlite/a"]


def test_another_machine_kind_is_compared_but_never_flagged() -> None:
    old = summary([scenario("sqlite/a", 10.0, 100.0)], machine={**MACHINE, "cpu_count": 8})
    new = summary([scenario("sqlite/a", 40.0, 10.0)])
    result = compare(new, old)
    assert result["same_machine_kind"] is False
    assert result["flagged"] == []
    text = format_comparison(result)
    assert "a different machine kind: nothing is flagged" in text[1]
    assert "8 CPUs, x86_64" in text[0]


def test_no_reference_is_said_so() -> None:
    result = compare(summary([]), None)
    assert result["rows"] == []
    assert "no results/reference/summary.json" in format_comparison(result)[0]


def test_machine_kind_is_cpus_and_architecture() -> None:
    assert machine_kind(MACHINE) == "2 CPUs, x86_64"
    assert machine_kind({"cpu_count": 4, "arch": "aarch64"}) == "4 CPUs, aarch64"
    assert machine_kind({"cpu_count": 4}) == "4 CPUs"


def test_the_reference_folder_is_read_with_its_date_and_machine(tmp_path: Path) -> None:
    assert load_reference(tmp_path) is None
    (tmp_path / "summary.json").write_text(json.dumps({"scenarios": []}))
    (tmp_path / "metadata.json").write_text(
        json.dumps({"date": "2026-11-28", "cpu_count": 2, "platform": "x86_64"})
    )
    ref = load_reference(tmp_path)
    assert ref is not None
    assert (ref["date"], ref["machine"]) == ("2026-11-28", {"cpu_count": 2, "platform": "x86_64"})


def test_the_committed_reference_compares_with_itself_unflagged() -> None:
    ref = load_reference(Path(__file__).resolve().parents[2] / "results" / "reference")
    assert ref is not None
    result = compare(ref, ref)
    assert result["rows"]
    assert all(m["ratio"] == 1 for row in result["rows"] for m in row["metrics"])
    assert result["flagged"] == []


def test_a_quick_run_against_a_full_reference_says_its_ratios_are_rougher() -> None:
    old = summary([scenario("sqlite/a", 10.0, 100.0)])
    new = summary([scenario("sqlite/a", 10.0, 100.0)])
    old["settings"], new["settings"] = (
        {"quick": False, "seconds": 12.0},
        {"quick": True, "seconds": 4.0},
    )
    result = compare(new, old)
    assert result["settings_differ"] == ["quick", "seconds"]
    assert "settings differ from the reference's: quick, seconds" in format_comparison(result)[2]
