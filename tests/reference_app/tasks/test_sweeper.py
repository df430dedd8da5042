"""The sweeper: re-drives due work, survives its own failures, and stops cleanly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from structlog.testing import capture_logs

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task
from reference_app.db.writer import Writer
from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent, append_events
from reference_app.tasks.context import TaskContext
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.runner import TaskRunner
from reference_app.tasks.scheduling import Submission, submit_task
from reference_app.tasks.sweeper import Sweeper

WAIT = 15.0
HOUR = 3600.0


class Recorder:
    """A handler that records which tasks it ran."""

    def __init__(self) -> None:
        self.ran: list[uuid.UUID] = []

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.ran.append(ctx.task_id)
        return {}


class ObservedSweeper(Sweeper):
    """A sweeper that counts its passes, the first ``failures`` of which raise."""

    def __init__(self, runner: TaskRunner, *, interval: float, failures: int = 0) -> None:
        super().__init__(runner, interval=interval)
        self.passes = 0
        self.finished = 0
        self.failures = failures

    async def sweep_once(self, *, recover: bool = True) -> int:
        self.passes += 1
        if self.passes <= self.failures:
            raise RuntimeError("database hiccup")
        started = await super().sweep_once(recover=recover)
        self.finished += 1
        return started


@asynccontextmanager
async def running(sessions: SessionFactory, handler: Recorder) -> AsyncIterator[TaskRunner]:
    with ThreadPoolExecutor(1) as pool:
        runner = TaskRunner(
            sessions=sessions,
            handlers={"process_data": handler},
            policy=RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=0.0),
            capacity=8,
            lease_seconds=30.0,
            cpu_pool=pool,
        )
        try:
            yield runner
        finally:
            await runner.drain(0)


async def schedule(sessions: SessionFactory) -> uuid.UUID:
    submission = Submission(org_id="org-a", user_id="alice", kind="process_data", params={})
    return (
        await submit_task(Writer(sessions, group_commit=False), submission, max_attempts=3)
    ).task_id


async def start_attempt(
    sessions: SessionFactory, task_id: uuid.UUID, *, lease_left: timedelta
) -> None:
    started = NewEvent(
        EventType.TASK_STARTED,
        {
            "attempt": 1,
            "lease_owner": "other-host:1:cafe",
            "lease_expires_at": (utcnow() + lease_left).isoformat(),
        },
    )
    async with session_scope(sessions) as session:
        await append_events(session, task_id, expected_version=1, events=[started])


async def schedule_retry(sessions: SessionFactory, *, due_in: timedelta) -> uuid.UUID:
    """A task whose first attempt failed, with its retry due ``due_in`` from now."""
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=30))
    failed = NewEvent(
        EventType.ATTEMPT_FAILED,
        {"attempt": 1, "error_type": "TransientError", "error": "busy", "transient": True},
    )
    retry = NewEvent(
        EventType.RETRY_SCHEDULED,
        {
            "attempt": 1,
            "due_at": (failed.at + due_in).isoformat(),
            "delay_seconds": due_in.total_seconds(),
            "reason": "TransientError",
        },
        at=failed.at,
    )
    async with session_scope(sessions) as session:
        await append_events(session, task_id, expected_version=2, events=[failed, retry])
    return task_id


async def status_of(sessions: SessionFactory, task_id: uuid.UUID) -> str:
    async with session_scope(sessions) as session:
        task = await session.get(Task, task_id)
    assert task is not None
    return task.status


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, until state that other tasks change satisfies ``condition``."""
    async with asyncio.timeout(WAIT):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def sweeper_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "sweeper" and not t.done()]


# One pass ---------------------------------------------------------------------------


async def test_a_pass_runs_due_scheduled_and_retrying_tasks_but_not_future_retries(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()
    scheduled = await schedule(sessions)
    retry_due = await schedule_retry(sessions, due_in=timedelta(seconds=-1))
    retry_later = await schedule_retry(sessions, due_in=timedelta(hours=1))

    async with running(sessions, recorder) as runner:
        with capture_logs() as logs:
            started = await Sweeper(runner, interval=HOUR).sweep_once()
        await runner.drain(WAIT)

    assert started == 2
    assert sorted(recorder.ran) == sorted([scheduled, retry_due])
    assert await status_of(sessions, scheduled) == "succeeded"
    assert await status_of(sessions, retry_due) == "succeeded"
    assert await status_of(sessions, retry_later) == "retrying"
    (finished,) = [e for e in logs if e["event"] == "sweep_finished"]
    assert (finished["recovered"], finished["started"]) == (0, 2)


async def test_a_pass_recovers_an_expired_lease_and_reruns_the_task(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=-1))

    async with running(sessions, recorder) as runner:
        assert await Sweeper(runner, interval=HOUR).sweep_once() == 1
        await runner.drain(WAIT)

    assert recorder.ran == [task_id]
    assert await status_of(sessions, task_id) == "succeeded"


async def test_a_pass_with_nothing_due_starts_nothing(sessions: SessionFactory) -> None:
    recorder = Recorder()
    await schedule_retry(sessions, due_in=timedelta(hours=1))

    async with running(sessions, recorder) as runner:
        with capture_logs() as logs:
            assert await Sweeper(runner, interval=HOUR).sweep_once() == 0

    assert recorder.ran == []
    assert logs == []


# The loop -----------------------------------------------------------------------------


async def test_the_loop_sweeps_once_at_start(sessions: SessionFactory) -> None:
    recorder = Recorder()
    task_id = await schedule(sessions)

    async with running(sessions, recorder) as runner:
        sweeper = Sweeper(runner, interval=HOUR)
        sweeper.start()
        try:
            await wait_until(lambda: task_id in recorder.ran)
        finally:
            await sweeper.stop()
        await runner.drain(WAIT)

    assert await status_of(sessions, task_id) == "succeeded"


async def test_wake_sweeps_now_rather_than_at_the_next_interval(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()

    async with running(sessions, recorder) as runner:
        sweeper = ObservedSweeper(runner, interval=HOUR)
        sweeper.start()
        try:
            await wait_until(lambda: sweeper.finished == 1)
            task_id = await schedule(sessions)
            await asyncio.sleep(0.05)  # the loop is parked for an hour

            sweeper.wake()

            await wait_until(lambda: task_id in recorder.ran)
            assert sweeper.passes == 2
        finally:
            await sweeper.stop()


async def test_the_loop_survives_a_failed_pass_and_keeps_sweeping(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()
    task_id = await schedule(sessions)

    async with running(sessions, recorder) as runner:
        sweeper = ObservedSweeper(runner, interval=0.01, failures=2)
        with capture_logs() as logs:
            sweeper.start()
            try:
                await wait_until(lambda: task_id in recorder.ran)
            finally:
                await sweeper.stop()

    failed = [e for e in logs if e["event"] == "sweep_failed"]
    assert len(failed) == 2
    assert all(e["exc_info"] is True and e["log_level"] == "error" for e in failed)
    assert sweeper.passes >= 3


async def test_stop_ends_the_loop(sessions: SessionFactory) -> None:
    async with running(sessions, Recorder()) as runner:
        sweeper = ObservedSweeper(runner, interval=0.01)
        sweeper.start()
        await wait_until(lambda: sweeper.passes >= 2)
        assert len(sweeper_tasks()) == 1

        await asyncio.wait_for(sweeper.stop(), WAIT)

        assert sweeper_tasks() == []
        passes = sweeper.passes
        await asyncio.sleep(0.05)  # five intervals
        assert sweeper.passes == passes


async def test_stop_is_safe_before_start_and_twice(sessions: SessionFactory) -> None:
    async with running(sessions, Recorder()) as runner:
        sweeper = Sweeper(runner, interval=HOUR)
        await sweeper.stop()
        sweeper.start()
        await sweeper.stop()
        await sweeper.stop()

        assert sweeper_tasks() == []


async def test_stop_right_after_a_wake_still_ends_the_loop(sessions: SessionFactory) -> None:
    # A task finishing during shutdown wakes the sweeper just as the lifespan stops it.
    async with running(sessions, Recorder()) as runner:
        sweeper = ObservedSweeper(runner, interval=HOUR)
        sweeper.start()
        await wait_until(lambda: sweeper.finished == 1)
        await asyncio.sleep(0.05)  # let the loop park on its wake event
        stopping: asyncio.Task[None] | None = None
        try:
            sweeper.wake()
            stopping = asyncio.create_task(sweeper.stop())
            await asyncio.wait([stopping], timeout=5)

            assert stopping.done(), "stop() is still waiting for the loop"
            assert sweeper_tasks() == []
        finally:
            leftovers = [*sweeper_tasks(), *([stopping] if stopping is not None else [])]
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.wait(leftovers, timeout=5)
