"""An attempt: every start and outcome lands in the log, with its retry decision and its
log lines; driven through the app, and directly on a claim of the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import update
from structlog.testing import capture_logs

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task
from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent
from reference_app.store import Claim, DueTask, Lease, Recorded, TaskStore
from reference_app.tasks.attempt import Attempt
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.deadline import Deadline
from reference_app.tasks.errors import PermanentError, TransientError
from reference_app.tasks.retry import RetryPolicy
from tests.conftest import make_settings, wait_for_status
from tests.reference_app._task_kit import (
    WAIT,
    Attempts,
    FollowUps,
    api_events,
    load,
    post_job,
    schedule,
    serving,
    started_attempts,
    stream,
    types_of,
)

# Outcomes through the app --------------------------------------------------------


async def test_a_successful_task_records_scheduled_started_and_succeeded(
    client: httpx.AsyncClient,
) -> None:
    task_id = await post_job(client)

    task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=WAIT)

    events = await api_events(client, task_id)
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
        events = await api_events(client, task_id)

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
        events = await api_events(client, task_id)

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
        events = await api_events(client, task_id)

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


# Log lines ---------------------------------------------------------------------------------


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


# Driven directly ------------------------------------------------------------------------------


@dataclass
class Direct:
    """An ``Attempt`` on a store of its own, and the retry delays it reported."""

    store: TaskStore
    attempt: Attempt
    lease: Lease
    retries: list[float] = field(default_factory=list)

    async def claim(self, task_id: uuid.UUID) -> Claim:
        claim = await self.store.claim(task_id, self.lease)
        assert claim is not None
        return claim

    async def run(
        self, claim: Claim, handler: Handler, policy: RetryPolicy, *, deadline: float = 60.0
    ) -> Recorded:
        return await self.attempt.run(claim, handler, policy, deadline_seconds=deadline)


GRACE = 0.2
"""The deadline's grace in these tests: how long a cancelled attempt may take to unwind."""


@asynccontextmanager
async def direct(sessions: SessionFactory, **store_options: Any) -> AsyncIterator[Direct]:
    retries: list[float] = []
    lease = Lease("this-host:1:feed", 30.0)
    store = TaskStore(sessions, max_attempts=3, **store_options)
    with ThreadPoolExecutor(1) as pool:
        attempt = Attempt(
            store=store,
            lease=lease,
            sessions=sessions,
            cpu_pool=pool,
            on_retry_scheduled=retries.append,
            deadline=Deadline(grace_seconds=GRACE),
        )
        try:
            yield Direct(store, attempt, lease, retries)
        finally:
            await store.close()


POLICY = RetryPolicy(max_attempts=3, base_seconds=1.0, cap_seconds=60.0)


class Busy(TransientError):
    """A transient failure with an HTTP status and a server's ``Retry-After``."""

    status_code = 503
    retry_after = 7.0


async def test_a_success_is_recorded_with_the_result_and_schedules_no_retry(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)

    async with direct(sessions) as d:
        claim = await d.claim(task_id)
        recorded = await d.run(claim, Attempts(failures=0), POLICY)

    assert recorded == Recorded(superseded=False, started=[])
    assert d.retries == []
    events = await stream(sessions, task_id)
    assert types_of(events) == ["task_scheduled", "task_started", "task_succeeded"]
    assert events[2].payload["attempt"] == 1
    assert events[2].payload["result"] == {"attempt": 1}
    assert events[2].payload["duration_ms"] >= 0


async def test_a_retry_is_scheduled_with_the_policy_delay_and_reported(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)

    async with direct(sessions) as d:
        claim = await d.claim(task_id)
        recorded = await d.run(claim, Attempts(failures=1, error=Busy("busy")), POLICY)

    assert recorded is not None
    assert not recorded.superseded
    # Retry-After 7 s, within the policy's [1 s, 60 s]: the delay recorded and reported.
    assert d.retries == [7.0]
    events = await stream(sessions, task_id)
    failed, retry = events[2], events[3]
    assert (failed.type, retry.type) == ("attempt_failed", "retry_scheduled")
    assert (failed.payload["error_type"], failed.payload["transient"]) == ("Busy", True)
    assert failed.payload["status_code"] == 503
    assert "duration_ms" in failed.payload
    assert (retry.payload["delay_seconds"], retry.payload["reason"]) == (7.0, "Busy")
    task = await load(sessions, task_id)
    assert task.status == "retrying"
    assert task.run_after == retry.at + timedelta(seconds=7)


async def test_a_permanent_failure_fails_the_task_and_schedules_no_retry(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)

    async with direct(sessions) as d:
        claim = await d.claim(task_id)
        await d.run(claim, Attempts(failures=1, error=PermanentError("x" * 900)), POLICY)

    assert d.retries == []
    events = await stream(sessions, task_id)
    assert types_of(events)[2:] == ["attempt_failed", "task_failed"]
    assert events[2].payload["error"] == "x" * 500  # a long message is cut, not stored whole
    assert (await load(sessions, task_id)).status == "failed"


async def test_a_transient_failure_on_the_last_attempt_fails_the_task(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    handler = Attempts(failures=99)

    async with direct(sessions) as d:
        for _ in range(3):
            claim = await d.store.claim(task_id, d.lease)
            if claim is None:  # retrying, not scheduled: what a sweep claims
                (claim,) = await d.store.claim_due(1, d.lease)
            await d.run(claim, handler, RetryPolicy(3, 0.0, 0.0))

    assert d.retries == [0.0, 0.0]
    assert types_of(await stream(sessions, task_id))[-1] == "task_failed"
    assert (await load(sessions, task_id)).attempts == 3


async def test_a_cancelled_attempt_hands_the_task_back_and_reraises(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    started = asyncio.Event()

    async def hang(ctx: TaskContext) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with direct(sessions) as d:
        claim = await d.claim(task_id)
        with capture_logs() as logs:
            running = asyncio.create_task(d.run(claim, hang, POLICY))
            async with asyncio.timeout(WAIT):
                await started.wait()
            running.cancel()
            await asyncio.wait([running], timeout=WAIT)

    assert running.cancelled()
    assert d.retries == []  # due at once: nothing to wake up for later
    events = await stream(sessions, task_id)
    assert types_of(events)[2:] == ["attempt_failed", "retry_scheduled"]
    assert events[2].payload["error_type"] == "Cancelled"
    assert events[3].payload["delay_seconds"] == 0.0
    assert "task_interrupted" in [e["event"] for e in logs]


async def test_an_attempt_whose_lease_was_taken_over_is_superseded_and_records_nothing(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    body_started, finish = asyncio.Event(), asyncio.Event()

    async def slow(ctx: TaskContext) -> dict[str, Any]:
        body_started.set()
        await finish.wait()
        return {"late": True}

    async with direct(sessions) as d:
        claim = await d.claim(task_id)
        with capture_logs() as logs:
            running = asyncio.create_task(d.run(claim, slow, POLICY))
            async with asyncio.timeout(WAIT):
                await body_started.wait()
            # Meanwhile the sweeper decided this process died and another attempt ran.
            await _expire_lease(sessions, task_id)
            assert (await d.store.recover_expired_leases()).recovered == [task_id]
            (second,) = await d.store.claim_due(1, Lease("other-host:2:beef", 30.0))
            await d.store.record_outcome(
                second,
                [NewEvent(EventType.TASK_SUCCEEDED, {"attempt": 2, "result": {"late": False}})],
            )
            finish.set()
            recorded = await asyncio.wait_for(running, WAIT)

    assert recorded == Recorded(superseded=True)
    assert "attempt_superseded" in [e["event"] for e in logs]
    task = await load(sessions, task_id)
    assert (task.status, task.attempts, task.result) == ("succeeded", 2, {"late": False})
    assert types_of(await stream(sessions, task_id)).count("task_succeeded") == 1


async def test_the_outcome_reports_the_streams_the_terminal_hooks_started(
    sessions: SessionFactory,
) -> None:
    follow_ups = FollowUps()

    task_id = await schedule(sessions)
    async with direct(sessions, terminal_hooks=[follow_ups]) as d:
        claim = await d.claim(task_id)
        recorded = await d.run(claim, Attempts(failures=0), POLICY)

    (follow_up,) = follow_ups.started
    assert recorded == Recorded(superseded=False, started=[DueTask(follow_up, "follow_up")])
    assert (await load(sessions, follow_up)).status == "scheduled"


async def _expire_lease(sessions: SessionFactory, task_id: uuid.UUID) -> None:
    """Move the running attempt's lease into the past, as if its renewals had stopped."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_an_attempt_that_ignores_its_deadline_is_recorded_as_timed_out_and_its_late_result_discarded(  # noqa: E501
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    carry_on = asyncio.Event()
    ended = asyncio.Event()

    async def stubborn(ctx: TaskContext) -> dict[str, Any]:
        try:
            while True:
                try:
                    await carry_on.wait()
                    return {"late": True}
                except asyncio.CancelledError:
                    continue  # ignores cancellation
        finally:
            ended.set()

    async with direct(sessions) as d:
        claim = await d.claim(task_id)
        with capture_logs() as logs:
            recorded = await d.run(claim, stubborn, POLICY, deadline=0.05)
            carry_on.set()
            await asyncio.wait_for(ended.wait(), WAIT)
            await asyncio.sleep(0)  # let the abandoned task's end be logged

    assert recorded == Recorded(superseded=False, started=[])
    assert len(d.retries) == 1
    assert 0.0 <= d.retries[0] <= 60.0  # full jitter, capped
    events = await stream(sessions, task_id)
    assert types_of(events)[2:] == ["attempt_failed", "retry_scheduled"]  # no late success
    assert events[2].payload["error_type"] == "AttemptTimeout"
    seen = [e["event"] for e in logs]
    assert seen.index("attempt_overdue") < seen.index("abandoned_attempt_ended")
    assert (await load(sessions, task_id)).status == "retrying"


async def test_a_cancel_requested_before_a_heartbeat_saw_it_turns_a_failure_into_the_cancel(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    body_started, finish = asyncio.Event(), asyncio.Event()

    async def flaky(ctx: TaskContext) -> dict[str, Any]:
        body_started.set()
        await finish.wait()
        raise TransientError("busy")

    async with direct(sessions) as d:  # a 30 s lease: no heartbeat runs during the test
        claim = await d.claim(task_id)
        running = asyncio.create_task(d.run(claim, flaky, POLICY))
        await asyncio.wait_for(body_started.wait(), WAIT)
        await d.store.cancel("org-a", task_id, by="alice")
        finish.set()
        recorded = await asyncio.wait_for(running, WAIT)

    assert not recorded.superseded
    assert d.retries == []  # no retry after a cancel
    events = await stream(sessions, task_id)
    assert types_of(events)[2:] == ["cancel_requested", "attempt_failed", "task_cancelled"]
    assert (await load(sessions, task_id)).status == "cancelled"
