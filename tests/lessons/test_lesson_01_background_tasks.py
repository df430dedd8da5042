"""Lesson 01: inline work, BackgroundTasks with 202 and a status URL, and what tests hide.

TestClient and httpx's ASGITransport run a response's background tasks before they
return, so in-process tests see the work already done; only a live uvicorn server
shows the client getting its 202 while the work is still running.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import structlog
from starlette.exceptions import StarletteDeprecationWarning
from structlog.testing import capture_logs

from reference_app.testing import LiveServer, live_server

# Starlette now prefers httpx2 under its TestClient and warns on httpx; the behaviour shown
# here is the same on both, so the warning is allowed for this one import only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
LESSON = "lessons.lesson_01_background_tasks"
ENV = {"APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "INFO"}
BODY = {"data": {"order": 42}, "io_ms": 50}
SLOW_BODY = {"data": {"order": 42}, "io_ms": 1500}  # long enough to look at it mid-flight


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Steps configure logging when imported: undo it after each test."""
    config = structlog.get_config()
    saved = {**config, "processors": list(config["processors"])}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def step(name: str) -> ModuleType:
    return importlib.import_module(f"{LESSON}.{name}")


@pytest.fixture
def step_01() -> ModuleType:
    return step("step_01_inline")


@pytest.fixture
def step_02() -> ModuleType:
    return step("step_02_background_tasks")


@pytest.fixture
def step_03() -> ModuleType:
    return step("step_03_status_url")


@pytest.fixture
def serve() -> Iterator[Callable[[str], LiveServer]]:
    """Start a step under a real uvicorn on 127.0.0.1; every server is stopped by PID."""
    with contextlib.ExitStack() as servers:

        def start(name: str) -> LiveServer:
            return servers.enter_context(live_server(f"{LESSON}.{name}:app", env=ENV, cwd=ROOT))

        yield start


def wait_for_log(
    server: LiveServer, predicate: Callable[[str], bool], seconds: float = 10.0
) -> list[str]:
    """The server's log events once one of them matches ``predicate`` (bounded wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = [record["event"] for record in server.logs()]
        if any(predicate(event) for event in events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"no matching log line within {seconds}s:\n{server.log_text()}")


def access_line(method: str, path: str, status: int) -> Callable[[str], bool]:
    """Matches uvicorn's access log line, written when the response starts."""
    return lambda event: f'"{method} {path} HTTP/1.1" {status}' in event


# Step 1: inline ---------------------------------------------------------------------------


async def test_the_inline_step_answers_200_with_the_finished_result(step_01: ModuleType) -> None:
    transport = httpx.ASGITransport(app=step_01.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/process-data", json=BODY)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["result"]["keys"] == 1
    assert uuid.UUID(body["task_id"])


@pytest.mark.live
def test_on_a_live_server_the_inline_response_comes_only_after_the_work(
    serve: Callable[[str], LiveServer],
) -> None:
    server = serve("step_01_inline")

    response = httpx.post(f"{server.url}/process-data", json=BODY, timeout=10)

    assert response.status_code == 200
    events = wait_for_log(server, access_line("POST", "/process-data", 200))
    finished = events.index("work_finished")
    answered = next(i for i, e in enumerate(events) if access_line("POST", "/process-data", 200)(e))
    assert finished < answered


# Step 2: BackgroundTasks ------------------------------------------------------------------


async def test_the_background_step_answers_202_with_a_task_id(step_02: ModuleType) -> None:
    transport = httpx.ASGITransport(app=step_02.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/process-data", json=BODY)

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["task_id"] in step_02.TASKS


def test_testclient_runs_the_background_task_before_it_returns(step_02: ModuleType) -> None:
    with TestClient(step_02.app) as client, capture_logs() as logs:
        response = client.post("/process-data", json=BODY)
        # The response says "scheduled", yet the work is already done: the latency win is hidden.
        task = step_02.TASKS[response.json()["task_id"]]
        assert task["status"] == "succeeded"
        assert [e["event"] for e in logs] == ["task_scheduled", "work_started", "work_finished"]


async def test_asgi_transport_also_runs_it_before_returning(step_02: ModuleType) -> None:
    transport = httpx.ASGITransport(app=step_02.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/process-data", json=BODY)

    assert response.status_code == 202
    assert step_02.TASKS[response.json()["task_id"]]["status"] == "succeeded"


@pytest.mark.live
def test_on_a_live_server_the_202_is_sent_before_the_work_starts(
    serve: Callable[[str], LiveServer],
) -> None:
    server = serve("step_02_background_tasks")

    response = httpx.post(f"{server.url}/process-data", json=BODY, timeout=10)

    assert response.status_code == 202
    events = wait_for_log(server, lambda event: event == "work_finished")
    answered = next(i for i, e in enumerate(events) if access_line("POST", "/process-data", 202)(e))
    assert events.index("task_scheduled") < answered < events.index("work_started")
    assert events.index("work_started") < events.index("work_finished")


# Step 3: a status URL ---------------------------------------------------------------------


async def test_location_and_status_url_point_at_the_tasks_status(step_03: ModuleType) -> None:
    transport = httpx.ASGITransport(app=step_03.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        accepted = await client.post("/process-data", json=BODY)
        status = await client.get(accepted.json()["status_url"])

    assert accepted.status_code == 202
    task_id = accepted.json()["task_id"]
    assert accepted.headers["Location"] == accepted.json()["status_url"]
    assert accepted.json()["status_url"] == f"http://testserver/tasks/{task_id}"
    assert status.status_code == 200
    # In-process, the task finished before the POST returned.
    assert status.json()["status"] == "succeeded"
    assert status.json()["result"]["keys"] == 1


async def test_an_unknown_task_id_is_404(step_03: ModuleType) -> None:
    transport = httpx.ASGITransport(app=step_03.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(f"/tasks/{uuid.uuid4()}")

    assert response.status_code == 404


@pytest.mark.live
def test_on_a_live_server_the_effect_appears_after_the_202(
    serve: Callable[[str], LiveServer],
) -> None:
    server = serve("step_03_status_url")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        accepted = client.post("/process-data", json=SLOW_BODY)
        right_after = client.get(accepted.headers["Location"]).json()
        deadline = time.monotonic() + 15
        while (later := client.get(accepted.headers["Location"]).json())["status"] != "succeeded":
            assert time.monotonic() < deadline, later
            time.sleep(0.05)

    assert accepted.status_code == 202
    assert right_after["status"] in {"scheduled", "running"}
    assert right_after["result"] is None
    assert later["result"]["keys"] == 1


@pytest.mark.live
def test_the_in_memory_statuses_are_gone_after_a_restart(
    serve: Callable[[str], LiveServer],
) -> None:
    first = serve("step_03_status_url")
    accepted = httpx.post(f"{first.url}/process-data", json=BODY, timeout=10)
    status_path = httpx.URL(accepted.headers["Location"]).path
    wait_for_log(first, lambda event: event == "work_finished")
    assert httpx.get(f"{first.url}{status_path}", timeout=10).status_code == 200
    first.stop()

    second = serve("step_03_status_url")
    response = httpx.get(f"{second.url}{status_path}", timeout=10)

    assert response.status_code == 404
