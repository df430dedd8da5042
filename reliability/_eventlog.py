"""The observer: reads tasks and their event log straight from the database.

The app under test may be dead, restarting or cut off from its database, so the
scenarios never ask it what happened: they read the projection and the log
themselves, through a connection of their own that holds no lock (SQLite) and
that names itself (PostgreSQL), so a scenario that kills the app's connections
can spare it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from reference_app.db.models import Task, TaskEvent

__all__ = [
    "OBSERVER_NAME",
    "TERMINAL",
    "Event",
    "Observer",
    "Snapshot",
    "TaskRow",
    "observe",
]

OBSERVER_NAME = "reliability-observer"
TERMINAL = frozenset({"succeeded", "failed"})


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: uuid.UUID
    kind: str
    status: str
    attempts: int
    parent_id: uuid.UUID | None
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    stream_id: uuid.UUID
    version: int
    type: str
    payload: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class Snapshot:
    """Every task and every event at one moment."""

    tasks: dict[uuid.UUID, TaskRow]
    events: dict[uuid.UUID, list[Event]]
    """By stream id (a task's own, or a webhook delivery's), in version order."""

    def statuses(self) -> Counter[str]:
        return Counter(row.status for row in self.tasks.values())

    def unfinished(self, task_ids: Collection[uuid.UUID]) -> list[uuid.UUID]:
        """Of ``task_ids``, those missing or not terminal."""
        return [i for i in task_ids if i not in self.tasks or self.tasks[i].status not in TERMINAL]

    def settled(self, task_ids: Collection[uuid.UUID]) -> bool:
        """Every id in ``task_ids`` terminal, and every task in the database too (deliveries)."""
        if self.unfinished(task_ids):
            return False
        return all(row.status in TERMINAL for row in self.tasks.values())

    def starts(self, stream_id: uuid.UUID) -> list[Event]:
        return [e for e in self.events.get(stream_id, []) if e.type == "task_started"]

    def reruns(self, task_ids: Collection[uuid.UUID]) -> int:
        """Of ``task_ids``, how many were started more than once."""
        return sum(len(self.starts(i)) > 1 for i in task_ids)

    def attempts_started_twice(self) -> list[tuple[uuid.UUID, int]]:
        """(stream, attempt) pairs with more than one ``task_started``: must be none."""
        counts = Counter(
            (e.stream_id, int(e.payload["attempt"]))
            for stream in self.events.values()
            for e in stream
            if e.type == "task_started"
        )
        return [key for key, count in counts.items() if count > 1]

    def delivery_of(self, task_id: uuid.UUID) -> TaskRow | None:
        """The webhook delivery child of ``task_id``, if it has one."""
        for row in self.tasks.values():
            if row.parent_id == task_id:
                return row
        return None

    def failures(self, stream_id: uuid.UUID) -> list[dict[str, Any]]:
        """The payloads of the stream's ``attempt_failed`` events."""
        return [e.payload for e in self.events.get(stream_id, []) if e.type == "attempt_failed"]


def _observer_engine(database_url: str) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {"server_settings": {"application_name": OBSERVER_NAME}}
    else:
        # The driver's deferred BEGIN: a read takes no write lock, so the app never waits on us.
        connect_args = {"timeout": 30}
    return create_async_engine(database_url, poolclass=NullPool, connect_args=connect_args)


class Observer:
    """Snapshots of one database, read through a connection the app does not share."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def snapshot(self) -> Snapshot:
        async with self.engine.connect() as connection:
            task_rows = (await connection.execute(select(Task.__table__))).mappings().all()
            event_rows = (
                (
                    await connection.execute(
                        select(TaskEvent.__table__).order_by(TaskEvent.stream_id, TaskEvent.version)
                    )
                )
                .mappings()
                .all()
            )
        tasks = {
            r["id"]: TaskRow(
                r["id"], r["kind"], r["status"], r["attempts"], r["parent_id"], r["params"]
            )
            for r in task_rows
        }
        events: dict[uuid.UUID, list[Event]] = {}
        for r in event_rows:
            events.setdefault(r["stream_id"], []).append(
                Event(r["stream_id"], r["version"], r["type"], r["payload"], r["at"])
            )
        return Snapshot(tasks, events)

    async def wait_for(
        self, condition: Callable[[Snapshot], bool], *, seconds: float, every: float = 0.1
    ) -> tuple[Snapshot, bool]:
        """Poll until ``condition`` holds; (the last snapshot, whether it held in time).

        A failed read (the database is restarting) is retried until the deadline.
        """
        deadline = time.monotonic() + seconds
        last: Snapshot | None = None
        while True:
            try:
                last = await self.snapshot()
            except Exception:  # an outage is what some scenarios cause
                if time.monotonic() >= deadline and last is not None:
                    return last, False
            else:
                if condition(last):
                    return last, True
            if time.monotonic() >= deadline:
                if last is None:
                    last = await self.snapshot()  # let the error out: nothing was ever read
                return last, False
            await asyncio.sleep(every)

    async def wait_settled(
        self, task_ids: Collection[uuid.UUID], *, seconds: float
    ) -> tuple[Snapshot, float | None]:
        """Wait until every task is terminal; (snapshot, seconds it took, or None if it did not)."""
        started = time.monotonic()
        snap, ok = await self.wait_for(lambda s: s.settled(task_ids), seconds=seconds)
        return snap, (time.monotonic() - started) if ok else None


@asynccontextmanager
async def observe(database_url: str) -> AsyncIterator[Observer]:
    engine = _observer_engine(database_url)
    try:
        yield Observer(engine)
    finally:
        await engine.dispose()
