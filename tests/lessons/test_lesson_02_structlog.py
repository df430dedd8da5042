"""Lesson 02: JSON logs, bind, request ids carried into tasks, and the contextvars caveat.

Logs are asserted as event dicts with ``structlog.testing.capture_logs``, never as strings,
except in the one test that checks what the processor chain renders.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import io
import json
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import structlog
from fastapi import Depends, FastAPI, Request
from structlog.testing import capture_logs
from structlog.typing import EventDict

from reference_app.core.clock import utcnow
from reference_app.testing import LiveServer, live_server

ROOT = Path(__file__).resolve().parents[2]
LESSON = "lessons.lesson_02_structlog"
BODY = {"email": "alice@example.com", "message": "Your export is ready."}
MERGE = [structlog.contextvars.merge_contextvars]  # capture_logs drops the chain; keep this one

# The guide's configuration, verbatim, in a fresh interpreter where nothing configured stdlib
# logging (as under uvicorn, which configures its own loggers only).
GUIDE_CONFIGURATION = """
import structlog

structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        structlog.processors.JSONRenderer()
    ],
    context_class=dict,
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
logger = structlog.get_logger()
logger.info("task_started", task_id="t-1")
logger.warning("task_slow", task_id="t-1")
"""


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Steps configure structlog and the root logger when imported: undo it after each test."""
    config = structlog.get_config()
    saved = {**config, "processors": list(config["processors"])}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def step(name: str) -> ModuleType:
    return importlib.import_module(f"{LESSON}.{name}")


@contextlib.asynccontextmanager
async def client_for(module: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=module.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def wait_for(logs: list[EventDict], event: str, seconds: float = 5.0) -> EventDict:
    """The first captured ``event`` (a thread started by hand may log after the response)."""
    async with asyncio.timeout(seconds):
        while True:
            for entry in list(logs):
                if entry["event"] == event:
                    return entry
            await asyncio.sleep(0.01)


def wait_for_lines(
    server: LiveServer, match: Callable[[dict[str, Any]], bool], count: int, seconds: float = 10.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [record for record in server.logs() if match(record)]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} matching lines:\n{server.log_text()}")


def is_aware_utc(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() == timedelta(0)


# Step 1: the processor chain and bind ---------------------------------------------------


def test_the_chain_writes_one_json_object_per_event_with_an_aware_utc_timestamp() -> None:
    step_01 = step("step_01_processor_chain")
    out = io.StringIO()
    step_01.configure_json_logging(out)

    structlog.get_logger().info("notification_accepted", email="alice@example.com")
    structlog.get_logger().warning("mail_server_slow", seconds=2.5)

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "notification_accepted"
    assert first["level"] == "info"
    assert first["email"] == "a***@example.com"
    assert first["timestamp"].endswith("Z")
    assert is_aware_utc(first["timestamp"])
    assert second == {**second, "event": "mail_server_slow", "level": "warning", "seconds": 2.5}


def test_the_guides_configuration_silently_drops_info_logs() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GUIDE_CONFIGURATION],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    # The root logger is at WARNING and has no handler: filter_by_level drops every info line.
    assert [json.loads(line)["event"] for line in result.stderr.splitlines()] == ["task_slow"]


def test_mask_email_keeps_the_first_letter_and_the_domain() -> None:
    mask_email = step("step_01_processor_chain").mask_email

    assert mask_email(None, "info", {"event": "x", "email": "alice@example.com"}) == {
        "event": "x",
        "email": "a***@example.com",
    }
    assert mask_email(None, "info", {"event": "x", "email": None}) == {"event": "x", "email": None}


async def test_bind_carries_the_requests_fields_into_its_task() -> None:
    step_01 = step("step_01_processor_chain")
    with capture_logs() as logs:
        async with client_for(step_01) as client:
            response = await client.post("/send-notification", json=BODY)

    assert response.status_code == 202
    notification_id = response.json()["notification_id"]
    accepted, sent = logs
    assert accepted == {
        "event": "notification_accepted",
        "log_level": "info",
        "notification_id": notification_id,
        # capture_logs records what the code logged, before any processor: mask_email has
        # not run. Test a processor by calling it (above), not through capture_logs.
        "email": "alice@example.com",
    }
    assert sent["event"] == "notification_sent"
    assert sent["notification_id"] == notification_id
    assert is_aware_utc(sent["sent_at"])


def test_the_guides_utcnow_is_naive_and_the_clocks_is_aware() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        naive = datetime.utcnow()  # noqa: DTZ003 - the guide's call, shown to be wrong
    aware = utcnow()

    assert naive.tzinfo is None
    assert not naive.isoformat().endswith(("+00:00", "Z"))  # a reader cannot tell it is UTC
    assert aware.isoformat().endswith("+00:00")
    with pytest.raises(TypeError, match="offset-naive and offset-aware"):
        _ = naive < aware
    if sys.version_info >= (3, 12):
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)


# Step 2: a request id per request --------------------------------------------------------


async def test_capture_logs_drops_context_vars_unless_given_merge_contextvars() -> None:
    step_02 = step("step_02_request_id")
    headers = {"X-Request-ID": "req-lesson-02"}
    async with client_for(step_02) as client:
        with capture_logs() as bare:
            await client.post("/send-notification", json=BODY, headers=headers)
        with capture_logs(processors=MERGE) as merged:
            await client.post("/send-notification", json=BODY, headers=headers)

    assert [e["event"] for e in bare] == ["notification_accepted", "notification_sent"]
    assert all("request_id" not in e for e in bare)
    assert [e["request_id"] for e in merged] == ["req-lesson-02", "req-lesson-02"]


async def test_the_callers_request_id_reaches_the_endpoint_and_its_async_task() -> None:
    step_02 = step("step_02_request_id")
    with capture_logs(processors=MERGE) as logs:
        async with client_for(step_02) as client:
            response = await client.post(
                "/send-notification", json=BODY, headers={"X-Request-ID": "req-lesson-02"}
            )

    assert response.headers["X-Request-ID"] == "req-lesson-02"
    assert [(e["event"], e["request_id"]) for e in logs] == [
        ("notification_accepted", "req-lesson-02"),
        ("notification_sent", "req-lesson-02"),
    ]


@pytest.mark.parametrize("sent", [None, "has space"], ids=["missing", "unsafe"])
async def test_without_a_usable_header_one_new_id_is_on_the_response_and_every_line(
    sent: str | None,
) -> None:
    step_04 = step("step_04_explicit_request_id")  # its task gets the id as an argument
    headers = {} if sent is None else {"X-Request-ID": sent}
    with capture_logs(processors=MERGE) as logs:
        async with client_for(step_04) as client:
            response = await client.post("/send-notification", json=BODY, headers=headers)

    generated = response.headers["X-Request-ID"]
    assert len(generated) == 32
    assert [e["request_id"] for e in logs] == [generated, generated]


async def test_what_a_def_dependency_binds_never_reaches_the_endpoint() -> None:
    def bind_in_the_threadpool(request: Request) -> None:
        structlog.contextvars.bind_contextvars(request_id=request.headers["X-Request-ID"])

    app = FastAPI(dependencies=[Depends(bind_in_the_threadpool)])

    @app.get("/")
    async def endpoint() -> dict[str, Any]:
        structlog.get_logger().info("endpoint_ran")
        return structlog.contextvars.get_contextvars()

    with capture_logs(processors=MERGE) as logs:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/", headers={"X-Request-ID": "req-lost"})

    assert response.json() == {}
    assert logs == [{"event": "endpoint_ran", "log_level": "info"}]


# Step 3: def tasks, the threadpool and threads started by hand ---------------------------


async def test_a_def_task_run_by_starlettes_threadpool_sees_the_requests_context() -> None:
    step_03 = step("step_03_sync_task")
    with capture_logs(processors=MERGE) as logs:
        async with client_for(step_03) as client:
            await client.post("/send-notification", json=BODY, headers={"X-Request-ID": "req-3"})

    sent = await wait_for(logs, "notification_sent")
    assert sent["via"] == "threadpool"
    assert sent["request_id"] == "req-3"


async def test_a_thread_started_by_hand_does_not_see_it() -> None:
    step_03 = step("step_03_sync_task")
    with capture_logs(processors=MERGE) as logs:
        async with client_for(step_03) as client:
            response = await client.post(
                "/send-notification?run_in=thread", json=BODY, headers={"X-Request-ID": "req-3"}
            )
        sent = await wait_for(logs, "notification_sent")

    assert sent["via"] == "thread"
    assert "request_id" not in sent
    # What the bound logger carries explicitly still arrives: an argument crosses any thread.
    assert sent["notification_id"] == response.json()["notification_id"]


@pytest.mark.live
def test_on_a_live_server_only_the_threadpool_task_carries_the_request_id() -> None:
    app = f"{LESSON}.step_03_sync_task:app"
    with live_server(app, env={"APP_LOG_FORMAT": "json"}, cwd=ROOT) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for run_in in ("threadpool", "thread"):
                client.post(
                    f"/send-notification?run_in={run_in}",
                    json=BODY,
                    headers={"X-Request-ID": f"live-{run_in}"},
                )
        sent = wait_for_lines(server, lambda r: r["event"] == "notification_sent", count=2)

    by_way = {record["via"]: record for record in sent}
    assert by_way["threadpool"]["request_id"] == "live-threadpool"
    assert "request_id" not in by_way["thread"]


# Step 4: pass the request id, bind it inside the task ------------------------------------


@pytest.mark.parametrize("run_in", ["threadpool", "thread"])
async def test_an_explicit_request_id_reaches_the_task_however_it_runs(run_in: str) -> None:
    step_04 = step("step_04_explicit_request_id")
    with capture_logs(processors=MERGE) as logs:
        async with client_for(step_04) as client:
            response = await client.post(
                f"/send-notification?run_in={run_in}", json=BODY, headers={"X-Request-ID": "req-4"}
            )
        sent = await wait_for(logs, "notification_sent")

    assert sent["via"] == run_in
    assert sent["request_id"] == "req-4"
    assert sent["notification_id"] == response.json()["notification_id"]
    assert is_aware_utc(sent["sent_at"])


def test_the_task_logs_its_request_id_outside_any_request_and_unbinds_it() -> None:
    send_notification = step("step_04_explicit_request_id").send_notification
    empty = contextvars.Context()  # as in a sweeper that picks the task up after a restart

    with capture_logs(processors=MERGE) as logs:
        empty.run(
            send_notification,
            notification_id="n-1",
            request_id="req-from-the-task-row",
            message="hi",
            via="sweeper",
        )

    assert logs[0]["request_id"] == "req-from-the-task-row"
    assert logs[0]["notification_id"] == "n-1"
    assert empty.run(structlog.contextvars.get_contextvars) == {}  # nothing leaks afterwards
