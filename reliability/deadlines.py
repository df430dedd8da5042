"""Hung attempts: how long each kind of stuck work holds its slot past its deadline.

Three handlers that never finish by themselves: one awaiting (cancellable), one blocked in
a thread (``asyncio.to_thread``: the await ends, the thread does not), and one that catches
``CancelledError`` and carries on (abandoned after the grace). Each runs, several times, on a
worker with one slot and a one-second deadline; the figure is the time from the deadline to
the slot being free again, and every attempt must be recorded as ``AttemptTimeout``.

The worker and the store run in this process, on the scenario's database: what is measured
is the worker's own bookkeeping, which no HTTP server takes part in.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.models import TaskEvent
from reference_app.store import Submission, TaskStore
from reference_app.tasks.context import TaskContext
from reference_app.tasks.kinds import TaskKind
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.worker import Worker
from reliability._loop import run_async
from reliability._outcome import Outcome, Scenario
from reliability._served import backend_of

__all__ = ["SCENARIOS", "run_hung_attempts"]

DEADLINE_SECONDS = 1.0
GRACE_SECONDS = 1.0
STUCK_FOR_SECONDS = 20.0
"""How long the stuck work would go on: far past the deadline, bounded all the same."""


def _handlers(release: threading.Event) -> dict[str, Callable[[TaskContext], Awaitable[Any]]]:
    async def awaiting(ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(STUCK_FOR_SECONDS)
        return {}

    async def in_a_thread(ctx: TaskContext) -> dict[str, Any]:
        await asyncio.to_thread(release.wait, STUCK_FOR_SECONDS)
        return {}

    async def ignores_cancellation(ctx: TaskContext) -> dict[str, Any]:
        end = time.monotonic() + STUCK_FOR_SECONDS
        while time.monotonic() < end and not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue
        return {}

    return {"awaiting": awaiting, "thread": in_a_thread, "ignores_cancel": ignores_cancellation}


async def _measure(url: str, runs: int) -> tuple[dict[str, list[float]], int, int]:
    """Per handler, seconds from the deadline to a free slot; tasks run; those timed out."""
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    release = threading.Event()
    handlers = _handlers(release)
    kinds = {name: TaskKind(h, timeout=DEADLINE_SECONDS) for name, h in handlers.items()}
    held: dict[str, list[float]] = {name: [] for name in kinds}
    task_ids: list[uuid.UUID] = []
    with ThreadPoolExecutor(1) as pool:
        worker = Worker(
            store=store,
            handlers=kinds,
            policy=RetryPolicy(max_attempts=3, base_seconds=3600.0, cap_seconds=3600.0),
            capacity=1,
            lease_seconds=30.0,
            sessions=sessions,
            cpu_pool=pool,
            cancel_grace_seconds=GRACE_SECONDS,
        )
        try:
            for name in kinds:
                for i in range(runs):
                    submission = Submission(
                        org_id="org-a", user_id="reliability", kind=name, params={"n": i}
                    )
                    task_id = (await store.accept(submission)).task_id
                    task_ids.append(task_id)
                    started = time.monotonic()
                    await worker.submit(task_id=task_id, kind=name)
                    if worker.free_slots != 1:
                        raise AssertionError(f"{name}: the slot was not free after the attempt")
                    held[name].append(time.monotonic() - started - DEADLINE_SECONDS)
                    release.set()  # let the stuck thread or coroutine end before the next
                    await asyncio.sleep(0.1)
                    release.clear()
        finally:
            await worker.drain(0)
            await store.close()
    async with session_scope(sessions) as session:
        failed = await session.scalars(
            select(TaskEvent.payload).where(
                TaskEvent.task_id.in_(task_ids), TaskEvent.type == "attempt_failed"
            )
        )
        timed_out = sum(1 for p in failed if p.get("error_type") == "AttemptTimeout")
    await engine.dispose()
    return held, len(task_ids), timed_out


def run_hung_attempts(url: str, *, long: bool = False, runs: int | None = None) -> Outcome:
    runs = runs or (10 if long else 3)
    held, tasks, timed_out = run_async(lambda: _measure(url, runs))

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"

    notes = "; ".join(f"{name}: {ms(values)}" for name, values in held.items())
    return Outcome(
        fault=f"attempts stuck past a {DEADLINE_SECONDS:g} s deadline (grace {GRACE_SECONDS:g} s)",
        backend=backend_of(url),
        load=f"{runs} per kind: awaiting, blocked thread, ignores cancellation",
        inputs=tasks,
        accepted=tasks,
        lost=tasks - timed_out,  # each must end its attempt as AttemptTimeout
        duplicates=0,
        notes=f"slot held past the deadline: {notes}",
    )


SCENARIOS = [Scenario("hung attempts", run_hung_attempts)]
