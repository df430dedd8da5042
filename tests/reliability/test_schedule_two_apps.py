"""Two app processes on one PostgreSQL database run the same periodic schedule (a slot a
second), through a rolling restart where each is killed (SIGKILL, mid-slot or not) and
started again: every slot gets exactly one task, none is skipped, and the processes' own
logs show each slot enqueued once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from reference_app.core.clock import utcnow
from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.models import Task
from reference_app.tasks.handlers import example_schedule
from reference_app.testing import LiveServer
from reliability._served import FAST_SETTINGS, start_app, stop_all

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]

SCHEDULE = example_schedule(timedelta(seconds=1))
SETTINGS = {**FAST_SETTINGS, "example_schedule_seconds": "1", "scheduler_interval_seconds": "0.2"}


async def slot_tasks(database_url: str) -> dict[datetime, list[Task]]:
    engine = create_engine(database_url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            query = select(Task).where(Task.idempotency_key.startswith(SCHEDULE.key_prefix))
            tasks = list(await session.scalars(query))
    finally:
        await engine.dispose()
    by_slot: dict[datetime, list[Task]] = {}
    for task in tasks:
        by_slot.setdefault(SCHEDULE.slot_of(task.idempotency_key or ""), []).append(task)
    return by_slot


async def started(database_url: str) -> LiveServer:
    return await asyncio.to_thread(start_app, database_url, SETTINGS)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_two_processes_and_a_rolling_restart_make_every_slot_exactly_once(
    database_url: str,
) -> None:
    servers: list[LiveServer] = []
    try:
        servers += await asyncio.gather(started(database_url), started(database_url))
        await asyncio.sleep(2.5)
        servers[0].kill()  # a crash: whatever it was doing, mid-slot or not
        servers.append(await started(database_url))
        await asyncio.sleep(1.5)
        servers[1].kill()
        servers.append(await started(database_url))
        tail = utcnow()
        await asyncio.sleep(2.0)
        # What the killed processes left half-done finishes on the others (lease: 2 s).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            by_slot = await slot_tasks(database_url)
            early = [t for slot, ts in by_slot.items() if slot < tail for t in ts]
            if all(t.status == "succeeded" for t in early):
                break
            await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(stop_all, servers)

    by_slot = await slot_tasks(database_url)
    slots = sorted(by_slot)
    assert len(slots) >= 6, slots
    # None skipped: one process was up all along, so every second from the first slot to
    # the last has its slot. None twice: one task each.
    assert slots == [slots[0] + timedelta(seconds=n) for n in range(len(slots))]
    assert {slot: len(tasks) for slot, tasks in by_slot.items() if len(tasks) != 1} == {}
    early = [tasks[0] for slot, tasks in by_slot.items() if slot < tail]
    assert early
    assert {t.status for t in early} == {"succeeded"}
    # From the processes' own logs: each slot enqueued by exactly one of the four.
    enqueued = Counter(
        record["slot"]
        for server in servers
        for record in server.logs()
        if record.get("event") == "schedule_slot_enqueued"
    )
    texts = {SCHEDULE.key(slot).removeprefix(SCHEDULE.key_prefix) for slot in slots}
    assert set(enqueued) <= texts
    assert set(enqueued.values()) == {1}
    # A process killed between its commit and its log line leaves a slot unlogged: one a kill.
    assert len(texts - set(enqueued)) <= 2, sorted(texts - set(enqueued))
    assert all(
        any(r.get("event") == "scheduler_started" for r in server.logs()) for server in servers
    )
