"""Helpers shared by the store and task tests: tasks in given states, a store with a
worker of this process, the app over ASGI, and handlers that fail or wait on demand."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from reference_app.core.clock import utcnow
from reference_app.core.config import Settings
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent, append_events
from reference_app.main import create_app
from reference_app.store import Claim, NewStream, Submission, TaskStore, TerminalHook
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.errors import TransientError
from reference_app.tasks.kinds import TaskKind
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.sweeper import Sweeper
from reference_app.tasks.worker import Worker
from tests.conftest import AUTH_A

__all__ = [
    "DEAD_OWNER",
    "HOUR",
    "JOB",
    "WAIT",
    "Attempts",
    "FollowUps",
    "Gate",
    "Working",
    "api_events",
    "insert_rows",
    "load",
    "post_job",
    "schedule",
    "schedule_retry",
    "serving",
    "start_attempt",
    "started_attempts",
    "status_counts",
    "stream",
    "task_row",
    "types_of",
    "wait_until",
    "working",
]

JOB = {"data": {"n": 1}, "io_ms": 0}
WAIT = 15.0
HOUR = 3600.0
DEAD_OWNER = "dead-host:4242:deadbeef"


# Handlers ---------------------------------------------------------------------------


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


class FollowUps:
    """A terminal hook: a ``process_data`` task's end starts a ``follow_up`` task (as a
    webhook delivery's enqueueing does). ``started``: the ids of those it started."""

    KIND = "follow_up"

    def __init__(self) -> None:
        self.started: list[uuid.UUID] = []

    def __call__(self, claim: Claim, final: NewEvent) -> NewStream | None:
        if claim.kind == self.KIND:
            return None
        payload: dict[str, Any] = {
            "kind": self.KIND,
            "org_id": claim.org_id,
            "user_id": claim.user_id,
            "params": {},
            "max_attempts": 1,
        }
        self.started.append(uuid.uuid4())
        return self.started[-1], NewEvent(EventType.TASK_SCHEDULED, payload)


# Tasks in given states, written to the database ---------------------------------------


def submission(**overrides: Any) -> Submission:
    values: dict[str, Any] = {
        "org_id": "org-a",
        "user_id": "alice",
        "kind": "process_data",
        "params": JOB,
        "request_id": "req-1",
    }
    values.update(overrides)
    return Submission(**values)


async def schedule(sessions: SessionFactory, max_attempts: int = 3, **overrides: Any) -> uuid.UUID:
    """A just-accepted task (``scheduled``, due at once), committed by a store of its own."""
    store = TaskStore(sessions, max_attempts=max_attempts, group_commit=False)
    accepted = await store.accept(submission(**overrides))
    return accepted.task_id


async def start_attempt(
    sessions: SessionFactory,
    task_id: uuid.UUID,
    *,
    lease_left: timedelta,
    owner: str = DEAD_OWNER,
) -> None:
    """``task_started`` for attempt 1, as a process writes it just before it dies mid-attempt."""
    started = NewEvent(
        EventType.TASK_STARTED,
        {
            "attempt": 1,
            "lease_owner": owner,
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


def task_row(at: datetime, **overrides: Any) -> dict[str, Any]:
    """A ``succeeded`` task's projection row created ``at``, without its events: for reads
    of the projection alone (listing), at sizes the event path would make slow."""
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": "org-a",
        "user_id": "alice",
        "kind": "process_data",
        "status": "succeeded",
        "version": 3,
        "attempts": 1,
        "max_attempts": 3,
        "params": {},
        "created_at": at,
        "updated_at": at,
        "parent_id": None,
    }
    row.update(overrides)
    return row


async def insert_rows(sessions: SessionFactory, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``task_row``s, a few thousand a statement."""
    async with session_scope(sessions) as session:
        for start in range(0, len(rows), 2000):
            await session.execute(insert(Task), rows[start : start + 2000])


# Reading it back -------------------------------------------------------------------------


async def stream(sessions: SessionFactory, task_id: uuid.UUID) -> list[TaskEvent]:
    """The task's own stream, oldest first."""
    async with session_scope(sessions) as session:
        query = select(TaskEvent).where(TaskEvent.stream_id == task_id).order_by(TaskEvent.version)
        return list(await session.scalars(query))


async def load(sessions: SessionFactory, task_id: uuid.UUID) -> Task:
    async with session_scope(sessions) as session:
        task = await session.get(Task, task_id)
    assert task is not None
    return task


async def status_counts(sessions: SessionFactory) -> dict[str, int]:
    async with session_scope(sessions) as session:
        rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
        return {status: count for status, count in rows}


async def wait_until(condition: Callable[[], bool], seconds: float = WAIT) -> None:
    """Wait, bounded, until state that other tasks change satisfies ``condition``."""
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


# A store and a worker of this process, driven directly ---------------------------------------


@dataclass
class Working:
    store: TaskStore
    worker: Worker

    def sweeper(self, interval: float = HOUR) -> Sweeper:
        return Sweeper(self.store, self.worker, interval=interval)


@asynccontextmanager
async def working(
    sessions: SessionFactory,
    handler: Handler,
    *,
    capacity: int = 4,
    lease_seconds: float = 30.0,
    group_commit: bool = True,
    terminal_hooks: Sequence[TerminalHook] = (),
    kinds: Sequence[str] = ("process_data",),
    more_kinds: Mapping[str, Handler | TaskKind] | None = None,
    cpu_slots: int = 1,
    timeout_seconds: float = 300.0,
    cancel_grace_seconds: float = 1.0,
) -> AsyncIterator[Working]:
    """A store (group commit, as in the app) and a worker of this process, with retries due
    at once; the worker's attempts are drained and the store closed at exit."""
    with ThreadPoolExecutor(1) as pool:
        store = TaskStore(
            sessions, max_attempts=3, group_commit=group_commit, terminal_hooks=terminal_hooks
        )
        worker = Worker(
            store=store,
            handlers={**{kind: handler for kind in kinds}, **(more_kinds or {})},
            cpu_slots=cpu_slots,
            policy=RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=0.0),
            capacity=capacity,
            lease_seconds=lease_seconds,
            sessions=sessions,
            cpu_pool=pool,
            timeout_seconds=timeout_seconds,
            cancel_grace_seconds=cancel_grace_seconds,
        )
        try:
            yield Working(store, worker)
        finally:
            await worker.drain(0)
            await store.close()


# The app over ASGI ---------------------------------------------------------------------------


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


async def api_events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/tasks/{task_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def types_of(events: Sequence[Any]) -> list[str]:
    """Event types, of API events (dicts) or rows."""
    return [e["type"] if isinstance(e, dict) else e.type for e in events]


def started_attempts(events: list[dict[str, Any]]) -> list[int]:
    return [e["payload"]["attempt"] for e in events if e["type"] == "task_started"]
