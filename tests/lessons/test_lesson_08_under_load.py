"""Lesson 08: what each kind of background work blocks, proven by the order of events.

No test measures a duration. A live server writes ``work_started`` and
``work_finished`` to its log as the work runs; a test reads the log the moment a
response arrives, so "the work had (not) finished when /health answered" is an
ordering, the same on a fast laptop and a loaded CI machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lessons.lesson_08_under_load import step_03_backlog, step_04_load_lab
from reference_app.testing import LiveServer, start_server

pytestmark = pytest.mark.timeout(120)
live = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
LESSON = "lessons.lesson_08_under_load"
ENV = {"APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "INFO", "APP_LAB_MAX_CONCURRENT": "3"}
BLOCKING_MS = 1000  # anti-patterns: /health must wait this out
FREE_MS = 3000  # the fixed kinds: /health must answer well inside this
SATURATE_MS = 4000  # 40 sleepers must all start, and /health answer, well inside this
TOKENS = 40  # anyio's default CapacityLimiter


def serve(step: str) -> Iterator[LiveServer]:
    server = start_server(f"{LESSON}.{step}:app", env=ENV, cwd=ROOT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def step_01() -> Iterator[LiveServer]:
    yield from serve("step_01_event_loop")


@pytest.fixture(scope="module")
def step_02() -> Iterator[LiveServer]:
    yield from serve("step_02_threadpool")


@pytest.fixture(scope="module")
def step_03() -> Iterator[LiveServer]:
    yield from serve("step_03_backlog")


@pytest.fixture(scope="module")
def step_04() -> Iterator[LiveServer]:
    yield from serve("step_04_load_lab")


class WorkLog:
    """The ``work_*`` lines a server logged after this object was made."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.mark = len(server.logs())

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        new = self.server.logs()[self.mark :]
        return [line for line in new if line.get("event", "").startswith(event or "work_")]

    async def wait_for(self, event: str, count: int, seconds: float = 60.0) -> None:
        async with asyncio.timeout(seconds):
            while True:
                if len(self.lines(event)) >= count:
                    return
                await asyncio.sleep(0.02)


@asynccontextmanager
async def client_of(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


async def schedule(client: httpx.AsyncClient, path: str, work_ms: int) -> None:
    response = await client.post(path, params={"work_ms": work_ms})
    assert (response.status_code, response.json()) == (202, {"accepted": True})


async def finished_when_health_answered(server: LiveServer, path: str, work_ms: int) -> bool:
    """Start one task, send GET /health while it runs; had the task finished when it answered?"""
    log = WorkLog(server)
    async with client_of(server) as client:
        await schedule(client, path, work_ms)
        await log.wait_for("work_started", 1)
        health = await client.get("/health")
        finished = bool(log.lines("work_finished"))
        await log.wait_for("work_finished", 1)  # leave the server idle for the next test
    assert health.json() == {"status": "ok"}
    return finished


def peak_running(lines: list[dict[str, Any]], kind: str) -> int:
    """The most tasks of ``kind`` running at once, replaying the log in order."""
    running = peak = 0
    for line in lines:
        if line["kind"] == kind:
            running += 1 if line["event"] == "work_started" else -1
            peak = max(peak, running)
    return peak


# Step 1 and the lab: the event loop ------------------------------------------------------

ANTI_PATTERNS = ["/work/blocking-in-async", "/work/cpu-in-async"]
FIXED = ["/work/async-io", "/work/sync-io", "/work/cpu-offloaded"]


@live
@pytest.mark.parametrize("server", ["step_01", "step_04"])
@pytest.mark.parametrize("path", ANTI_PATTERNS)
async def test_an_anti_pattern_task_holds_health_until_its_work_ends(
    server: str, path: str, request: pytest.FixtureRequest
) -> None:
    live: LiveServer = request.getfixturevalue(server)
    assert await finished_when_health_answered(live, path, BLOCKING_MS)


@live
@pytest.mark.parametrize(
    ("server", "path"),
    [("step_01", path) for path in FIXED]
    + [("step_04", path) for path in [*FIXED, "/work/bounded"]],
)
async def test_health_answers_while_well_placed_work_is_still_running(
    server: str, path: str, request: pytest.FixtureRequest
) -> None:
    live: LiveServer = request.getfixturevalue(server)
    assert not await finished_when_health_answered(live, path, FREE_MS)


# Step 2 and the lab: the threadpool's 40 tokens --------------------------------------------


@live
@pytest.mark.parametrize("server", ["step_02", "step_04"])
async def test_forty_sleeping_def_tasks_hold_every_token_and_a_def_endpoint_waits(
    server: str, request: pytest.FixtureRequest
) -> None:
    live: LiveServer = request.getfixturevalue(server)
    log = WorkLog(live)
    async with client_of(live) as client:
        for _ in range(TOKENS):
            await schedule(client, "/work/sync-io", SATURATE_MS)
        await log.wait_for("work_started", TOKENS)
        pool = (await client.get("/threadpool")).json() if server == "step_02" else None
        health = await client.get("/health")
        finished_at_health = len(log.lines("work_finished"))
        health_sync = await client.get("/health-sync")
        finished_at_health_sync = len(log.lines("work_finished"))
        await log.wait_for("work_finished", TOKENS)

    assert (health.status_code, health_sync.status_code) == (200, 200)
    if pool is not None:
        assert pool == {"total_tokens": TOKENS, "borrowed_tokens": TOKENS}
    assert finished_at_health == 0  # the event loop was free all along
    assert finished_at_health_sync >= 1  # the def endpoint got a token only once a task let go


@live
async def test_blocking_work_under_its_own_limiter_leaves_the_tokens_to_def_endpoints(
    step_02: LiveServer,
) -> None:
    log = WorkLog(step_02)
    async with client_of(step_02) as client:
        for _ in range(TOKENS):
            await schedule(client, "/work/sync-io-own-limiter", SATURATE_MS)
        await log.wait_for("work_started", TOKENS)
        pool = (await client.get("/threadpool")).json()
        health_sync = await client.get("/health-sync")
        finished_at_health_sync = len(log.lines("work_finished"))
        await log.wait_for("work_finished", TOKENS)

    assert pool == {"total_tokens": TOKENS, "borrowed_tokens": 0}
    assert health_sync.status_code == 200
    assert finished_at_health_sync == 0


# Step 3 and the lab: backlog and bounded concurrency ----------------------------------------


async def stats_of(client: httpx.AsyncClient) -> dict[str, int]:
    response = await client.get("/stats")
    assert response.status_code == 200
    stats: dict[str, int] = response.json()
    assert stats["backlog"] == stats["scheduled"] - stats["finished"]
    return stats


async def drained(client: httpx.AsyncClient, seconds: float = 60.0) -> dict[str, int]:
    async with asyncio.timeout(seconds):
        while True:
            stats = await stats_of(client)
            if stats["backlog"] == 0:
                return stats
            await asyncio.sleep(0.05)


@live
@pytest.mark.parametrize("server", ["step_03", "step_04"])
async def test_a_fast_202_is_not_finished_work(server: str, request: pytest.FixtureRequest) -> None:
    live: LiveServer = request.getfixturevalue(server)
    async with client_of(live) as client:
        before = await stats_of(client)
        for _ in range(10):
            await schedule(client, "/work/async-io", FREE_MS)
        after_last_202 = await stats_of(client)
        after_drain = await drained(client)

    assert after_last_202["scheduled"] - before["scheduled"] == 10
    # Every 202 is back, but the work behind the last one cannot be done yet.
    assert after_last_202["finished"] - before["finished"] < 10
    assert after_last_202["backlog"] > 0
    assert after_drain["finished"] - before["finished"] == 10
    assert after_drain["running"] == 0


@live
@pytest.mark.parametrize("server", ["step_03", "step_04"])
async def test_the_semaphore_bounds_running_work_but_not_the_backlog(
    server: str, request: pytest.FixtureRequest
) -> None:
    live: LiveServer = request.getfixturevalue(server)
    log = WorkLog(live)
    async with client_of(live) as client:
        for _ in range(9):
            await schedule(client, "/work/bounded", BLOCKING_MS)
            await schedule(client, "/work/async-io", BLOCKING_MS)
        after_last_202 = await stats_of(client)
        await drained(client)
    lines = log.lines()

    limit = int(ENV["APP_LAB_MAX_CONCURRENT"])
    assert peak_running(lines, "bounded") == limit
    assert peak_running(lines, "async-io") > limit  # side by side, unbounded work piles on
    assert after_last_202["backlog"] > after_last_202["running"]  # tasks waiting for the semaphore
    assert len(lines) == 36


# The lab's interface, which the benchmark suite relies on ------------------------------------

LAB_WORK = [
    "/work/async-io",
    "/work/sync-io",
    "/work/blocking-in-async",
    "/work/cpu-in-async",
    "/work/cpu-offloaded",
    "/work/bounded",
]


def test_the_lab_serves_the_paths_the_benchmarks_use_with_work_ms_defaulting_to_200() -> None:
    schema = step_04_load_lab.app.openapi()
    assert set(schema["paths"]) == {"/health", "/health-sync", "/stats", *LAB_WORK}
    for path in LAB_WORK:
        (parameter,) = schema["paths"][path]["post"]["parameters"]
        assert (parameter["name"], parameter["in"]) == ("work_ms", "query")
        assert parameter["schema"]["default"] == 200
        assert "202" in schema["paths"][path]["post"]["responses"]


async def test_every_lab_endpoint_accepts_one_task_and_stats_count_it() -> None:
    app = step_04_load_lab.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)  # runs each task before it returns
        async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
            assert (await stats_of(client)) == {
                "scheduled": 0,
                "running": 0,
                "finished": 0,
                "backlog": 0,
            }
            for path in LAB_WORK:
                await schedule(client, path, 5)
            stats = await stats_of(client)
            assert (await client.post(LAB_WORK[0], params={"work_ms": -1})).status_code == 422
    assert stats == {"scheduled": 6, "running": 0, "finished": 6, "backlog": 0}


@pytest.mark.parametrize("module", [step_03_backlog, step_04_load_lab])
def test_the_semaphore_size_is_8_unless_app_lab_max_concurrent_says_otherwise(
    module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APP_LAB_MAX_CONCURRENT", raising=False)
    assert module.LabSettings().max_concurrent == 8
    monkeypatch.setenv("APP_LAB_MAX_CONCURRENT", "2")
    assert module.LabSettings().max_concurrent == 2
