"""The task runner: every attempt and outcome lands in the log, with retries, leases and a cap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import func, select
from structlog.testing import capture_logs

from reference_app.core.clock import utcnow
from reference_app.core.config import Settings
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.db.writer import Writer
from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent, append_events
from reference_app.main import create_app
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.errors import PermanentError, TransientError
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.runner import TaskRunner
from reference_app.tasks.scheduling import Submission, submit_task
from reference_app.tasks.sweeper import Sweeper
from tests.conftest import AUTH_A, make_settings, wait_for_status

JOB = {"data": {"n": 1}, "io_ms": 0}
WAIT = 15.0


@asynccontextmanager
async def serving(
    settings: Settings, handlers: Mapping[str, Handler] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an org A client over ASGI."""
    app = create_app(settings, handlers=handlers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH_A
        ) as client:
            yield client


async def post_job(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.post("/process-data", json=JOB, headers=headers)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def events_of(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/tasks/{task_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def started_attempts(events: list[dict[str, Any]]) -> list[int]:
    return [e["payload"]["attempt"] for e in events if e["type"] == "task_started"]


class Attempts:
    """A handler that fails its first ``failures`` attempts of each task with ``error``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or TransientError("upstream busy")
        self.calls: dict[uuid.UUID, int] = {}

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.calls[ctx.task_id] = self.calls.get(ctx.task_id, 0) + 1
        if self.calls[ctx.task_id] <= self.failures:
            raise self.error
        return {"attempt": ctx.attempt}


# Outcomes through the app --------------------------------------------------------


async def test_a_successful_task_records_scheduled_started_and_succeeded(
    client: httpx.AsyncClient,
) -> None:
    task_id = await post_job(client)

    task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=WAIT)

    events = await events_of(client, task_id)
    assert task["status"] == "succeeded"
    assert task["attempts"] == 1
    assert types_of(events) == ["task_scheduled", "task_started", "task_succeeded"]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert started_attempts(events) == [1]
    assert events[2]["payload"]["result"] == task["result"]


async def test_a_transient_error_is_retried_until_max_attempts_then_fails(
    database_url: str,
) -> None:
    handler = Attempts(failures=99)
    settings = make_settings(database_url, task_max_attempts=3)

    async with serving(settings, {"process_data": handler}) as client:
        task_id = await post_job(client)
        task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=WAIT)
        events = await events_of(client, task_id)

    assert task["status"] == "failed"
    assert types_of(events) == [
        "task_scheduled",
        *["task_started", "attempt_failed", "retry_scheduled"] * 2,
        *["task_started", "attempt_failed", "task_failed"],
    ]
    assert started_attempts(events) == [1, 2, 3]
    assert task["attempts"] == 3 == handler.calls[uuid.UUID(task_id)]
    failures = [e["payload"] for e in events if e["type"] == "attempt_failed"]
    assert [(f["attempt"], f["error_type"], f["transient"]) for f in failures] == [
        (1, "TransientError", True),
        (2, "TransientError", True),
        (3, "TransientError", True),
    ]
    assert task["last_error"] == "TransientError: upstream busy"


async def test_a_transient_error_then_success_ends_succeeded_on_attempt_two(
    database_url: str,
) -> None:
    settings = make_settings(database_url, task_max_attempts=3)

    async with serving(settings, {"process_data": Attempts(failures=1)}) as client:
        task_id = await post_job(client)
        task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=WAIT)
        events = await events_of(client, task_id)

    assert task["status"] == "succeeded"
    assert task["attempts"] == 2
    assert task["result"] == {"attempt": 2}
    assert types_of(events) == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "retry_scheduled",
        "task_started",
        "task_succeeded",
    ]
    assert started_attempts(events) == [1, 2]


@pytest.mark.parametrize(
    "error",
    [ValueError("bad data"), PermanentError("no such file")],
    ids=["ValueError", "PermanentError"],
)
async def test_a_permanent_error_fails_at_once_after_one_attempt(
    database_url: str, error: Exception
) -> None:
    handler = Attempts(failures=99, error=error)
    settings = make_settings(database_url, task_max_attempts=3)

    async with serving(settings, {"process_data": handler}) as client:
        task_id = await post_job(client)
        task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=WAIT)
        events = await events_of(client, task_id)

    assert task["status"] == "failed"
    assert task["attempts"] == 1 == handler.calls[uuid.UUID(task_id)]
    assert types_of(events) == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "task_failed",
    ]
    assert events[2]["payload"]["transient"] is False
    assert task["last_error"] == f"{type(error).__name__}: {error}"


async def test_a_transient_failure_logs_one_warning_and_a_permanent_one_its_traceback(
    database_url: str,
) -> None:
    settings = make_settings(database_url, task_max_attempts=2)

    # create_app configures structlog, so logs are captured inside each app's life.
    async with serving(settings, {"process_data": Attempts(failures=1)}) as client:
        with capture_logs() as first:
            await wait_for_status(client, await post_job(client), "succeeded", seconds=WAIT)
    async with serving(
        settings, {"process_data": Attempts(failures=9, error=ValueError("bad"))}
    ) as client:
        with capture_logs() as second:
            await wait_for_status(client, await post_job(client), "failed", seconds=WAIT)

    (transient,) = [e for e in first if e["event"] == "attempt_failed"]
    (permanent,) = [e for e in second if e["event"] == "attempt_failed"]
    assert (transient["log_level"], transient["transient"]) == ("warning", True)
    assert "exc_info" not in transient  # an expected blip is one line, not a traceback
    assert (permanent["log_level"], permanent["transient"]) == ("error", False)
    assert permanent["exc_info"] is True


async def test_a_retry_runs_when_due_not_at_the_next_sweep(database_url: str) -> None:
    # A sweep interval far longer than the wait we allow: only the due-time wake-up can do it.
    settings = make_settings(database_url, task_max_attempts=2, sweep_interval_seconds=120)

    async with serving(settings, {"process_data": Attempts(failures=1)}) as client:
        task_id = await post_job(client)
        task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=20)

    assert (task["status"], task["attempts"]) == ("succeeded", 2)


# Leases and cancellation, driven directly --------------------------------------------


async def schedule(sessions: SessionFactory) -> uuid.UUID:
    submission = Submission(
        org_id="org-a", user_id="alice", kind="process_data", params=JOB, request_id="req-1"
    )
    accepted = await submit_task(Writer(sessions, group_commit=False), submission, max_attempts=3)
    return accepted.task_id


async def stream(sessions: SessionFactory, task_id: uuid.UUID) -> list[TaskEvent]:
    async with session_scope(sessions) as session:
        query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.version)
        return list(await session.scalars(query))


async def load(sessions: SessionFactory, task_id: uuid.UUID) -> Task:
    async with session_scope(sessions) as session:
        task = await session.get(Task, task_id)
    assert task is not None
    return task


@asynccontextmanager
async def running(
    sessions: SessionFactory, handler: Handler, *, capacity: int = 4
) -> AsyncIterator[TaskRunner]:
    """A runner of this process, with retries due at once; its attempts are drained at exit."""
    with ThreadPoolExecutor(1) as pool:
        runner = TaskRunner(
            sessions=sessions,
            handlers={"process_data": handler},
            policy=RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=0.0),
            capacity=capacity,
            lease_seconds=30.0,
            cpu_pool=pool,
        )
        try:
            yield runner
        finally:
            await runner.drain(0)


async def start_attempt_of_dead_owner(
    sessions: SessionFactory, task_id: uuid.UUID, *, lease_left: timedelta
) -> None:
    """``task_started`` as a process writes it just before it dies mid-attempt."""
    started = NewEvent(
        EventType.TASK_STARTED,
        {
            "attempt": 1,
            "lease_owner": "dead-host:4242:deadbeef",
            "lease_expires_at": (utcnow() + lease_left).isoformat(),
        },
    )
    async with session_scope(sessions) as session:
        await append_events(session, task_id, expected_version=1, events=[started])


async def test_an_expired_lease_is_failed_and_the_task_runs_again(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    await start_attempt_of_dead_owner(sessions, task_id, lease_left=timedelta(seconds=-1))

    async with running(sessions, Attempts(failures=0)) as runner:
        assert await runner.claim_due() == 0  # running, not due, until its lease is recovered
        assert await runner.recover_expired_leases() == 1
        assert await runner.claim_due() == 1
        await runner.drain(WAIT)

    events = await stream(sessions, task_id)
    assert [e.type for e in events] == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "retry_scheduled",
        "task_started",
        "task_succeeded",
    ]
    assert events[2].payload["error_type"] == "LeaseExpired"
    assert events[2].payload["transient"] is True
    assert "dead-host:4242:deadbeef" in events[2].payload["error"]
    assert events[4].payload["attempt"] == 2
    assert events[4].payload["lease_owner"] == runner.owner
    task = await load(sessions, task_id)
    assert (task.status, task.attempts, task.result) == ("succeeded", 2, {"attempt": 2})


async def test_a_lease_that_is_still_live_is_left_alone(sessions: SessionFactory) -> None:
    task_id = await schedule(sessions)
    await start_attempt_of_dead_owner(sessions, task_id, lease_left=timedelta(minutes=5))

    async with running(sessions, Attempts(failures=0)) as runner:
        assert await runner.recover_expired_leases() == 0
        assert await runner.claim_due() == 0

    assert [e.type for e in await stream(sessions, task_id)] == [
        "task_scheduled",
        "task_started",
    ]


async def test_a_cancelled_attempt_is_recorded_and_run_again_later(
    sessions: SessionFactory,
) -> None:
    hanging = asyncio.Event()

    async def hang_on_first_attempt(ctx: TaskContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            hanging.set()
            await asyncio.Event().wait()
        return {"attempt": ctx.attempt}

    task_id = await schedule(sessions)
    async with running(sessions, hang_on_first_attempt) as runner:
        sweeper = Sweeper(runner, interval=3600)
        assert await sweeper.sweep_once() == 1
        async with asyncio.timeout(WAIT):
            await hanging.wait()
        (attempt,) = [t for t in asyncio.all_tasks() if t.get_name() == f"task-{task_id}"]

        attempt.cancel()
        await asyncio.wait([attempt], timeout=WAIT)

        assert attempt.cancelled()
        assert runner.free_slots == runner.capacity
        assert (await load(sessions, task_id)).status == "retrying"
        assert await sweeper.sweep_once() == 1
        await runner.drain(WAIT)

    events = await stream(sessions, task_id)
    assert [e.type for e in events] == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "retry_scheduled",
        "task_started",
        "task_succeeded",
    ]
    assert events[2].payload["error_type"] == "Cancelled"
    assert events[2].payload["transient"] is True
    assert events[3].payload["delay_seconds"] == 0.0
    task = await load(sessions, task_id)
    assert (task.status, task.attempts) == ("succeeded", 2)


# Bounded concurrency -------------------------------------------------------------------


class Gate:
    """A handler that holds every attempt until ``release`` is set, counting how many wait."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return {"attempt": ctx.attempt}


async def test_a_request_cannot_take_a_slot_a_sweep_is_claiming(
    sessions: SessionFactory,
) -> None:
    gate = Gate()
    for _ in range(3):
        await schedule(sessions)

    async with running(sessions, gate, capacity=2) as runner:
        reserved = False
        try:
            sweep = asyncio.create_task(runner.claim_due())
            await asyncio.sleep(0)  # the sweep has counted 2 free slots and awaits the database
            reserved = runner.try_reserve()  # what an endpoint does meanwhile
            started = await sweep

            assert started + reserved <= runner.capacity
            assert runner.free_slots >= 0
        finally:
            gate.release.set()
            if reserved:
                runner.release()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, until state that other tasks change satisfies ``condition``."""
    async with asyncio.timeout(WAIT):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def status_counts(sessions: SessionFactory) -> dict[str, int]:
    async with session_scope(sessions) as session:
        rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
        return {status: count for status, count in rows}


async def test_work_over_the_cap_stays_scheduled_until_a_slot_frees(
    database_url: str, sessions: SessionFactory
) -> None:
    gate = Gate()
    settings = make_settings(database_url, max_concurrent_tasks=2)

    async with serving(settings, {"process_data": gate}) as client:
        # ASGITransport runs a response's background tasks before it returns, so the
        # requests whose task got a slot stay open until the gate opens.
        posts = [asyncio.create_task(client.post("/process-data", json=JOB)) for _ in range(10)]
        try:
            await wait_until(lambda: gate.running == 2 and sum(p.done() for p in posts) >= 8)
            await asyncio.sleep(0.3)  # several sweeps, any of which could start a third attempt

            assert gate.peak == 2
            assert await status_counts(sessions) == {"running": 2, "scheduled": 8}
        finally:
            gate.release.set()
            await asyncio.wait(posts, timeout=WAIT)

        responses = [p.result() for p in posts]
        assert [r.status_code for r in responses] == [202] * 10
        for response in responses:
            await wait_for_status(client, response.json()["task_id"], "succeeded", seconds=WAIT)

    assert gate.peak == 2
    assert await status_counts(sessions) == {"succeeded": 10}


# Log context ------------------------------------------------------------------------------


async def test_task_logs_carry_task_id_kind_attempt_and_the_scheduling_request_id(
    database_url: str,
) -> None:
    settings = make_settings(database_url, task_max_attempts=3)

    async with serving(settings, {"process_data": Attempts(failures=1)}) as client:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            task_id = await post_job(client, **{"X-Request-ID": "req-runner-42"})
            # Attempt 1 runs after the response; attempt 2, a retry, only the sweeper runs.
            await wait_for_status(client, task_id, "succeeded", seconds=WAIT)

    task_logs = [e for e in logs if e.get("task_id") == task_id]
    assert [(e["event"], e["attempt"]) for e in task_logs] == [
        ("task_started", 1),
        ("attempt_failed", 1),
        ("retry_scheduled", 1),
        ("task_started", 2),
        ("task_succeeded", 2),
    ]
    assert {(e["kind"], e["request_id"]) for e in task_logs} == {("process_data", "req-runner-42")}
