"""Smoke test of scripts/bench_accept.py: a one-second run per database, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import IN_CI, TEST_POSTGRES_URL, run_async

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_accept.py"
BACKGROUND_RUNS = ("io_bound", "cpu_bound", "backlog")
RUN_TIMEOUT_SECONDS = 110

pytestmark = pytest.mark.live


async def _ping_postgres() -> None:
    dsn = make_url(TEST_POSTGRES_URL).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=5)
    await connection.close()


def _require_postgres() -> None:
    try:
        run_async(_ping_postgres)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL at {TEST_POSTGRES_URL} is unreachable ({exc!r})"
        if IN_CI:
            pytest.fail(f"{message}; CI needs it: .ci/run starts it", pytrace=False)
        pytest.skip(f"{message}; start it or set TEST_POSTGRES_URL")


def _run_bench(database: str, out: Path) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--database", database, "--seconds", "1"]
    command += ["--connections", "4", "--json", str(out)]
    if database == "postgres":
        command += ["--only", "carb"]  # every run but the floor, which commits nothing
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 10)
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_short_run_reports_accepted_tasks_and_only_2xx_in_the_accept_scenario(
    database: str, tmp_path: Path
) -> None:
    if database == "postgres":
        _require_postgres()

    report = _run_bench(database, tmp_path / "bench.json")

    assert report["meta"]["access_log"] is False
    assert list(report["databases"]) == [database]
    scenarios = report["databases"][database]["scenarios"]
    assert set(scenarios) == {"health_baseline", "accept", "accept_rate", *BACKGROUND_RUNS}

    assert scenarios["health_baseline"]["health"]["per_second"] > 0
    assert scenarios["health_baseline"]["health"]["statuses"].keys() == {"200"}

    accept = scenarios["accept"]
    assert accept["accepted"] > 0
    assert accept["accepted_per_s"] > 0
    assert all(200 <= int(status) < 300 for status in accept["post"]["statuses"])
    assert accept["post"]["errors"] == {}
    assert accept["non_202_statuses"] == {}
    assert accept["probe"]["requests"] > 0
    assert accept["post_p95_over_health_p95"] > 0
    assert accept["post_p95_over_baseline_health_p95"] > 0
    # Every 202 has its task committed in the database.
    assert accept["tasks"]["accepted_in_db"] >= accept["accepted"]

    for key in ("accept_rate", *BACKGROUND_RUNS):
        run = scenarios[key]
        assert run["accepted"] > 0, key
        assert run["tasks"]["accepted_in_db"] >= run["accepted"], key
        assert run["probe"]["p99_ms"] is not None, key
        assert 0 <= run["tasks"]["finished_at_stop"] <= run["tasks"]["accepted_in_db"], key
        assert run["post_p95_over_health_p95"] > 0, key
        assert run["server_cpu_us_per_response"] > 0, key

    if database == "postgres":
        assert "floor" not in report  # --only carb: the floor commits nothing, to no database
        return
    # The floor served the same POST with 202s, from the reference app with a no-op store,
    # and committed nothing.
    floor = report["floor"]
    assert floor["accepted"] > 0
    assert floor["post"]["statuses"].keys() == {"202"}
    assert any("_accept_floor:app" in part for part in floor["server_command"])
    assert floor["tasks_in_db"] == 0
    assert floor["server_cpu_us_per_response"] > 0


def test_only_refuses_runs_it_does_not_know() -> None:
    command = [sys.executable, str(SCRIPT), "--only", "ax"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--only takes letters from 'fcarb'" in done.stderr


def test_background_refuses_runs_it_does_not_know() -> None:
    command = [sys.executable, str(SCRIPT), "--background", "io_bound,nope"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--background takes keys from" in done.stderr


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 10)
def test_background_selects_the_b_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(SCRIPT), "--database", "sqlite", "--seconds", "1"]
    command += ["--only", "b", "--background", "io_bound", "--rate", "20", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-4000:]}"
    scenarios = json.loads(out.read_text())["databases"]["sqlite"]["scenarios"]
    assert set(scenarios) == {"io_bound"}
