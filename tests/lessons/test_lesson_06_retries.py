"""Lesson 06: retry decorators (the guide's, a sync wrapper that never runs, one done right,
tenacity, stamina) against durable retries recorded as events by the reference app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import random
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from lessons.lesson_06_retries.partner import CALLS
from reference_app.core.config import Settings
from reference_app.main import create_app
from reference_app.tasks.errors import PermanentError, is_transient
from reference_app.tasks.retry import RetryPolicy
from reference_app.testing import LiveServer, start_server
from tests.conftest import AUTH_A, make_settings, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
LESSON = "lessons.lesson_06_retries"


def step(name: str) -> ModuleType:
    return importlib.import_module(f"{LESSON}.{name}")


def account(kind: str) -> str:
    """A fresh account id: the partner counts calls per id."""
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def events_named(logs: list[MutableMapping[str, Any]], event: str) -> list[dict[str, Any]]:
    """The captured log entries of one event, in order."""
    return [dict(entry) for entry in logs if entry["event"] == event]


@contextlib.asynccontextmanager
async def serving(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` in-process with its lifespan. Background tasks finish before a response returns."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
        ) as client,
    ):
        yield client


async def sync(app: FastAPI, account_id: str, **params: str) -> httpx.Response:
    async with serving(app) as client:
        return await client.post("/sync-account", json={"account_id": account_id}, params=params)


# Step 1: the guide's decorator ------------------------------------------------------------


def test_the_guides_decorator_loses_the_tasks_name_docstring_and_signature() -> None:
    task = step("step_01_guide_decorator").sync_account

    assert task.__name__ == "wrapper"
    assert task.__qualname__ == "retry_async.<locals>.decorator.<locals>.wrapper"
    assert task.__doc__ is None
    assert not hasattr(task, "__wrapped__")
    assert list(inspect.signature(task).parameters) == ["args", "kwargs"]


async def test_the_guides_decorator_reports_the_wrappers_name_and_retries_a_permanent_error() -> (
    None
):
    missing = account("missing")
    with capture_logs() as logs, pytest.raises(PermanentError):  # escapes into Starlette
        await sync(step("step_01_guide_decorator").app, missing)

    assert CALLS[missing] == 4  # a 404 asked for four times: no retry can fix it
    assert len(events_named(logs, "task_attempt_failed_retrying")) == 3
    assert len(events_named(logs, "task_failed_after_maximum_retries")) == 1


async def test_the_guides_app_answers_with_the_wrappers_name() -> None:
    response = await sync(step("step_01_guide_decorator").app, account("ok"))

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "task": "wrapper"}


async def test_the_guides_example_exception_list_never_matches_httpx_errors() -> None:
    guide = step("step_01_guide_decorator")
    fetch = step("step_01_guide_decorator").fetch_account
    retried = guide.retry_async(max_retries=3, exceptions=(ConnectionError, TimeoutError))(fetch)
    down = account("down")

    with pytest.raises(httpx.ConnectError):
        await retried(down)

    assert CALLS[down] == 1  # httpx.ConnectError is not a ConnectionError: never retried
    assert not issubclass(httpx.ConnectError, ConnectionError)
    assert not issubclass(httpx.ReadTimeout, TimeoutError)
    assert is_transient(httpx.ConnectError("refused"))  # the reference app's classification


def test_at_the_cap_the_guides_delay_has_no_jitter_left_and_full_jitter_still_spreads() -> None:
    guide_delay = step("step_01_guide_decorator").guide_delay
    policy = RetryPolicy(max_attempts=10, base_seconds=1.0, cap_seconds=60.0)
    rng = random.Random(6)

    guide = [guide_delay(7, 1.0, 2.0, 60.0) for _ in range(200)]  # 8th attempt: 128 s + jitter
    full = [policy.backoff(8, rng) for _ in range(200)]

    assert set(guide) == {60.0}  # 200 clients retry at the same instant
    assert len(set(full)) == 200
    assert all(0 <= delay <= 60.0 for delay in full)
    assert min(full) < 15 < 45 < max(full)  # spread over the whole window


# Step 2: a sync wrapper around an async task ----------------------------------------------


async def post_then_let_the_loop_move_on(app: FastAPI, account_id: str) -> httpx.Response:
    """The request, then one turn of the event loop and a GC pass. The callback that resumed
    this test still holds the dropped coroutine until the loop moves past it; it warns then."""
    response = await sync(app, account_id)
    await asyncio.sleep(0)
    gc.collect()
    return response


async def test_a_sync_wrapper_around_an_async_task_never_runs_it() -> None:
    wrapped = step("step_02_sync_wrapper")
    ok = account("ok")
    assert not inspect.iscoroutinefunction(wrapped.sync_account)  # so Starlette uses a thread

    # pytest turns warnings into errors; this one is the proof, so it is expected here.
    with (
        capture_logs() as logs,
        pytest.warns(RuntimeWarning, match="coroutine 'sync_account' was never awaited"),
    ):
        response = await post_then_let_the_loop_move_on(wrapped.app, ok)

    assert response.status_code == 202
    assert CALLS[ok] == 0  # the partner was never called
    assert events_named(logs, "account_synced") == []
    assert events_named(logs, "task_attempt_failed") == []  # the wrapper saw a "success"


# Step 3: a decorator done right -----------------------------------------------------------


def test_the_hand_written_decorator_keeps_name_docstring_signature_and_coroutine_nature() -> None:
    task = step("step_03_wraps_paramspec").sync_account

    assert task.__name__ == "sync_account"
    assert task.__doc__ == "Fetch the account from the partner API and record its balance."
    assert list(inspect.signature(task).parameters) == ["account_id"]
    assert inspect.iscoroutinefunction(task)  # Starlette awaits it on the event loop


async def test_the_hand_written_decorator_retries_transient_errors_with_full_jitter() -> None:
    done_right = step("step_03_wraps_paramspec")
    flaky = account("flaky-2")
    with capture_logs() as logs:
        response = await sync(done_right.app, flaky)

    assert response.json()["task"] == "sync_account"
    assert CALLS[flaky] == 3
    retries = events_named(logs, "retry_scheduled")
    assert [r["attempt"] for r in retries] == [1, 2]
    assert {r["reason"] for r in retries} == {"PartnerBusy"}
    for retry in retries:  # full jitter: anywhere from 0 up to the attempt's ceiling
        ceiling = min(done_right.POLICY.cap_seconds, 0.05 * 2 ** (retry["attempt"] - 1))
        assert 0 <= retry["delay_seconds"] <= ceiling
    assert len(events_named(logs, "account_synced")) == 1


async def test_the_hand_written_decorator_fails_a_permanent_error_at_once() -> None:
    missing = account("missing")
    with capture_logs() as logs:
        response = await sync(step("step_03_wraps_paramspec").app, missing)

    assert response.status_code == 202
    assert CALLS[missing] == 1
    assert events_named(logs, "retry_scheduled") == []
    (failed,) = events_named(logs, "task_failed")
    assert (failed["attempt"], failed["transient"]) == (1, False)
    (crashed,) = events_named(logs, "task_crashed")  # the shield logged it, Starlette saw nothing
    assert crashed["entry_point"] == "sync_account"


async def test_the_hand_written_decorator_waits_for_retry_after_and_gives_up_at_max_attempts() -> (
    None
):
    done_right = step("step_03_wraps_paramspec")
    throttled, down = account("throttled-1"), account("down")
    with capture_logs() as logs:
        await sync(done_right.app, throttled)
        await sync(done_right.app, down)

    first, *down_retries = events_named(logs, "retry_scheduled")
    assert first["delay_seconds"] == 1.0  # the partner's Retry-After: 1, within [base, cap]
    assert CALLS[throttled] == 2
    assert CALLS[down] == done_right.POLICY.max_attempts
    assert [r["reason"] for r in down_retries] == ["ConnectError"] * 3
    (failed,) = events_named(logs, "task_failed")
    assert (failed["attempt"], failed["transient"]) == (4, True)


# Step 4: tenacity and stamina -------------------------------------------------------------

LIBRARIES = ["tenacity", "stamina"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_libraries_keep_the_tasks_name_and_signature(library: str) -> None:
    task = step("step_04_tenacity_stamina").TASKS[library]

    assert task.__name__ == f"sync_account_{library}"
    assert list(inspect.signature(task).parameters) == ["account_id"]
    assert inspect.iscoroutinefunction(task)


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_libraries_retry_transient_errors_and_not_permanent_ones(library: str) -> None:
    app = step("step_04_tenacity_stamina").app
    flaky, missing = account("flaky-2"), account("missing")
    with capture_logs() as logs:
        await sync(app, flaky, library=library)
        await sync(app, missing, library=library)

    assert (CALLS[flaky], CALLS[missing]) == (3, 1)
    assert len(events_named(logs, "account_synced")) == 1
    retry_event = {"tenacity": "tenacity_retry_scheduled", "stamina": "stamina.retry_scheduled"}
    assert len(events_named(logs, retry_event[library])) == 2
    assert len(events_named(logs, "task_crashed")) == 1  # the 404, logged by the shield


@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_libraries_can_honour_retry_after(library: str) -> None:
    throttled = account("throttled-1")
    with capture_logs() as logs:
        await sync(step("step_04_tenacity_stamina").app, throttled, library=library)

    if library == "tenacity":
        (retry,) = events_named(logs, "tenacity_retry_scheduled")
        assert retry["delay_seconds"] == 1.0
    else:
        (retry,) = events_named(logs, "stamina.retry_scheduled")
        assert retry["wait_for"] == 1.0
    assert CALLS[throttled] == 2


# Step 5: durable retries, recorded as events ----------------------------------------------


def durable_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """SQLite in a temp dir, migrated at startup; millisecond retries unless overridden."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lesson06.db'}"
    return make_settings(url, migrate_on_startup=True, **overrides)


async def run_durably(settings: Settings, account_id: str, *statuses: str) -> list[dict[str, Any]]:
    """Submit ``account_id`` to step 5's handler in the reference app; its events once done."""
    app = create_app(settings, handlers=step("step_05_durable").HANDLERS)
    async with serving(app, **AUTH_A) as client:
        response = await client.post(
            "/process-data", json={"data": {"account_id": account_id}, "io_ms": 0}
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        await wait_for_status(client, task_id, *statuses)
        events: list[dict[str, Any]] = (await client.get(f"/tasks/{task_id}/events")).json()
    return events


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_transient_failure_is_recorded_then_retried_when_due(tmp_path: Path) -> None:
    events = await run_durably(durable_settings(tmp_path), account("flaky-2"), "succeeded")

    assert [e["type"] for e in events] == [
        "task_scheduled",
        *["task_started", "attempt_failed", "retry_scheduled"] * 2,
        "task_started",
        "task_succeeded",
    ]
    failed = [e["payload"] for e in events if e["type"] == "attempt_failed"]
    assert [(f["attempt"], f["error_type"], f["status_code"], f["transient"]) for f in failed] == [
        (1, "PartnerBusy", 503, True),
        (2, "PartnerBusy", 503, True),
    ]
    started = [e for e in events if e["type"] == "task_started"]
    assert [s["payload"]["attempt"] for s in started] == [1, 2, 3]
    retries = [e for e in events if e["type"] == "retry_scheduled"]
    for retry, next_start in zip(retries, started[1:], strict=True):
        due = at(retry["payload"]["due_at"])
        assert at(retry["at"]) <= due <= at(next_start["at"])  # never started before it was due


async def test_a_permanent_failure_is_recorded_as_failed_without_a_retry(tmp_path: Path) -> None:
    events = await run_durably(durable_settings(tmp_path), account("missing"), "failed")

    assert [e["type"] for e in events] == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "task_failed",
    ]
    assert events[2]["payload"]["transient"] is False
    assert events[3]["payload"]["error_type"] == "PermanentError"


async def test_the_recorded_retry_waits_for_the_partners_retry_after(tmp_path: Path) -> None:
    settings = durable_settings(tmp_path, task_retry_cap_seconds=5.0)
    events = await run_durably(settings, account("throttled-1"), "succeeded")

    (retry,) = [e["payload"] for e in events if e["type"] == "retry_scheduled"]
    assert retry["delay_seconds"] == 1.0
    assert retry["reason"] == "PartnerBusy"


@pytest.fixture
def database_file(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'durable.db'}"


def poll_task(server: LiveServer, task_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        task: dict[str, Any] = httpx.get(f"{server.url}/tasks/{task_id}", headers=AUTH_A).json()
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task still {task['status']}"
        time.sleep(0.05)


@pytest.mark.live
@pytest.mark.timeout(90)
def test_a_recorded_retry_survives_a_crash_and_runs_in_the_next_process(database_file: str) -> None:
    env = {
        "APP_DATABASE_URL": database_file,
        "APP_LOG_FORMAT": "json",
        "APP_TASK_RETRY_BASE_SECONDS": "0.1",
        "APP_TASK_RETRY_CAP_SECONDS": "5",
        "APP_SWEEP_INTERVAL_SECONDS": "0.1",
    }
    app = f"{LESSON}.step_05_durable:app"
    first = start_server(app, env=env, cwd=ROOT)
    try:
        response = httpx.post(
            f"{first.url}/process-data",
            json={"data": {"account_id": account("throttled-2")}, "io_ms": 0},
            headers=AUTH_A,
        )
        task_id = response.json()["task_id"]
        poll_task(first, task_id, "retrying")  # attempt 1 got 429 with Retry-After: 2
    finally:
        first.kill()  # SIGKILL while the retry waits: nothing in memory survives
    second = start_server(app, env=env, cwd=ROOT)
    try:
        task = poll_task(second, task_id, "succeeded")
        events = httpx.get(f"{second.url}/tasks/{task_id}/events", headers=AUTH_A).json()
    finally:
        second.stop()

    assert task["attempts"] == 2
    assert "task_succeeded" not in [r["event"] for r in first.logs()]
    resumed = [r for r in second.logs() if r["event"] == "task_started"]
    assert [(r["task_id"], r["attempt"]) for r in resumed] == [(task_id, 2)]
    (retry,) = [e for e in events if e["type"] == "retry_scheduled"]
    second_start = [e for e in events if e["type"] == "task_started"][1]
    assert retry["payload"]["delay_seconds"] == 2.0
    assert at(retry["payload"]["due_at"]) <= at(second_start["at"])
