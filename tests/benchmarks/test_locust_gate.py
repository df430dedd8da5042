"""Locust in a subprocess (never imported here: it monkey-patches gevent) against live uvicorns.

The p95 gate passes on a fast endpoint and exits non-zero on a slow one; the
open model keeps its schedule when the server stalls; workers ship their rows.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks._samples import Sample, read_samples
from benchmarks._stats import percentile
from reference_app.testing import LiveServer, live_server

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocustRun:
    returncode: int
    output: str
    report: dict[str, Any]
    samples: list[Sample]


def run_locust(host: str, tmp_path: Path, *args: str, name: str = "run") -> LocustRun:
    csv, report = tmp_path / f"{name}_requests.csv", tmp_path / f"{name}_locust.json"
    command = [sys.executable, "-m", "locust", "--headless", "--host", host, "--only-summary"]
    command += ["--requests-csv", str(csv), "--run-json", str(report), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    output = done.stdout + done.stderr
    assert report.exists(), output[-3000:]
    return LocustRun(
        done.returncode, output, json.loads(report.read_text()), list(read_samples(csv))
    )


@pytest.fixture(scope="module")
def reference_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The reference app's real /health: fast."""
    tmp = tmp_path_factory.mktemp("reference")
    env = {"APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/app.db", "APP_LOG_LEVEL": "WARNING"}
    with live_server(env=env, args=["--no-access-log"], log_path=tmp / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("slow") / "server.log"
    with live_server(
        "tests.benchmarks.apps:slow", args=["--no-access-log"], log_path=log, cwd=ROOT
    ) as server:
        yield server


def health(*args: str) -> tuple[str, ...]:
    return ("-f", "benchmarks/health.py", *args)


def test_the_gate_passes_and_exits_zero_on_a_fast_endpoint(
    reference_server: LiveServer, tmp_path: Path
) -> None:
    run = run_locust(reference_server.url, tmp_path, *health("-u", "2", "-t", "3s", "HealthUser"))
    assert run.returncode == 0, run.output[-3000:]
    (verdict,) = run.report["gate"]
    assert verdict["endpoint"] == "GET /health"
    assert verdict["passed"] is True
    assert verdict["p95_ms"] < 200
    assert "p95 gate: PASS GET /health" in run.output
    # The verdict came from the raw rows written beside it, every request of them.
    assert run.report["requests"] == len(run.samples) == verdict["count"] > 0
    assert verdict["p95_ms"] == pytest.approx(percentile([s.ms for s in run.samples], 95), abs=1e-3)
    assert {(s.model, s.user, s.gated, s.ok) for s in run.samples} == {
        ("closed", "HealthUser", True, True)
    }
    assert run.report["locust_cpu_share"] is not None


def test_the_gate_exits_non_zero_on_a_deliberately_slow_endpoint(
    slow_server: LiveServer, tmp_path: Path
) -> None:
    run = run_locust(slow_server.url, tmp_path, *health("-u", "2", "-t", "3s", "HealthUser"))
    assert run.returncode == 1, run.output[-3000:]
    (verdict,) = run.report["gate"]
    assert verdict["passed"] is False
    assert verdict["p95_ms"] >= 200
    assert verdict["failures"] == 0  # slow, not broken: the p95 alone fails it
    assert "p95 gate: FAIL GET /health" in run.output


def test_the_budget_is_a_setting(slow_server: LiveServer, tmp_path: Path) -> None:
    args = health("-u", "2", "-t", "2s", "--p95-budget-ms", "1000", "HealthUser")
    run = run_locust(slow_server.url, tmp_path, *args)
    assert run.returncode == 0, run.output[-3000:]
    assert run.report["gate"][0]["budget_ms"] == 1000


def test_the_open_model_keeps_its_schedule_when_the_server_stalls(tmp_path: Path) -> None:
    """Against a server that handles one request at a time, closed-loop users slow down with
    it and report the service time; the open model sends every request on time and reports
    the wait as well (coordinated omission, avoided)."""
    log = tmp_path / "server.log"
    with live_server(
        "tests.benchmarks.apps:frozen", args=["--no-access-log"], log_path=log, cwd=ROOT
    ) as server:
        open_args = ["--arrival-rate", "20", "--arrivals-for", "2", "--open-grace", "10"]
        open_args += ["--arrivals", "uniform"]
        opened = run_locust(
            server.url,
            tmp_path,
            *health("-u", "1", "-t", "30s", *open_args, "HealthOpenUser"),
            name="open",
        )
        closed = run_locust(
            server.url, tmp_path, *health("-u", "1", "-t", "2s", "HealthUser"), name="closed"
        )
    assert len(opened.samples) == 40  # 20/s for 2 s, whatever the server did
    assert all(s.model == "open" and s.ok for s in opened.samples)
    assert len(closed.samples) < 40  # one user, waiting 100 ms per answer
    open_p95 = percentile([s.ms for s in opened.samples], 95)
    closed_p95 = percentile([s.ms for s in closed.samples], 95)
    assert open_p95 > 2 * closed_p95
    # Each open-model request is dated by its intended start, 50 ms apart.
    starts = [s.start_s for s in opened.samples]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    assert set(gaps) == {0.05}


def test_with_processes_the_workers_send_every_row_to_the_master(
    reference_server: LiveServer, tmp_path: Path
) -> None:
    args = health("--processes", "2", "-u", "2", "-t", "3s", "HealthUser")
    run = run_locust(reference_server.url, tmp_path, *args)
    assert run.returncode == 0, run.output[-3000:]
    assert run.report["requests"] == len(run.samples) == run.report["gate"][0]["count"] > 0
    assert len(run.report["locust_cpu_seconds"]) == 3  # the master and two workers
    open_model = ("--arrival-rate", "20", "--arrivals-for", "2", "--arrivals", "uniform")
    args = health(
        "--processes", "2", "-u", "2", "-r", "100", "-t", "8s", *open_model, "HealthOpenUser"
    )
    run = run_locust(reference_server.url, tmp_path, *args, name="open")
    assert run.returncode == 0, run.output[-3000:]
    assert len(run.samples) == 80  # each worker's user: 20/s for 2 s
    assert len({s.start_s for s in run.samples}) == 80  # two schedules, not one sent twice


def test_the_directory_loads_every_scenario_and_no_shape() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "benchmarks", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed = {line.strip() for line in done.stdout.splitlines()}
    expected = {
        "HealthUser", "HealthOpenUser", "BackgroundUser", "BackgroundOpenUser", "InlineUser",
        "InlineOpenUser", "DurableAcceptUser", "NonDurableAcceptUser", "WebhookFanoutUser",
        "LabAsyncIoUser", "LabSyncIoUser", "LabBlockingInAsyncUser", "LabBlockingInAsyncClosedUser",
        "LabCpuInAsyncUser", "LabCpuOffloadedUser", "LabBoundedUser",
    }  # fmt: skip
    assert expected <= listed
    assert not any("Shape" in line or line.startswith("_") for line in listed)
