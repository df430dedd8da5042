"""The sweeper: re-drives due work, survives its own failures, and stops cleanly."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from structlog.testing import capture_logs

from reference_app.db.engine import SessionFactory
from reference_app.store import TaskStore
from reference_app.tasks.context import TaskContext
from reference_app.tasks.sweeper import Sweeper
from reference_app.tasks.worker import Worker
from tests.reference_app._task_kit import (
    HOUR,
    WAIT,
    FollowUps,
    Gate,
    Working,
    load,
    schedule,
    schedule_retry,
    start_attempt,
    status_counts,
    wait_until,
    working,
)


class Recorder:
    """A handler that records which tasks it ran."""

    def __init__(self) -> None:
        self.ran: list[uuid.UUID] = []

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.ran.append(ctx.task_id)
        return {}


class ObservedSweeper(Sweeper):
    """A sweeper that counts its passes, the first ``failures`` of which raise."""

    def __init__(
        self, store: TaskStore, worker: Worker, *, interval: float, failures: int = 0
    ) -> None:
        super().__init__(store, worker, interval=interval)
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


def running(
    sessions: SessionFactory, handler: Any, **options: Any
) -> AbstractAsyncContextManager[Working]:
    return working(sessions, handler, **{"capacity": 8, **options})


def observed(w: Working, *, interval: float, failures: int = 0) -> ObservedSweeper:
    return ObservedSweeper(w.store, w.worker, interval=interval, failures=failures)


async def status_of(sessions: SessionFactory, task_id: uuid.UUID) -> str:
    return (await load(sessions, task_id)).status


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

    async with running(sessions, recorder) as w:
        with capture_logs() as logs:
            started = await w.sweeper(HOUR).sweep_once()
        await w.worker.drain(WAIT)

    assert started == 2
    assert sorted(recorder.ran) == sorted([scheduled, retry_due])
    assert await status_of(sessions, scheduled) == "succeeded"
    assert await status_of(sessions, retry_due) == "succeeded"
    assert await status_of(sessions, retry_later) == "retrying"
    (finished,) = [e for e in logs if e["event"] == "sweep_finished"]
    assert (finished["recovered"], finished["started"]) == (0, 2)


async def test_every_pass_tells_on_pass_what_it_claimed_and_recovered(
    sessions: SessionFactory,
) -> None:
    orphan = await schedule(sessions)
    await start_attempt(sessions, orphan, lease_left=timedelta(seconds=-1))
    await schedule(sessions)
    told: list[tuple[int, int]] = []

    async with running(sessions, Recorder()) as w:
        sweeper = Sweeper(w.store, w.worker, interval=HOUR, on_pass=lambda *seen: told.append(seen))
        await sweeper.sweep_once()
        await w.worker.drain(WAIT)
        await sweeper.sweep_once()

    # The orphan's retry and the scheduled task; then nothing is left to do, and it says so.
    assert told == [(2, 1), (0, 0)]


async def test_a_pass_recovers_an_expired_lease_and_reruns_the_task(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=-1))

    async with running(sessions, recorder) as w:
        assert await w.sweeper(HOUR).sweep_once() == 1
        await w.worker.drain(WAIT)

    assert recorder.ran == [task_id]
    assert await status_of(sessions, task_id) == "succeeded"


async def test_a_pass_with_nothing_due_starts_nothing(sessions: SessionFactory) -> None:
    recorder = Recorder()
    await schedule_retry(sessions, due_in=timedelta(hours=1))

    async with running(sessions, recorder) as w:
        with capture_logs() as logs:
            assert await w.sweeper(HOUR).sweep_once() == 0

    assert recorder.ran == []
    assert logs == []


# The loop -----------------------------------------------------------------------------


async def test_the_loop_sweeps_once_at_start(sessions: SessionFactory) -> None:
    recorder = Recorder()
    task_id = await schedule(sessions)

    async with running(sessions, recorder) as w:
        sweeper = w.sweeper(HOUR)
        sweeper.start()
        try:
            await wait_until(lambda: task_id in recorder.ran)
        finally:
            await sweeper.stop()
        await w.worker.drain(WAIT)

    assert await status_of(sessions, task_id) == "succeeded"


async def test_wake_sweeps_now_rather_than_at_the_next_interval(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()

    async with running(sessions, recorder) as w:
        sweeper = observed(w, interval=HOUR)
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

    async with running(sessions, recorder) as w:
        sweeper = observed(w, interval=0.01, failures=2)
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
    async with running(sessions, Recorder()) as w:
        sweeper = observed(w, interval=0.01)
        sweeper.start()
        await wait_until(lambda: sweeper.passes >= 2)
        assert len(sweeper_tasks()) == 1

        await asyncio.wait_for(sweeper.stop(), WAIT)

        assert sweeper_tasks() == []
        passes = sweeper.passes
        await asyncio.sleep(0.05)  # five intervals
        assert sweeper.passes == passes


async def test_stop_is_safe_before_start_and_twice(sessions: SessionFactory) -> None:
    async with running(sessions, Recorder()) as w:
        sweeper = w.sweeper(HOUR)
        await sweeper.stop()
        sweeper.start()
        await sweeper.stop()
        await sweeper.stop()

        assert sweeper_tasks() == []


async def test_stop_right_after_a_wake_still_ends_the_loop(sessions: SessionFactory) -> None:
    # A task finishing during shutdown wakes the sweeper just as the lifespan stops it.
    async with running(sessions, Recorder()) as w:
        sweeper = observed(w, interval=HOUR)
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


# Handing work to the worker --------------------------------------------------------------


async def test_a_pass_claims_no_more_than_the_free_slots_and_leaves_the_rest_due(
    sessions: SessionFactory,
) -> None:
    gate = Gate()
    for _ in range(3):
        await schedule(sessions)

    async with running(sessions, gate, capacity=2) as w:
        try:
            w.worker.reserve()  # one slot taken by a request's task
            assert await w.sweeper(HOUR).sweep_once() == 1
            assert w.worker.free_slots == 0
            assert await w.sweeper(HOUR).sweep_once() == 0  # no slot, no claim
            assert await status_counts(sessions) == {"running": 1, "scheduled": 2}
        finally:
            gate.release.set()
            w.worker.release()
        await w.worker.drain(WAIT)


async def test_a_pass_with_every_slot_busy_asks_to_be_woken_when_one_frees(
    sessions: SessionFactory,
) -> None:
    async with running(sessions, Gate(), capacity=1) as w:
        w.worker.reserve()  # the only slot is busy; a retry comes due and wakes the sweeper
        assert await w.sweeper(HOUR).sweep_once(recover=False) == 0
        w.worker.work_due.clear()

        w.worker.release()

        assert w.worker.work_due.is_set()  # the next pass comes now, not an interval later


async def test_a_freed_slot_wakes_the_loop_for_the_work_that_waited(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()
    task_ids = [await schedule(sessions) for _ in range(3)]

    # One slot and an hour between sweeps: only the wake-ups of freed slots run all three.
    async with running(sessions, recorder, capacity=1) as w:
        sweeper = observed(w, interval=HOUR)
        sweeper.start()
        try:
            await wait_until(lambda: len(recorder.ran) == 3)
        finally:
            await sweeper.stop()
        await w.worker.drain(WAIT)

    assert sorted(recorder.ran) == sorted(task_ids)
    assert await status_counts(sessions) == {"succeeded": 3}
    assert sweeper.passes >= 3


async def test_a_pass_runs_what_the_terminal_hooks_of_a_recovered_task_started(
    sessions: SessionFactory,
) -> None:
    recorder = Recorder()
    follow_ups = FollowUps()

    # Its only attempt's process died: recovering the lease fails the task for good.
    task_id = await schedule(sessions, max_attempts=1)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=-1))

    async with running(
        sessions, recorder, terminal_hooks=[follow_ups], kinds=["process_data", FollowUps.KIND]
    ) as w:
        await w.sweeper(HOUR).sweep_once()
        (follow_up_id,) = follow_ups.started
        await wait_until(lambda: follow_up_id in recorder.ran)
        await w.worker.drain(WAIT)

    assert await status_of(sessions, task_id) == "failed"
    assert await status_of(sessions, follow_up_id) == "succeeded"
