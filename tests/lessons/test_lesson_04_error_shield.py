"""Lesson 04: an unshielded task kills the tasks after it; the shield logs, records and goes on.

In-process (httpx.ASGITransport runs the background tasks before it returns) a
task's exception reaches the test; under a real uvicorn it lands in the log,
after the 202 was sent.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from structlog.testing import capture_logs

from lessons.lesson_04_error_shield import (
    step_01_unshielded,
    step_02_http_exception,
    step_03_shield,
)
from reference_app.core.errors import install_error_handlers
from reference_app.tasks import shield as reference_shield
from reference_app.testing import LiveServer, live_server

ROOT = Path(__file__).resolve().parents[2]
LESSON = "lessons.lesson_04_error_shield"
ASGI_ERROR = "Exception in ASGI application"
CRM_DOWN = {"email": "ada@example.com", "crm_up": False}
CRM_UP = {"email": "bob@example.com", "crm_up": True}

Shield = Callable[[Callable[..., Awaitable[None]]], Callable[..., Coroutine[Any, Any, None]]]
SHIELDS = pytest.mark.parametrize(
    "shielded",
    [step_03_shield.shielded, reference_shield.shielded],
    ids=["lesson", "reference_app"],
)


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client: it runs the background tasks before it returns the response."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [entry["event"] for entry in logs]


def asgi_errors(server: LiveServer) -> list[str]:
    """The full tracebacks uvicorn logged for unhandled ASGI exceptions."""
    return [r["exception"] for r in server.logs() if r["event"].startswith(ASGI_ERROR)]


async def wait_until(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    async with asyncio.timeout(seconds):
        while True:
            if result := check():
                return result
            await asyncio.sleep(0.05)


def serve(step: str) -> AbstractContextManager[LiveServer]:
    return live_server(f"{LESSON}.{step}:app", env={"APP_LOG_FORMAT": "json"})


# Step 1: an exception in a task skips the tasks queued after it ------------------------


async def test_step_01_when_the_first_task_raises_the_second_never_runs() -> None:
    with capture_logs() as logs:
        async with client_for(step_01_unshielded.app) as client:
            # In-process the exception reaches the caller; a real server only logs it.
            with pytest.raises(step_01_unshielded.CRMUnavailable, match="answered 503"):
                await client.post("/signups", json=CRM_DOWN)

    assert events(logs) == ["crm_sync_started"]  # no crm_synced, and no welcome_sent


async def test_step_01_when_the_first_task_succeeds_both_run_in_order() -> None:
    with capture_logs() as logs:
        async with client_for(step_01_unshielded.app) as client:
            response = await client.post("/signups", json=CRM_UP)

    assert response.status_code == 202
    assert events(logs) == ["crm_sync_started", "crm_synced", "welcome_sent"]


@pytest.mark.live
async def test_step_01_live_the_client_gets_202_and_the_server_logs_the_crash_afterwards() -> None:
    with serve("step_01_unshielded") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/signups", json=CRM_DOWN)
        await wait_until(lambda: asgi_errors(server))

    assert response.status_code == 202
    signup_id = response.json()["signup_id"]
    [traceback] = asgi_errors(server)
    assert traceback.splitlines()[-1] == (
        "lessons.lesson_04_error_shield.step_01_unshielded.CRMUnavailable: "
        "crm.example.com answered 503 Service Unavailable"
    )
    order = [r["event"] for r in server.logs()]
    accepted = next(i for i, e in enumerate(order) if '"POST /signups HTTP/1.1" 202' in e)
    crashed = next(i for i, e in enumerate(order) if e.startswith(ASGI_ERROR))
    assert accepted < crashed  # the noise comes after the response was sent
    # Nothing in uvicorn's record, traceback included, says whose sign-up this was.
    assert signup_id not in json.dumps(server.logs()[crashed])
    assert "welcome_sent" not in order


# Step 2: HTTPException in a task cannot reach the client ---------------------------------


async def test_step_02_http_exception_in_a_task_fails_because_the_response_already_started() -> (
    None
):
    with capture_logs() as logs:
        async with client_for(step_02_http_exception.app) as client:
            with pytest.raises(RuntimeError, match="response already started") as raised:
                await client.post("/signups", json=CRM_DOWN)

    assert isinstance(raised.value.__cause__, HTTPException)
    assert raised.value.__cause__.status_code == 502
    assert "welcome_sent" not in events(logs)


@pytest.mark.live
async def test_step_02_live_the_client_gets_202_and_the_log_says_response_already_started() -> None:
    with serve("step_02_http_exception") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/signups", json=CRM_DOWN)
        await wait_until(lambda: asgi_errors(server))

    assert response.status_code == 202  # not 502: the response was sent before the task ran
    [traceback] = asgi_errors(server)
    assert "fastapi.exceptions.HTTPException: 502: The CRM is unavailable" in traceback
    assert traceback.splitlines()[-1] == (
        "RuntimeError: Caught handled exception, but response already started."
    )
    assert "welcome_sent" not in [r["event"] for r in server.logs()]


async def test_any_exception_with_a_registered_handler_fails_the_same_way_in_a_task() -> None:
    # The reference app turns pool timeouts into 503s; raised in a task, that handler
    # has no response to write either.
    app = FastAPI()
    install_error_handlers(app)

    async def needs_a_connection() -> None:
        raise PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached")

    @app.post("/jobs", status_code=202)
    async def jobs(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(needs_a_connection)
        return {"status": "accepted"}

    async with client_for(app) as client:
        with pytest.raises(RuntimeError, match="response already started") as raised:
            await client.post("/jobs")

    assert isinstance(raised.value.__cause__, PoolTimeoutError)


# Step 3: the shield -----------------------------------------------------------------------


@pytest.fixture
def failures() -> Iterator[list[dict[str, str]]]:
    step_03_shield.FAILURES.clear()
    yield step_03_shield.FAILURES
    step_03_shield.FAILURES.clear()


async def test_step_03_the_failure_is_logged_recorded_and_the_next_task_still_runs(
    failures: list[dict[str, str]],
) -> None:
    with capture_logs() as logs:
        async with client_for(step_03_shield.app) as client:
            response = await client.post("/signups", json=CRM_DOWN)
            recorded = (await client.get("/failures")).json()

    assert response.status_code == 202
    assert events(logs) == ["crm_sync_started", "task_failed", "welcome_sent"]
    failed = logs[1]
    assert failed["task"] == "sync_to_crm"
    assert failed["signup_id"] == response.json()["signup_id"]  # whose sign-up it was
    assert "email" not in failed  # ids only: no payloads in the log
    assert failed["log_level"] == "error"
    assert failed["exc_info"] is True  # log.exception: the traceback goes with it
    assert [(f["task"], f["signup_id"], f["error"]) for f in recorded] == [
        (
            "sync_to_crm",
            response.json()["signup_id"],
            "CRMUnavailable: crm.example.com answered 503 Service Unavailable",
        )
    ]
    assert recorded[0]["at"].endswith("+00:00")  # aware UTC


async def test_step_03_a_task_that_succeeds_records_nothing(failures: list[dict[str, str]]) -> None:
    with capture_logs() as logs:
        async with client_for(step_03_shield.app) as client:
            response = await client.post("/signups", json=CRM_UP)

    assert response.status_code == 202
    assert events(logs) == ["crm_sync_started", "crm_synced", "welcome_sent"]
    assert failures == []


@pytest.mark.live
async def test_step_03_live_the_crash_is_one_log_line_with_its_traceback_and_no_asgi_noise() -> (
    None
):
    with serve("step_03_shield") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/signups", json=CRM_DOWN)
            await wait_until(lambda: "welcome_sent" in [r["event"] for r in server.logs()])
            recorded = (await client.get("/failures")).json()

    assert response.status_code == 202
    assert asgi_errors(server) == []
    [failed] = [r for r in server.logs() if r["event"] == "task_failed"]
    assert failed["level"] == "error"
    assert failed["exception"].splitlines()[-1] == (
        "lessons.lesson_04_error_shield.step_03_shield.CRMUnavailable: "
        "crm.example.com answered 503 Service Unavailable"
    )
    assert [f["task"] for f in recorded] == ["sync_to_crm"]


@SHIELDS
def test_the_shield_keeps_the_name_docstring_signature_and_wrapped_function(
    shielded: Shield,
) -> None:
    async def import_rows(*, file_id: str) -> None:
        """Import the rows of one file."""

    wrapped = shielded(import_rows)

    assert wrapped.__name__ == "import_rows"
    assert wrapped.__doc__ == "Import the rows of one file."
    assert wrapped.__wrapped__ is import_rows  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(import_rows)


@SHIELDS
async def test_the_shield_re_raises_cancelled_error_so_shutdown_can_stop_the_task(
    shielded: Shield, failures: list[dict[str, str]]
) -> None:
    started = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    with capture_logs() as logs:
        task = asyncio.create_task(shielded(wait_forever)())
        async with asyncio.timeout(5):
            await started.wait()
        task.cancel()
        await asyncio.wait([task], timeout=5)

    assert task.cancelled()
    assert logs == []  # a cancellation is not a failure
    assert failures == []


async def test_a_shield_that_swallows_base_exception_makes_a_task_uncancellable() -> None:
    """Why the shield re-raises: catch CancelledError and shutdown cannot stop the task."""
    started = asyncio.Event()
    finished: list[str] = []

    async def wait_then_finish() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except BaseException as exc:  # what `except BaseException` or a bare `except:` does
            finished.append(f"swallowed {type(exc).__name__}")
        finished.append("kept running after cancel()")

    task = asyncio.create_task(wait_then_finish())
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    await asyncio.wait([task], timeout=5)

    assert not task.cancelled()
    assert finished == ["swallowed CancelledError", "kept running after cancel()"]


def test_the_shield_keeps_the_task_arguments_type_checked(tmp_path: Path) -> None:
    # ParamSpec carries the wrapped signature, so mypy checks calls and add_task() arguments.
    snippet = tmp_path / "uses_shielded_tasks.py"
    snippet.write_text(
        "from fastapi import BackgroundTasks\n"
        "from lessons.lesson_04_error_shield.step_03_shield import send_welcome\n"
        "\n"
        "async def main(tasks: BackgroundTasks) -> None:\n"
        '    await send_welcome(signup_id="s1", email="ada@example.com")\n'
        '    await send_welcome(signup_id=42, email="ada@example.com")\n'
        '    tasks.add_task(send_welcome, signup_id="s1", emial="ada@example.com")\n'
    )
    result = subprocess.run(
        # No cache: writing one for every module mypy reads costs more than it saves here.
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull, str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(errors) == 2, result.stdout
    assert (
        ':6: error: Argument "signup_id" to "send_welcome" has incompatible type "int"'
        in (errors[0])
    )
    assert ":7: error:" in errors[1]
    assert '"emial"' in errors[1]
