"""benchmarks._report: the targets, the ladder's capacity, the verdict and the printed table."""

from typing import Any

from benchmarks._report import capacity, evaluate_targets, format_report, overall_passed
from benchmarks._work import summarize_counts

BUDGET = 200.0


def result(key: str, p95: float, *, target: str = "sqlite", **extra: Any) -> dict[str, Any]:
    model = "closed" if key.endswith("closed") else "open"
    return {
        "id": f"{target}/{key}",
        "target": target,
        "key": key,
        "title": key,
        "model": extra.pop("model", model),
        "load": "50/s",
        "rate": 50.0,
        "gated": extra.pop("gated", False),
        "latency": {"rps": 50.0, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.5,
                    "failures": extra.pop("failures", 0)},
        "probe": {"p95_ms": 3.0, "p99_ms": extra.pop("probe_p99", 5.0)},
        "locust_cpu_share": 0.05,
        "work": extra.pop("work", None),
        "passed": extra.pop("passed", None),
        "error": extra.pop("error", None),
        **extra,
    }  # fmt: skip


def step(offered: float, p95: float, *, failures: int = 0, rps: float | None = None) -> dict:
    return {
        "offered": offered,
        "rps": offered if rps is None else rps,
        "p50_ms": p95 / 2,
        "p95_ms": p95,
        "p99_ms": p95,
        "failures": failures,
        "probe_p99_ms": 4.0,
        "tasks_done_per_s": offered,
    }


def test_capacity_is_the_last_step_before_the_first_that_breaks_the_budget() -> None:
    steps = [step(25, 5), step(50, 8), step(100, 150), step(200, 250), step(300, 90)]
    assert capacity(steps, BUDGET) == 100  # 300/s under budget again does not count
    assert capacity([step(25, 5), step(50, 8, failures=1)], BUDGET) == 25
    assert capacity([step(25, 5), step(50, 8, rps=44)], BUDGET) == 25  # could not send it
    assert capacity([step(25, 200)], BUDGET) is None


def drained(drain_s: float | None = 0.4) -> dict[str, Any]:
    unfinished = 0 if drain_s is not None else 3
    return summarize_counts(
        scheduled=600,
        finished_at_stop=585,
        backlog_at_stop=15,
        drain_s=drain_s,
        unfinished=unfinished,
    )


def reference(**overrides: float) -> list[dict[str, Any]]:
    p95 = {
        "health-closed": 4.0,
        "health-open": 3.0,
        "background-closed": 7.0,
        "background-open": 6.0,
        "inline-closed": 350.0,
        "inline-open": 360.0,
        **overrides,
    }
    results = [result(k, v, work=drained() if "background" in k else None) for k, v in p95.items()]
    results.append(
        result("ladder", 100.0, model="ladder", ladder=[step(25, 5), step(50, 9), step(100, 400)])
    )
    return results


def test_every_target_is_met_by_a_healthy_run() -> None:
    targets = evaluate_targets(reference(), BUDGET)["sqlite"]
    # Gone (issue 13): background p95 / /health p95 compared unlike things.
    assert "background_p95_over_health_p95" not in targets
    inline = targets["inline_p95_over_background_p95"]
    assert (inline["open"], inline["closed"], inline["met"]) == (60.0, 50.0, True)
    fixed = targets["open_model_fixed_rate"]
    assert (fixed["ladder_capacity"], fixed["drain_s"], fixed["met"]) == (50, 0.4, True)
    assert targets["health_probe_p99_ms"]["met"] is True


def test_each_target_reports_what_misses_it() -> None:
    results = reference(**{"background-open": 15.0})
    results[0]["probe"]["p99_ms"] = 80.0  # health-closed: the loop stalled
    targets = evaluate_targets(results, BUDGET)["sqlite"]
    assert targets["inline_p95_over_background_p95"]["met"] is True  # 360 / 15 = 24x
    assert targets["health_probe_p99_ms"]["at_or_over_target"] == {"health-closed": 80.0}
    assert targets["health_probe_p99_ms"]["met"] is False
    undrained = reference()
    undrained[3]["work"] = drained(None)
    assert evaluate_targets(undrained, BUDGET)["sqlite"]["open_model_fixed_rate"]["met"] is False


def test_targets_are_per_backend_and_absent_without_a_reference_run() -> None:
    both = reference() + [{**r, "id": "postgres/" + r["key"], "target": "postgres"}
                          for r in reference()]  # fmt: skip
    assert set(evaluate_targets(both, BUDGET)) == {"sqlite", "postgres"}
    assert evaluate_targets([result("blocking-open", 3.0, target="lab")], BUDGET) == {}


def test_the_run_fails_when_a_gated_scenario_fails_or_a_scenario_breaks() -> None:
    assert overall_passed([result("a", 1.0, passed=True), result("b", 900.0, passed=None)])
    assert not overall_passed([result("a", 300.0, gated=True, passed=False)])
    assert not overall_passed([result("a", 1.0, error="locust exited with 2")])


def test_the_report_has_a_row_per_scenario_the_targets_and_the_verdict() -> None:
    results = reference()
    results[3].update(gated=True, passed=False)
    summary = {
        "settings": {"budget_ms": BUDGET, "probe_interval_ms": 50.0},
        "machine": {"cpu_count": 2, "loadavg_start": [1.0], "loadavg_end": [1.5]},
        "scenarios": results,
        "targets": evaluate_targets(results, BUDGET),
        "passed": overall_passed(results),
    }
    text = format_report(summary)
    rows = [line for line in text.splitlines() if line.startswith("sqlite   ")]
    assert [row.split()[1] for row in rows[:7]] == [r["key"] for r in results]
    assert "background-open" in rows[3]
    assert rows[3].rstrip().endswith("FAIL")
    assert "sqlite ladder, open model (ladder): carried up to 50/s" in text
    assert "[met]     sqlite: inline p95 / background p95: open 60x, closed 50x" in text
    assert text.splitlines()[-2].startswith("FAIL: 0 of 1 gated scenarios")
    assert "sqlite/background-open" in text.splitlines()[-2]
    work_rows = [line for line in text.splitlines() if line.startswith("sqlite   background")]
    assert work_rows[-1].split()[:6] == ["sqlite", "background-open", "600", "585", "15", "0.4"]


def test_the_report_prints_the_accept_group_its_targets_and_the_comparison() -> None:
    from benchmarks._accept_report import evaluate_accept_targets
    from benchmarks._compare import compare
    from tests.benchmarks.test_accept_report import group

    results = reference()
    accept = group()
    summary = {
        "settings": {"budget_ms": BUDGET, "probe_interval_ms": 50.0},
        "machine": {"cpu_count": 2, "loadavg_start": [1.0], "loadavg_end": [1.5]},
        "scenarios": results,
        "accept": accept,
        "targets": evaluate_targets(results, BUDGET),
        "accept_targets": evaluate_accept_targets(accept),
        "passed": True,
    }
    summary["comparison"] = compare(summary, summary)
    lines = format_report(summary).splitlines()
    targets = lines.index("Targets (informational: the exit code is the p95 gates')")
    assert lines.index("sqlite/overload" + lines[targets - 2][len("sqlite/overload") :]) < targets
    block = lines[targets + 1 : lines.index("", targets)]
    assert not any("/health p95" in line for line in block)  # the old #2 target is gone
    # floor/plain, durable/floor's rate and p95, and the commit alone beside the floor's p95
    assert sum("floor's" in line or "plain FastAPI" in line for line in block) == 4
    assert lines[lines.index("", targets) + 1].startswith("Compared with the reference run")
    assert lines[-2].startswith("PASS")
