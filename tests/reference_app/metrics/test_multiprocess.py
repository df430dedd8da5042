"""Under ``uvicorn --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``: whichever worker answers a
scrape, it adds up both workers' counters and slots; a clean stop takes its slots away."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from reference_app.testing import start_server
from reliability._served import APP, AUTH_A, ROOT, SERVED_SETTINGS, app_env, assert_up
from tests.reference_app.metrics._scrape import SCRAPE, TOKEN, families_of, sample
from tests.reliability._served import BACKENDS, database_for

pytestmark = pytest.mark.live

CAPACITY = 7
MAX_POSTS = 200
CLOSE = {"Connection": "close"}  # a new connection each: the kernel picks the worker anew


def accepted_by_pid(folder: Path) -> dict[str, float]:
    """Each worker's own count of accepted tasks, read from its file."""
    counts: dict[str, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = path.stem.split("_")[1]
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):
            for s in metric.samples:
                if s.name == "bgjobs_tasks_accepted_total":
                    counts[pid] = counts.get(pid, 0.0) + s.value
    return counts


def accepting(folder: Path) -> int:
    """How many workers have accepted a task."""
    return sum(1 for count in accepted_by_pid(folder).values() if count)


def scrape(url: str) -> dict[str, float]:
    response = httpx.get(f"{url}/metrics", headers={**SCRAPE, **CLOSE}, timeout=10)
    assert response.status_code == 200, response.text
    families = families_of(response.text)
    return {
        "accepted": sample(families, "bgjobs_tasks_accepted_total", kind="process_data"),
        "succeeded": sample(
            families, "bgjobs_attempts_total", kind="process_data", outcome="succeeded"
        ),
        "accept_count": sample(
            families, "bgjobs_accept_duration_seconds_count", route="/process-data"
        ),
        "capacity": sample(families, "bgjobs_worker_slots_capacity"),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_scrape_of_two_workers_adds_up_both(backend: str, tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    settings = {**SERVED_SETTINGS, "metrics_token": TOKEN, "max_concurrent_tasks": str(CAPACITY)}
    with database_for(backend) as url:
        env = {**app_env(url, settings), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
        server = start_server(
            APP,
            env=env,
            args=["--workers", "2", "--timeout-graceful-shutdown", "5"],
            startup_timeout=60.0,
            cwd=ROOT,
        )
        try:
            assert_up(server.url, seconds=30)
            posted = 0
            with httpx.Client(base_url=server.url, headers={**AUTH_A, **CLOSE}) as client:
                # Until both workers have accepted some: then no one worker's count is the total.
                while posted < MAX_POSTS and accepting(folder) < 2:
                    job = {"data": {"n": posted}, "io_ms": 0}
                    assert client.post("/process-data", json=job).status_code == 202
                    posted += 1
            assert accepting(folder) == 2, posted

            deadline = time.monotonic() + 30
            while scrape(server.url)["succeeded"] < posted and time.monotonic() < deadline:
                time.sleep(0.1)
            scrapes = [scrape(server.url) for _ in range(8)]
        finally:
            server.stop()

    whole = {"accepted": posted, "succeeded": posted, "accept_count": posted,
             "capacity": 2 * CAPACITY}  # fmt: skip
    assert scrapes == [whole] * len(scrapes)
    assert sum(accepted_by_pid(folder).values()) == posted  # the counts outlive the workers
    assert list(folder.glob("gauge_livesum_*.db")) == []  # each worker took its slots with it
