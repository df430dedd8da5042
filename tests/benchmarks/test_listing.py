"""``make bench-listing``: the seeded month looks as documented, and a small run measures
every case against a real server and writes its report."""

from __future__ import annotations

import json
from collections import Counter
from itertools import groupby
from pathlib import Path

import pytest

from benchmarks._listing import ListingSettings, main, run
from benchmarks._listing_report import HEADER, line
from benchmarks._listing_seed import ORG, TIES, created_between, task_rows
from reference_app.core.clock import utcnow
from reference_app.webhooks.enqueue import WEBHOOK_KIND


def test_the_seeded_rows_are_a_month_of_api_tasks_with_ties_and_deliveries() -> None:
    rows = list(task_rows(4000))
    tasks = [r for r in rows if r["parent_id"] is None]
    deliveries = [r for r in rows if r["parent_id"] is not None]

    assert len(tasks) == 4000
    assert {r["kind"] for r in deliveries} == {WEBHOOK_KIND}
    hooked = {r["id"] for r in tasks if r["webhook_url"] and r["status"] != "scheduled"}
    assert {r["parent_id"] for r in deliveries} == hooked
    assert [len(list(g)) for _, g in groupby(tasks, key=lambda r: r["created_at"])] == [TIES] * 1000
    assert (tasks[0]["created_at"], tasks[-1]["created_at"]) == created_between(4000)
    statuses = Counter(r["status"] for r in tasks)
    assert set(statuses) == {"succeeded", "failed", "scheduled"}
    assert 0.8 < sum(r["org_id"] == ORG for r in tasks) / 4000 < 0.95
    # Nothing for the app's sweeper: nothing due, nothing running.
    assert all(r["run_after"] > utcnow() for r in tasks if r["status"] == "scheduled")


def test_the_rows_are_the_same_for_the_same_seed() -> None:
    def shape(seed: int) -> list[tuple[str, str, str]]:
        return [(r["org_id"], r["kind"], r["status"]) for r in task_rows(500, seed=seed)]

    assert shape(1) == shape(1)
    assert shape(1) != shape(2)


def test_the_settings_come_from_the_environment() -> None:
    settings = ListingSettings.from_env(
        {"BENCH_LISTING_ROWS": "1000,5000", "BENCH_LISTING_REQUESTS": "7"}
    )

    assert settings.rows == (1000, 5000)
    assert settings.requests == 7
    assert settings.backends == ("sqlite",)
    assert ListingSettings.from_env({}).rows == (100_000, 1_000_000)
    with_postgres = ListingSettings.from_env({"BENCH_DATABASE_URL": "postgresql+asyncpg://x/y"})
    assert with_postgres.backends == ("sqlite", "postgres")
    with pytest.raises(ValueError, match="must be positive"):
        ListingSettings.from_env({"BENCH_LISTING_ROWS": "0"})


@pytest.mark.live
@pytest.mark.timeout(120)
async def test_a_small_run_measures_every_case_on_a_real_server(tmp_path: Path) -> None:
    results = await run(ListingSettings(rows=(800,), requests=3), tmp_path)

    assert len(results) == 8
    by_case = {r.case: r for r in results}
    assert by_case["first page"].items == 50
    assert by_case["first page, limit 200"].items == 200
    assert by_case["deep page (cursor)"].items == 50
    for result in results:
        assert result.requests == 3
        assert 0 < result.p50_ms <= result.p95_ms <= result.max_ms
        assert (result.index or "").startswith("ix_tasks_org_"), result
        assert not result.sorts
        assert result.full_scans == []
        assert line(result).startswith("sqlite")
    assert len(line(results[0])) <= len(HEADER) + 40


@pytest.mark.live
@pytest.mark.timeout(120)
def test_main_writes_the_report_under_results_local_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_LISTING_ROWS", "300")
    monkeypatch.setenv("BENCH_LISTING_REQUESTS", "2")
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path))
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)

    assert main([]) == 0

    (folder,) = (tmp_path / "listing").iterdir()
    report = json.loads((folder / "report.json").read_text())
    assert {r["case"] for r in report["results"]} >= {"first page", "deep page (cursor)"}
    assert report["meta"]["rows"] == [300]
    assert "## Plans" in (folder / "report.md").read_text()
