"""The worker: slots cap the attempts in flight, work without a slot waits in the database,
expired leases and cancelled attempts are handed back, and retries run when due.

What an attempt records (outcomes, retry decisions, log lines) is in test_attempt.py; the
lease heartbeat in test_lease.py; the store's statements in store/test_task_store.py.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, cast

from reference_app.db.engine import SessionFactory
from reference_app.store import DueTask, TaskStore
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.kinds import TaskKind
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.worker import Worker
from tests.conftest import make_settings, wait_for_status
from tests.reference_app._task_kit import (
    DEAD_OWNER,
    JOB,
    WAIT,
    Attempts,
    FollowUps,
    Gate,
    load,
    post_job,
    schedule,
    serving,
    start_attempt,
    status_counts,
    stream,
    types_of,
    wait_until,
    working,
)

# Never given work: a worker needs a pool, and its threads start only on a first submit.
_NO_POOL = ThreadPoolExecutor(1)

# Retries through the app -----------------------------------------------------------------


async def test_a_retry_runs_when_due_not_at_the_next_sweep(database_url: str) -> None:
    # A sweep interval far longer than the wait we allow: only the due-time wake-up can do it.
    settings = make_settings(database_url, task_max_attempts=2, sweep_interval_seconds=120)

    async with serving(settings, {"process_data": Attempts(failures=1)}) as client:
        task_id = await post_job(client)
        task = await wait_for_status(client, task_id, "succeeded", "failed", seconds=20)

    assert (task["status"], task["attempts"]) == ("succeeded", 2)


# Leases and cancellation, driven directly ---------------------------------------------


async def test_an_expired_lease_is_failed_and_the_task_runs_again(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=-1))

    async with working(sessions, Attempts(failures=0)) as w:
        sweeper = w.sweeper()
        # Running, not due, until its lease is recovered.
        assert await sweeper.sweep_once(recover=False) == 0
        recovered = await w.store.recover_expired_leases()
        assert recovered.recovered == [task_id]
        assert recovered.started == []
        assert await sweeper.sweep_once(recover=False) == 1
        await w.worker.drain(WAIT)

    events = await stream(sessions, task_id)
    assert types_of(events) == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "retry_scheduled",
        "task_started",
        "task_succeeded",
    ]
    assert events[2].payload["error_type"] == "LeaseExpired"
    assert events[2].payload["transient"] is True
    assert DEAD_OWNER in events[2].payload["error"]
    assert events[4].payload["attempt"] == 2
    assert events[4].payload["lease_owner"] == w.worker.owner
    task = await load(sessions, task_id)
    assert (task.status, task.attempts, task.result) == ("succeeded", 2, {"attempt": 2})


async def test_a_lease_that_is_still_live_is_left_alone(sessions: SessionFactory) -> None:
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(minutes=5))

    async with working(sessions, Attempts(failures=0)) as w:
        assert (await w.store.recover_expired_leases()).recovered == []
        assert await w.sweeper().sweep_once(recover=False) == 0

    assert types_of(await stream(sessions, task_id)) == ["task_scheduled", "task_started"]


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
    async with working(sessions, hang_on_first_attempt) as w:
        sweeper = w.sweeper()
        assert await sweeper.sweep_once() == 1
        async with asyncio.timeout(WAIT):
            await hanging.wait()
        (attempt,) = [t for t in asyncio.all_tasks() if t.get_name() == f"task-{task_id}"]

        attempt.cancel()
        await asyncio.wait([attempt], timeout=WAIT)

        assert attempt.cancelled()
        assert w.worker.free_slots == w.worker.capacity
        assert (await load(sessions, task_id)).status == "retrying"
        assert await sweeper.sweep_once() == 1
        await w.worker.drain(WAIT)

    events = await stream(sessions, task_id)
    assert types_of(events) == [
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


async def test_drain_cancels_what_outlives_the_grace_and_hands_it_back(
    sessions: SessionFactory,
) -> None:
    gate = Gate()
    task_id = await schedule(sessions)

    async with working(sessions, gate) as w:
        assert await w.sweeper().sweep_once() == 1
        await wait_until(lambda: gate.running == 1)

        await asyncio.wait_for(w.worker.drain(0), WAIT)

        assert gate.running == 0
        assert w.worker.free_slots == w.worker.capacity

    assert (await load(sessions, task_id)).status == "retrying"
    assert (await stream(sessions, task_id))[2].payload["error_type"] == "Cancelled"


# Bounded concurrency -------------------------------------------------------------------


async def test_a_request_cannot_take_a_slot_a_sweep_is_claiming(
    sessions: SessionFactory,
) -> None:
    gate = Gate()
    for _ in range(3):
        await schedule(sessions)

    async with working(sessions, gate, capacity=2) as w:
        reserved = 0
        try:
            sweep = asyncio.create_task(w.sweeper().sweep_once(recover=False))
            await asyncio.sleep(0)  # the sweep has taken the 2 free slots and awaits the database
            reserved = w.worker.reserve()  # what a submitted task does meanwhile
            started = await sweep

            assert started + reserved <= w.worker.capacity
            assert w.worker.free_slots >= 0
        finally:
            gate.release.set()
            w.worker.release(reserved)


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


def test_reserve_takes_at_most_the_free_slots_and_release_gives_them_back() -> None:
    worker = _bare_worker(capacity=3)

    assert worker.reserve(2) == 2
    assert worker.free_slots == 1
    assert worker.reserve(5) == 1
    assert worker.reserve() == 0
    assert worker.free_slots == 0

    worker.release(3)

    assert worker.free_slots == worker.capacity == 3


def test_a_freed_slot_sets_work_due_only_when_work_was_left_waiting() -> None:
    worker = _bare_worker(capacity=2)

    worker.reserve(2)
    worker.release()
    assert not worker.work_due.is_set()  # nothing was turned away

    worker.reserve(2)  # one slot free, two wanted: work is waiting
    worker.release()
    assert worker.work_due.is_set()

    worker.work_due.clear()
    worker.release()
    assert not worker.work_due.is_set()  # told once per backlog

    worker.mark_backlog()
    worker.release(0)
    assert not worker.work_due.is_set()  # releasing nothing frees no slot
    worker.reserve()
    worker.release()
    assert worker.work_due.is_set()


def _bare_worker(*, capacity: int) -> Worker:
    """A worker for its slot arithmetic alone: it asks no store or database for anything."""
    nothing = cast(SessionFactory, None)
    return Worker(
        store=TaskStore(nothing, max_attempts=3),
        handlers={},
        policy=RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=0.0),
        capacity=capacity,
        lease_seconds=30.0,
        sessions=nothing,
        cpu_pool=_NO_POOL,
    )


# Entry points -----------------------------------------------------------------------------


async def test_submit_with_a_free_slot_claims_and_runs_the_task_then_frees_the_slot(
    sessions: SessionFactory,
) -> None:
    handler = Attempts(failures=0)
    task_id = await schedule(sessions)

    async with working(sessions, handler) as w:
        await asyncio.wait_for(w.worker.submit(task_id=task_id, kind="process_data"), WAIT)

        assert w.worker.free_slots == w.worker.capacity

    assert handler.calls == {task_id: 1}
    task = await load(sessions, task_id)
    assert (task.status, task.attempts, task.lease_owner) == ("succeeded", 1, None)
    assert (await stream(sessions, task_id))[1].payload["lease_owner"] == w.worker.owner


async def test_submit_without_a_free_slot_leaves_the_task_scheduled_for_the_sweeper(
    sessions: SessionFactory,
) -> None:
    handler = Attempts(failures=0)
    task_id = await schedule(sessions)

    async with working(sessions, handler, capacity=1) as w:
        assert w.worker.reserve() == 1  # every slot busy
        await asyncio.wait_for(w.worker.submit(task_id=task_id, kind="process_data"), WAIT)

        assert handler.calls == {}
        assert (await load(sessions, task_id)).status == "scheduled"

        w.worker.release()
        assert w.worker.work_due.is_set()  # the sweeper is told a slot is free for it
        assert await w.sweeper().sweep_once(recover=False) == 1
        await w.worker.drain(WAIT)

    assert handler.calls == {task_id: 1}
    assert (await load(sessions, task_id)).status == "succeeded"


async def test_submit_of_a_task_another_worker_claimed_runs_nothing(
    sessions: SessionFactory,
) -> None:
    handler = Attempts(failures=0)
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(minutes=5), owner="other:1:ab")

    async with working(sessions, handler) as w:
        await asyncio.wait_for(w.worker.submit(task_id=task_id, kind="process_data"), WAIT)

        assert w.worker.free_slots == w.worker.capacity

    assert handler.calls == {}
    assert types_of(await stream(sessions, task_id)) == ["task_scheduled", "task_started"]


async def test_run_inline_runs_one_attempt_without_a_slot_and_leaves_a_retry(
    sessions: SessionFactory,
) -> None:
    handler = Attempts(failures=1)
    task_id = await schedule(sessions)

    async with working(sessions, handler, capacity=1) as w:
        w.worker.reserve()  # every slot busy: an inline run does not need one
        try:
            await asyncio.wait_for(w.worker.run_inline(task_id), WAIT)
        finally:
            w.worker.release()

    assert handler.calls == {task_id: 1}
    assert (await load(sessions, task_id)).status == "retrying"


async def test_run_soon_starts_what_fits_in_the_free_slots_and_leaves_the_rest(
    sessions: SessionFactory,
) -> None:
    gate = Gate()
    task_ids = [await schedule(sessions) for _ in range(3)]

    async with working(sessions, gate, capacity=2) as w:
        try:
            w.worker.run_soon(DueTask(task_id, "process_data") for task_id in task_ids)
            await wait_until(lambda: gate.running == 2)

            assert w.worker.free_slots == 0
            assert await status_counts(sessions) == {"running": 2, "scheduled": 1}
        finally:
            gate.release.set()
        await w.worker.drain(WAIT)
        assert w.worker.work_due.is_set()  # the one left over waits for the sweeper

    assert await status_counts(sessions) == {"succeeded": 2, "scheduled": 1}


async def test_an_outcome_that_starts_a_stream_runs_it_on_a_free_slot(
    sessions: SessionFactory,
) -> None:
    """A terminal hook's stream (a webhook delivery) is handed to ``run_soon`` at once."""
    follow_ups = FollowUps()
    handler = Attempts(failures=0)

    task_id = await schedule(sessions)
    async with working(
        sessions, handler, terminal_hooks=[follow_ups], kinds=["process_data", FollowUps.KIND]
    ) as w:
        await asyncio.wait_for(w.worker.submit(task_id=task_id, kind="process_data"), WAIT)
        (follow_up_id,) = follow_ups.started
        await wait_until(lambda: follow_up_id in handler.calls)
        await w.worker.drain(WAIT)

    assert (await load(sessions, follow_up_id)).status == "succeeded"


# Deadlines ---------------------------------------------------------------------------------


async def test_a_hung_attempt_frees_its_slot_at_the_deadline_while_its_thread_still_runs(
    sessions: SessionFactory,
) -> None:
    # One slot; the first task blocks a thread far past its kind's deadline. The slot is
    # free again once the deadline (and the grace) pass, so the second task runs, and
    # finishes, while the first one's thread is still blocked.
    release, finished = threading.Event(), threading.Event()

    def block() -> None:
        release.wait(WAIT)
        finished.set()

    async def hung(ctx: TaskContext) -> dict[str, Any]:
        await asyncio.to_thread(block)
        return {"late": True}

    quick = Attempts(failures=0)
    kinds: dict[str, Handler | TaskKind] = {"hung": TaskKind(hung, timeout=0.2), "quick": quick}
    first = await schedule(sessions, kind="hung")
    second = await schedule(sessions, kind="quick")
    try:
        async with working(
            sessions, quick, capacity=1, kinds=(), more_kinds=kinds, cancel_grace_seconds=0.1
        ) as w:
            await asyncio.wait_for(w.worker.submit(task_id=first, kind="hung"), WAIT)
            assert w.worker.free_slots == 1
            await asyncio.wait_for(w.worker.submit(task_id=second, kind="quick"), WAIT)
            assert not finished.is_set()  # the hung thread outlived its attempt
    finally:
        release.set()

    assert (await load(sessions, second)).status == "succeeded"
    task = await load(sessions, first)
    assert task.status == "retrying"  # transient: the retry policy decides what follows
    failed = (await stream(sessions, first))[2]
    assert failed.type == "attempt_failed"
    assert failed.payload["error_type"] == "AttemptTimeout"
    assert (failed.payload["transient"], failed.payload["deadline_seconds"]) == (True, 0.2)


async def test_the_app_deadline_applies_to_kinds_without_their_own(
    sessions: SessionFactory,
) -> None:
    async def hang(ctx: TaskContext) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task_id = await schedule(sessions)
    async with working(sessions, hang, timeout_seconds=0.1, cancel_grace_seconds=0.1) as w:
        assert w.worker.timeouts["process_data"] == 0.1
        await asyncio.wait_for(w.worker.submit(task_id=task_id, kind="process_data"), WAIT)

    failed = (await stream(sessions, task_id))[2]
    assert (failed.payload["error_type"], failed.payload["deadline_seconds"]) == (
        "AttemptTimeout",
        0.1,
    )
