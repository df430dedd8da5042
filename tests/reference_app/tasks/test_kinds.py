"""Task kinds: I/O-bound work shares the general slots, CPU-bound work gets the pool's size,
and a kind's own limit holds while the rest of its backlog waits in the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reference_app.db.engine import SessionFactory
from reference_app.tasks.context import TaskContext
from reference_app.tasks.kinds import TaskKind, concurrency_limits, kinds_of
from reference_app.tasks.retry import RetryPolicy
from tests.reference_app._task_kit import (
    HOUR,
    WAIT,
    Gate,
    schedule,
    status_counts,
    wait_until,
    working,
)


async def noop(ctx: TaskContext) -> dict[str, Any]:
    return {}


def test_a_bare_handler_is_an_io_kind_without_a_limit_of_its_own() -> None:
    kinds = kinds_of({"a": noop, "b": TaskKind(noop, mode="cpu")})

    assert kinds["a"] == TaskKind(noop)
    assert concurrency_limits(kinds, cpu_slots=3) == {"b": 3}


def test_a_kinds_own_concurrency_wins_over_its_modes_default() -> None:
    kinds = kinds_of(
        {"io": TaskKind(noop, concurrency=5), "cpu": TaskKind(noop, mode="cpu", concurrency=2)}
    )

    assert concurrency_limits(kinds, cpu_slots=8) == {"io": 5, "cpu": 2}


def test_a_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TaskKind(noop, concurrency=0)


class Busy:
    """A handler that holds its attempts until released, counting them by kind."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.running[ctx.kind] = self.running.get(ctx.kind, 0) + 1
        self.peak[ctx.kind] = max(self.peak.get(ctx.kind, 0), self.running[ctx.kind])
        try:
            await self.release.wait()
        finally:
            self.running[ctx.kind] -= 1
        return {}


async def test_a_sweep_claims_a_limited_kind_up_to_its_limit_and_the_rest_in_general_slots(
    sessions: SessionFactory,
) -> None:
    busy = Busy()
    for _ in range(4):
        await schedule(sessions, kind="crunch")
    for _ in range(3):
        await schedule(sessions)  # process_data, an I/O kind

    kinds = {"crunch": TaskKind(busy, mode="cpu")}
    async with working(sessions, busy, capacity=8, more_kinds=kinds, cpu_slots=2) as w:
        try:
            started = await w.sweeper(HOUR).sweep_once(recover=False)
            await wait_until(lambda: sum(busy.running.values()) == 5)

            assert started == 5
            assert busy.running == {"crunch": 2, "process_data": 3}
            assert w.worker.room("crunch") == 0
            assert w.worker.room() == 3
            # The rest of the CPU backlog waits in the database, not in the pool's queue.
            assert await w.sweeper(HOUR).sweep_once(recover=False) == 0
            assert await status_counts(sessions) == {"running": 5, "scheduled": 2}
        finally:
            busy.release.set()
        await w.worker.drain(WAIT)

    assert busy.peak["crunch"] == 2


async def test_a_submitted_task_of_a_full_kind_waits_for_the_sweeper(
    sessions: SessionFactory,
) -> None:
    gate = Gate()
    kinds = {"crunch": TaskKind(gate, mode="cpu", concurrency=1)}
    first, second = [await schedule(sessions, kind="crunch") for _ in range(2)]

    async with working(sessions, gate, capacity=8, more_kinds=kinds) as w:
        try:
            running = asyncio.create_task(w.worker.submit(task_id=first, kind="crunch"))
            await wait_until(lambda: gate.running == 1)
            w.worker.work_due.clear()

            await asyncio.wait_for(w.worker.submit(task_id=second, kind="crunch"), WAIT)

            assert await status_counts(sessions) == {"running": 1, "scheduled": 1}
            assert w.worker.free_slots == 7  # general slots were free; the kind's was not
        finally:
            gate.release.set()
        await asyncio.wait_for(running, WAIT)
        assert w.worker.work_due.is_set()  # its freed slot calls the sweeper for the second
        assert await w.sweeper(HOUR).sweep_once(recover=False) == 1
        await w.worker.drain(WAIT)

    assert gate.peak == 1
    assert await status_counts(sessions) == {"succeeded": 2}


async def test_a_kinds_retry_policy_replaces_the_apps_for_that_kind(
    sessions: SessionFactory,
) -> None:
    policy = RetryPolicy(max_attempts=7, base_seconds=0.0, cap_seconds=0.0)
    async with working(sessions, noop, more_kinds={"patient": TaskKind(noop, retry=policy)}) as w:
        assert w.worker.policies["patient"] is policy
        assert "process_data" not in w.worker.policies  # the app's policy
