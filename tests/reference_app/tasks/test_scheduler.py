"""The scheduler, on both databases with a clock the tests move: each slot makes exactly
one task, whichever of two schedulers gets there, across a restart in the middle of a
slot, and after downtime as the schedule's catch-up policy says."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from reference_app.db.engine import (
    SessionFactory,
    create_engine,
    create_session_factory,
    session_scope,
)
from reference_app.db.models import Task
from reference_app.store import Accepted, Submission, TaskStore
from reference_app.tasks import scheduler as scheduler_module
from reference_app.tasks.scheduler import Scheduler
from reference_app.tasks.schedules import KEY_PREFIX, Schedule
from tests.reference_app._clock import ManualClock
from tests.reference_app._task_kit import HOUR, stream

SLOT = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
MINUTE = 60.0
PARAMS = {"data": {"report": "minutely"}, "io_ms": 0}


def every_minute(catch_up: Any = "one", **options: Any) -> Schedule:
    return Schedule(
        "report",
        kind="process_data",
        every=timedelta(minutes=1),
        params=PARAMS,
        catch_up=catch_up,
        **options,
    )


@asynccontextmanager
async def scheduling(
    sessions: SessionFactory,
    clock: ManualClock,
    schedules: Sequence[Schedule] = (),
    *,
    store_class: type[TaskStore] = TaskStore,
    **options: Any,
) -> AsyncIterator[Scheduler]:
    """A scheduler on a store of its own (group commit, as in the app), on ``clock``."""
    store = store_class(sessions, max_attempts=3, group_commit=True, clock=clock)
    try:
        yield Scheduler(
            store,
            list(schedules) or [every_minute()],
            default_org="org-a",
            interval=HOUR,
            **options,
        )
    finally:
        await store.close()


async def slot_tasks(sessions: SessionFactory) -> list[Task]:
    """Every task a schedule made, by key."""
    async with session_scope(sessions) as session:
        query = select(Task).where(Task.idempotency_key.startswith(KEY_PREFIX))
        return sorted(await session.scalars(query), key=lambda t: t.idempotency_key or "")


def keys(tasks: Sequence[Task]) -> list[str]:
    return [t.idempotency_key or "" for t in tasks]


def minutes(*offsets: int) -> list[str]:
    """The keys of ``every_minute``'s slots at SLOT + these minutes."""
    return [every_minute().key(SLOT + timedelta(minutes=m)) for m in offsets]


# A slot's task ----------------------------------------------------------------------------


async def test_a_due_slot_makes_one_scheduled_task_due_at_its_slot(
    sessions: SessionFactory,
) -> None:
    clock = ManualClock(SLOT + timedelta(seconds=2))
    async with scheduling(sessions, clock) as scheduler:
        assert await scheduler.run_due() == 1
        assert await scheduler.run_due() == 0  # the same slot: nothing more

    (task,) = await slot_tasks(sessions)
    assert task.idempotency_key == "schedule:report:2026-12-04T03:00:00Z"
    assert (task.status, task.kind, task.params) == ("scheduled", "process_data", PARAMS)
    assert (task.org_id, task.user_id) == ("org-a", "scheduler")
    assert task.run_after == SLOT
    # The due time is in the log, so rebuild-projection gives the same run_after.
    (scheduled,) = await stream(sessions, task.id)
    assert scheduled.payload["not_before"] == SLOT.isoformat()


async def test_each_slot_makes_its_task_as_it_comes_due_and_none_early(
    sessions: SessionFactory,
) -> None:
    clock = ManualClock(SLOT)
    async with scheduling(sessions, clock) as scheduler:
        made = [await scheduler.run_due()]
        for _ in range(3):
            clock.advance(MINUTE - 0.001)
            made.append(await scheduler.run_due())  # just before the next slot
            clock.advance(0.001)
            made.append(await scheduler.run_due())

    assert made == [1, 0, 1, 0, 1, 0, 1]
    assert keys(await slot_tasks(sessions)) == minutes(0, 1, 2, 3)


async def test_a_schedule_may_name_the_org_and_user_that_own_its_tasks(
    sessions: SessionFactory,
) -> None:
    clock = ManualClock(SLOT)
    schedule = every_minute(org_id="org-b", user_id="nightly-bot")
    async with scheduling(sessions, clock, [schedule]) as scheduler:
        await scheduler.run_due()

    (task,) = await slot_tasks(sessions)
    assert (task.org_id, task.user_id) == ("org-b", "nightly-bot")


async def test_the_sweeper_is_woken_when_a_pass_made_tasks_and_only_then(
    sessions: SessionFactory,
) -> None:
    woken: list[int] = []
    clock = ManualClock(SLOT)
    async with scheduling(sessions, clock, on_enqueued=lambda: woken.append(1)) as scheduler:
        await scheduler.run_due()
        await scheduler.run_due()

    assert woken == [1]


def test_a_scheduler_refuses_schedules_it_could_not_run() -> None:
    store: Any = object()  # never reached
    options: Any = {"default_org": "org-a", "interval": 1, "clock": ManualClock()}
    with pytest.raises(ValueError, match="unique"):
        Scheduler(store, [every_minute(), every_minute()], **options)
    with pytest.raises(ValueError, match="no handler"):
        Scheduler(store, [every_minute()], kinds={"other"}, **options)


# Catch-up after downtime ---------------------------------------------------------------------


def every(minutes: int, catch_up: Any = "one") -> Schedule:
    interval = timedelta(minutes=minutes)
    return Schedule("report", kind="process_data", every=interval, params=PARAMS, catch_up=catch_up)


async def ran_at_slot_then_restarted(
    sessions: SessionFactory, schedule: Schedule, *, down_minutes: float
) -> ManualClock:
    """A first process made SLOT's task; then it is down for ``down_minutes``."""
    clock = ManualClock(SLOT)
    async with scheduling(sessions, clock, [schedule]) as first:
        assert await first.run_due() == 1
    clock.advance(down_minutes * MINUTE)
    return clock


@pytest.mark.parametrize(
    ("catch_up", "made"),
    [
        ("one", [30]),  # the newest missed slot
        ("all", [5, 10, 15, 20, 25, 30]),  # every missed slot, oldest first
        ("none", []),  # none: it waits for the next slot
    ],
)
async def test_after_downtime_the_catch_up_policy_decides_which_missed_slots_run(
    sessions: SessionFactory, catch_up: str, made: list[int]
) -> None:
    schedule = every(5, catch_up)
    # Down from 03:00 to 03:32: 03:05 ... 03:30 missed, the newest two minutes late.
    clock = await ran_at_slot_then_restarted(sessions, schedule, down_minutes=32)
    async with scheduling(sessions, clock, [schedule]) as restarted:
        assert await restarted.run_due() == len(made)
        clock.set(SLOT + timedelta(minutes=35))
        assert await restarted.run_due() == 1  # and then on time again, whatever the policy

    expected = [schedule.key(SLOT + timedelta(minutes=m)) for m in (0, *made, 35)]
    assert keys(await slot_tasks(sessions)) == expected


async def test_catching_up_all_goes_in_passes_of_at_most_max_slots(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "MAX_SLOTS_PER_PASS", 4)
    schedule = every(1, "all")
    clock = await ran_at_slot_then_restarted(sessions, schedule, down_minutes=10)
    async with scheduling(sessions, clock, [schedule]) as restarted:
        assert [await restarted.run_due() for _ in range(4)] == [4, 4, 2, 0]

    assert keys(await slot_tasks(sessions)) == minutes(*range(11))


# Two schedulers, one database ---------------------------------------------------------------


async def test_two_schedulers_racing_on_one_database_make_each_slot_exactly_once(
    sessions: SessionFactory, database_url: str
) -> None:
    # Two stores on two engines: two processes' worth of connections and group commits.
    other_engine = create_engine(database_url)
    clock = ManualClock(SLOT)
    made = Counter[str]()
    try:
        async with (
            scheduling(sessions, clock) as a,
            scheduling(create_session_factory(other_engine), clock) as b,
        ):
            for step in range(12):
                first, second = (a, b) if step % 2 else (b, a)
                results = await asyncio.gather(first.run_due(), second.run_due())
                made["a" if first is a else "b"] += results[0]
                made["b" if first is a else "a"] += results[1]
                clock.advance(MINUTE)
    finally:
        await other_engine.dispose()

    tasks = await slot_tasks(sessions)
    assert keys(tasks) == minutes(*range(12))  # every slot, each once (keys are sorted)
    assert made["a"] + made["b"] == 12


# A restart in the middle of a slot ----------------------------------------------------------


class DiesBeforeCommit(TaskStore):
    """The process dies while the slot's task is being accepted: nothing was committed."""

    async def accept(self, submission: Submission) -> Accepted:
        raise ConnectionResetError("the process died here")


class DiesAfterCommit(TaskStore):
    """The process dies just after the slot's task committed, before it knew."""

    async def accept(self, submission: Submission) -> Accepted:
        await super().accept(submission)
        raise ConnectionResetError("the process died here")


@pytest.mark.parametrize("dying", [DiesBeforeCommit, DiesAfterCommit])
async def test_a_restart_in_the_middle_of_a_slot_neither_repeats_nor_skips_it(
    sessions: SessionFactory, dying: type[TaskStore]
) -> None:
    clock = ManualClock(SLOT + timedelta(seconds=1))
    async with scheduling(sessions, clock, store_class=dying) as dies:
        with pytest.raises(ConnectionResetError):
            await dies.run_due()
    clock.advance(5)  # restarted within the slot's grace
    async with scheduling(sessions, clock) as restarted:
        await restarted.run_due()
        await restarted.run_due()
        clock.advance(MINUTE)
        assert await restarted.run_due() == 1  # and the next slot follows

    tasks = await slot_tasks(sessions)
    assert keys(tasks) == minutes(0, 1)


# What a pass does when it cannot make a task -----------------------------------------------


async def test_a_slot_refused_by_admission_control_is_made_by_a_later_pass(
    sessions: SessionFactory,
) -> None:
    clock = ManualClock(SLOT)
    async with scheduling(sessions, clock) as scheduler:
        scheduler.store.backlog.bound = 1
        scheduler.store.backlog.counted(1)  # one task due: at the bound
        with capture_logs() as logs:
            assert await scheduler.run_due() == 0
        scheduler.store.backlog.counted(0)
        assert await scheduler.run_due() == 1

    assert [log["event"] for log in logs] == ["schedule_slot_deferred"]
    assert keys(await slot_tasks(sessions)) == minutes(0)


async def test_a_slot_made_by_an_older_version_of_the_schedule_counts_as_done(
    sessions: SessionFactory,
) -> None:
    clock = ManualClock(SLOT)
    async with scheduling(sessions, clock) as before_the_change:
        await before_the_change.run_due()
    changed = Schedule("report", kind="process_data", every=timedelta(minutes=1), params={})
    async with scheduling(sessions, clock, [changed], kinds={"process_data"}) as after:
        # The first look at the database finds SLOT done; a forced second try is a mismatch.
        after._last["report"] = SLOT - timedelta(minutes=1)
        with capture_logs() as logs:
            assert await after.run_due() == 0
        clock.advance(MINUTE)
        assert await after.run_due() == 1

    assert "schedule_slot_made_with_other_params" in [log["event"] for log in logs]
    tasks = await slot_tasks(sessions)
    assert [t.params for t in tasks] == [PARAMS, {}]


# The loop ---------------------------------------------------------------------------------


class FailsFirstLook(TaskStore):
    looks = 0

    async def newest_by_key(self, *args: Any) -> Any:
        self.looks += 1
        if self.looks == 1:
            raise ConnectionResetError("database away")
        return await super().newest_by_key(*args)


async def test_the_loop_makes_each_slot_as_the_clock_reaches_it_and_survives_a_failure(
    sessions: SessionFactory,
) -> None:
    clock = ManualClock(SLOT + timedelta(seconds=1))
    async with scheduling(sessions, clock, store_class=FailsFirstLook) as scheduler:
        scheduler.interval = 0.01
        made: list[Task] = []
        with capture_logs() as logs:
            scheduler.start()
            try:
                for n in (1, 2, 3):
                    async with asyncio.timeout(10):
                        while len(made) < n:
                            await asyncio.sleep(0.01)
                            made = await slot_tasks(sessions)
                    clock.advance(MINUTE)
            finally:
                await scheduler.stop()
        assert scheduler._task is None

    assert keys(made) == minutes(0, 1, 2)
    assert "schedule_pass_failed" in [log["event"] for log in logs]


async def test_a_scheduler_without_schedules_starts_no_loop(sessions: SessionFactory) -> None:
    store = TaskStore(sessions, max_attempts=3)
    scheduler = Scheduler(store, [], default_org="org-a", interval=1)
    scheduler.start()
    assert scheduler._task is None
    await scheduler.stop()
