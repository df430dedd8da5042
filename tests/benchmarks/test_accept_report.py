"""benchmarks._accept_report: the accept group's targets on synthetic runs, and its table."""

from __future__ import annotations

from typing import Any

from benchmarks._accept_report import accept_table, evaluate_accept_targets, format_accept_targets
from benchmarks._finish import accounted
from benchmarks._work import TaskTimes


def run(run_id: str, *, per_s: float = 0.0, p95: float = 1.0, **extra: Any) -> dict[str, Any]:
    model = "closed" if run_id.endswith("closed") else "open"
    return {"id": run_id, "app": run_id.split("/")[0], "model": model, "connections": 50,
            "rate": 300.0, "sent_per_s": per_s, "accepted_per_s": per_s, "p50_ms": p95 / 2,
            "p95_ms": p95, "p99_ms": p95 * 2, "statuses": {"202": 10}, "errors": {},
            "server_cpu_share": 0.9, "error": None, **extra}  # fmt: skip


def tasks(accepted: int, unfinished: int = 0) -> dict[str, Any]:
    done = [TaskTimes(0.0, 0.0, 1.0, "succeeded")] * (accepted - unfinished)
    left = [TaskTimes(0.0, None, None, "scheduled")] * unfinished
    return {"tasks": accounted(done + left, accepted), "drain_s": 0.5}


def group(**changes: Any) -> list[dict[str, Any]]:
    """A healthy run of the group: every target met."""
    runs = [
        run("plain/accept-closed", per_s=2000.0),
        run("plain/accept-fixed", per_s=300.0, p95=1.0),
        run("floor/accept-closed", per_s=1250.0),  # with the override's cost
        run("floor/accept-fixed", per_s=300.0, p95=2.2),
        run("floor-state/accept-closed", per_s=1500.0),  # 0.75 of plain: the targets' floor
        run("floor-state/accept-fixed", per_s=300.0, p95=2.0),
        run("sqlite/accept-closed", per_s=1000.0, **tasks(8000)),  # 0.67 of the floor
        run("sqlite/accept-fixed", per_s=300.0, p95=2.8, commit_alone_p95_ms=1.2,
            **tasks(2400)),  # 1.4x the floor; the commit alone 0.6x
        run("sqlite/scrape-none", per_s=300.0, p95=3.0, health_p99_ms=2.0, **tasks(2400)),
        run("sqlite/scrape-1hz", per_s=300.0, p95=3.3, health_p99_ms=2.5, scrapes=8,
            **tasks(2400)),
        run("sqlite/finished-work", per_s=300.0, offered_per_s=300.0, io_ms=300,
            finished_during_per_s=285.0, finished_after_per_s=290.0, **tasks(6000)),
        run("sqlite/overload", per_s=900.0, unloaded_max_per_s=700.0, offered_per_s=2100.0,
            finished_during_per_s=600.0, finished_after_per_s=690.0, **tasks(21000)),
    ]  # fmt: skip
    for r in runs:
        r.update(changes.get(r["id"], {}))
    return runs


def by_name(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in evaluate_accept_targets(runs)}


def test_a_healthy_group_meets_every_target_with_its_two_numbers_and_ratio() -> None:
    targets = by_name(group())
    assert list(targets) == [
        "floor_vs_plain",
        "sqlite_accept_vs_floor",
        "sqlite_p95_vs_floor",
        "sqlite_commit_alone_vs_floor",
        "sqlite_finished_vs_offered",
        "sqlite_overload_vs_unloaded",
        "sqlite_every_202_finished",
        "sqlite_scrape_health_p99",
        "sqlite_scrape_p99",
        "override_cost",
    ]
    override = targets.pop("override_cost")
    assert (override["ratio"], override["met"]) == (1.2, None)  # a measurement, not a target
    for name, ratio in (("sqlite_scrape_health_p99", 1.25), ("sqlite_scrape_p99", 1.1)):
        scrape = targets.pop(name)
        assert (scrape["ratio"], scrape["met"], scrape["target"]) == (
            ratio,
            None,
            "none, a measurement",
        )
    commit = targets.pop("sqlite_commit_alone_vs_floor")
    assert (commit["measured"], commit["baseline"], commit["ratio"]) == (1.2, 2.0, 0.6)
    assert (commit["met"], commit["target"]) == (None, "none, a measurement")
    assert all(t["met"] is True for t in targets.values())
    accept = targets["sqlite_accept_vs_floor"]
    assert (accept["measured"], accept["baseline"], accept["ratio"]) == (1000.0, 1500.0, 0.67)
    assert accept["target"] == ">= 0.6"
    assert targets["sqlite_p95_vs_floor"]["ratio"] == 1.4
    assert targets["sqlite_p95_vs_floor"]["target"] == "<= 1.5"
    assert targets["floor_vs_plain"]["ratio"] == 0.75
    assert targets["sqlite_finished_vs_offered"]["ratio"] == 0.95
    assert targets["sqlite_overload_vs_unloaded"]["ratio"] == 0.86


def test_each_target_says_not_met_when_its_ratio_misses() -> None:
    targets = by_name(
        group(**{
            "floor-state/accept-closed": {"accepted_per_s": 1000.0},  # 0.5 of plain
            "sqlite/accept-fixed": {"p95_ms": 20.0, **tasks(2400, unfinished=3)},  # 10x
            "sqlite/finished-work": {"finished_during_per_s": 107.0},  # 0.36 of 300
            "sqlite/overload": {"finished_during_per_s": 350.0},  # 0.5 of 700
        })
    )  # fmt: skip
    assert targets["floor_vs_plain"]["met"] is False
    assert targets["sqlite_accept_vs_floor"]["met"] is True  # 1000 / 1000 now
    assert targets["sqlite_p95_vs_floor"]["met"] is False
    assert targets["sqlite_finished_vs_offered"]["met"] is False
    assert targets["sqlite_overload_vs_unloaded"]["met"] is False
    assert targets["sqlite_every_202_finished"]["met"] is False


def test_a_missing_or_broken_run_is_no_data_not_a_miss() -> None:
    runs = [r for r in group() if r["id"] != "plain/accept-closed"]
    runs = [{"id": r["id"], "error": "boom"} if r["id"] == "sqlite/overload" else r for r in runs]
    targets = by_name(runs)
    assert targets["floor_vs_plain"]["met"] is None
    assert targets["floor_vs_plain"]["measured"] == 1500.0
    assert targets["floor_vs_plain"]["ratio"] is None
    assert targets["sqlite_overload_vs_unloaded"]["met"] is None
    assert targets["sqlite_accept_vs_floor"]["met"] is True
    assert evaluate_accept_targets([]) == []


def test_targets_are_per_backend() -> None:
    runs = group()
    runs += [{**r, "id": r["id"].replace("sqlite/", "postgres/")}
             for r in runs if r["id"].startswith("sqlite/")]  # fmt: skip
    names = list(by_name(runs))
    assert names[0] == "floor_vs_plain"  # once: it involves no database
    assert "postgres_p95_vs_floor" in names
    assert len(names) == 1 + 2 * 8 + 1  # and the override measurement, once


def test_each_target_prints_its_two_numbers_ratio_target_and_verdict() -> None:
    lines = format_accept_targets(evaluate_accept_targets(group()))
    assert lines[1] == (
        "[met]     sqlite: durable accepted/s / floor's, 50 connections back to back:"
        " 1000 / 1500 = 0.67 (target >= 0.6)"
    )
    assert lines[2].startswith(
        "[met]     sqlite: durable 202 p95 / floor's p95 (ms), both at 300/s"
    )
    assert lines[2].endswith(": 2.8 / 2 = 1.4 (target <= 1.5)")
    assert lines[3].startswith("[info]    sqlite: one INSERT + COMMIT alone, p95")
    assert lines[3].endswith(": 1.2 / 2 = 0.6 (target none, a measurement)")
    missing = format_accept_targets(evaluate_accept_targets(group()[1:]))
    assert missing[0].startswith("[no data] floor accepted/s")
    assert missing[0].endswith(": 1500 / - = - (target >= 0.7)")


def test_the_table_has_a_row_per_run_and_shows_a_broken_one() -> None:
    runs = group()
    runs[-1] = {"id": "sqlite/overload", "error": "RuntimeError: the backlog drained too fast"}
    rows = accept_table(runs)[2:]
    assert [row.split()[0] for row in rows] == [r["id"] for r in runs]
    assert "8000/8000" in rows[6]
    assert rows[10].rstrip().endswith("285, 290")
    assert "ERROR RuntimeError" in rows[11]


def test_the_scrape_pair_prints_both_p99s_and_their_ratio_as_information() -> None:
    lines = format_accept_targets(evaluate_accept_targets(group()))
    (health,) = [line for line in lines if "/health p99 with a 1 Hz GET /metrics" in line]
    assert health.startswith("[info]    sqlite: /health p99 with a 1 Hz GET /metrics scrape")
    assert "under 300/s of 202s" in health
    assert health.endswith(": 2.5 / 2 = 1.25 (target none, a measurement)")
    no_pair = [r for r in group() if "/scrape-" not in r["id"]]
    assert by_name(no_pair)["sqlite_scrape_p99"]["ratio"] is None
