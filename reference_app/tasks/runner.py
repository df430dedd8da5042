"""Running tasks: claim with a versioned append, run under a lease, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task
from reference_app.events.lifecycle import EventType, TaskStatus
from reference_app.events.store import ConcurrencyConflict, NewEvent, append_events, renew_lease
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.errors import is_transient
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.shield import shielded

__all__ = ["Claim", "TaskRunner"]

log = get_logger(__name__)

_CANCEL_RECORD_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Claim:
    """An attempt this process owns: the task's data and its version after ``task_started``."""

    task_id: uuid.UUID
    version: int
    attempt: int
    kind: str
    org_id: str
    params: dict[str, Any]
    request_id: str | None
    max_attempts: int


class TaskRunner:
    """Runs task attempts in this process, at most ``capacity`` at a time."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        handlers: Mapping[str, Handler],
        policy: RetryPolicy,
        capacity: int,
        lease_seconds: float,
        cpu_pool: Executor,
        owner: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.handlers = handlers
        self.policy = policy
        self.capacity = capacity
        self.lease = timedelta(seconds=lease_seconds)
        self.cpu_pool = cpu_pool
        self.owner = owner or f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_flight = 0
        self._spawned: set[asyncio.Task[None]] = set()
        # Set when work was left waiting for a slot; a freed slot then calls on_slot_freed.
        self._backlog = False
        self.on_slot_freed: Callable[[], None] | None = None

    # Capacity -------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        return self.capacity - self._in_flight

    def try_reserve(self) -> bool:
        """Take a slot if one is free. Work that gets none stays scheduled for the sweeper."""
        if self._in_flight >= self.capacity:
            self._backlog = True
            return False
        self._in_flight += 1
        return True

    def release(self) -> None:
        self._in_flight -= 1
        if self._backlog and self.on_slot_freed is not None:
            self.on_slot_freed()

    # Entry points -----------------------------------------------------------

    @shielded
    async def run_scheduled(self, *, task_id: uuid.UUID) -> None:
        """BackgroundTasks entry point: claim a just-scheduled task and run it (slot reserved)."""
        try:
            claim = await self._claim_scheduled(task_id)
            if claim is not None:
                await self._execute(claim)
        finally:
            self.release()

    async def run_inline(self, task_id: uuid.UUID) -> None:
        """Run one attempt inside the request; a transient failure is left to the sweeper."""
        claim = await self._claim_scheduled(task_id)
        if claim is not None:
            await self._execute(claim)

    async def claim_due(self) -> int:
        """Claim due scheduled and retrying tasks, up to the free slots, and start them."""
        limit = self.free_slots
        if limit <= 0:
            return 0
        now = utcnow()
        async with session_scope(self.sessions) as session:
            rows = await session.scalars(
                select(Task)
                .where(
                    Task.status.in_([TaskStatus.SCHEDULED.value, TaskStatus.RETRYING.value]),
                    Task.run_after <= now,
                )
                .order_by(Task.run_after)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            claims = [await self._start(session, row) for row in rows.all()]
        self._backlog = len(claims) == limit
        for claim in claims:
            self._in_flight += 1
            self._spawn(claim)
        return len(claims)

    async def recover_expired_leases(self) -> int:
        """Fail the attempts of running tasks whose owner stopped renewing, and schedule retries."""
        now = utcnow()
        async with session_scope(self.sessions) as session:
            rows = (
                await session.scalars(
                    select(Task)
                    .where(Task.status == TaskStatus.RUNNING.value, Task.lease_expires_at < now)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await append_events(
                    session,
                    row.id,
                    expected_version=row.version,
                    events=self._failure_events(
                        attempt=row.attempts,
                        max_attempts=row.max_attempts,
                        error_type="LeaseExpired",
                        error=f"lease held by {row.lease_owner} expired; its process stopped",
                        transient=True,
                        delay=0.0,
                    ),
                )
        for row in rows:
            log.warning("lease_expired", task_id=str(row.id), kind=row.kind, attempt=row.attempts)
        return len(rows)

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for attempts the sweeper started, then cancel the rest."""
        pending = set(self._spawned)
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
        for task in still_running:
            task.cancel()
        if still_running:
            log.warning("shutdown_cut_tasks", count=len(still_running))
            await asyncio.wait(still_running, timeout=_CANCEL_RECORD_SECONDS + 1)

    # Claiming ---------------------------------------------------------------

    async def _claim_scheduled(self, task_id: uuid.UUID) -> Claim | None:
        try:
            async with session_scope(self.sessions) as session:
                row = await session.get(Task, task_id)
                if row is None or row.status != TaskStatus.SCHEDULED.value:
                    return None
                return await self._start(session, row)
        except ConcurrencyConflict:
            return None  # the sweeper got there first

    async def _start(self, session: AsyncSession, row: Task) -> Claim:
        attempt = row.attempts + 1
        started = NewEvent(
            EventType.TASK_STARTED,
            {
                "attempt": attempt,
                "lease_owner": self.owner,
                "lease_expires_at": (utcnow() + self.lease).isoformat(),
            },
        )
        version = await append_events(
            session, row.id, expected_version=row.version, events=[started]
        )
        return Claim(
            task_id=row.id,
            version=version,
            attempt=attempt,
            kind=row.kind,
            org_id=row.org_id,
            params=row.params,
            request_id=row.request_id,
            max_attempts=row.max_attempts,
        )

    def _spawn(self, claim: Claim) -> None:
        task = asyncio.create_task(self._run_spawned(claim), name=f"task-{claim.task_id}")
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    @shielded
    async def _run_spawned(self, claim: Claim) -> None:
        try:
            await self._execute(claim)
        finally:
            self.release()

    # Running ----------------------------------------------------------------

    async def _execute(self, claim: Claim) -> None:
        ctx = TaskContext(
            task_id=claim.task_id,
            org_id=claim.org_id,
            kind=claim.kind,
            params=claim.params,
            attempt=claim.attempt,
            sessions=self.sessions,
            cpu_pool=self.cpu_pool,
        )
        with structlog.contextvars.bound_contextvars(
            task_id=str(claim.task_id),
            kind=claim.kind,
            attempt=claim.attempt,
            request_id=claim.request_id,
        ):
            log.info("task_started")
            try:
                result = await self._run_handler(ctx, claim)
            except asyncio.CancelledError:
                await self._record_cancelled(claim)
                raise
            except Exception as exc:
                log.exception("attempt_failed", transient=is_transient(exc))
                # Recorded, so handled: only a failure to record reaches the shield.
                await self._record_failure(claim, exc)
                return
            succeeded = NewEvent(
                EventType.TASK_SUCCEEDED, {"attempt": claim.attempt, "result": result}
            )
            await self._record(claim, [succeeded])
            log.info("task_succeeded")

    async def _run_handler(self, ctx: TaskContext, claim: Claim) -> dict[str, Any]:
        """The task body, with its lease renewed while it runs."""
        heartbeat = asyncio.create_task(self._keep_lease(claim), name=f"lease-{claim.task_id}")
        try:
            return await self.handlers[claim.kind](ctx)
        finally:
            heartbeat.cancel()

    async def _keep_lease(self, claim: Claim) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with session_scope(self.sessions) as session:
                    kept = await renew_lease(
                        session,
                        claim.task_id,
                        version=claim.version,
                        owner=self.owner,
                        until=utcnow() + self.lease,
                    )
                if not kept:
                    log.warning("lease_lost")
                    return
            except Exception:
                log.exception("lease_renewal_failed")

    async def _record_failure(self, claim: Claim, exc: Exception) -> None:
        transient = is_transient(exc)
        delay = self.policy.backoff(claim.attempt) if transient else 0.0
        events = self._failure_events(
            attempt=claim.attempt,
            max_attempts=claim.max_attempts if transient else claim.attempt,
            error_type=type(exc).__name__,
            error=str(exc)[:500],
            transient=transient,
            delay=delay,
        )
        await self._record(claim, events)
        if events[-1].type is EventType.RETRY_SCHEDULED:
            log.warning("retry_scheduled", delay_seconds=round(delay, 3), reason=type(exc).__name__)
        else:
            log.error("task_failed", reason=type(exc).__name__)

    async def _record_cancelled(self, claim: Claim) -> None:
        """Hand an attempt cut by shutdown back for a retry now, not after its lease expires."""
        events = self._failure_events(
            attempt=claim.attempt,
            max_attempts=claim.max_attempts,
            error_type="Cancelled",
            error="attempt interrupted by shutdown",
            transient=True,
            delay=0.0,
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.shield(self._record(claim, events)), _CANCEL_RECORD_SECONDS
            )
            log.warning("task_interrupted")

    def _failure_events(
        self,
        *,
        attempt: int,
        max_attempts: int,
        error_type: str,
        error: str,
        transient: bool,
        delay: float,
    ) -> list[NewEvent]:
        failed = NewEvent(
            EventType.ATTEMPT_FAILED,
            {"attempt": attempt, "error_type": error_type, "error": error, "transient": transient},
        )
        if transient and attempt < max_attempts:
            due = failed.at + timedelta(seconds=delay)
            retry = {
                "attempt": attempt,
                "due_at": due.isoformat(),
                "delay_seconds": delay,
                "reason": error_type,
            }
            return [failed, NewEvent(EventType.RETRY_SCHEDULED, retry, at=failed.at)]
        final = {"attempt": attempt, "error_type": error_type, "error": error}
        return [failed, NewEvent(EventType.TASK_FAILED, final, at=failed.at)]

    async def _record(self, claim: Claim, events: list[NewEvent]) -> None:
        try:
            async with session_scope(self.sessions) as session:
                await append_events(
                    session, claim.task_id, expected_version=claim.version, events=events
                )
        except ConcurrencyConflict:
            # Our lease expired and another attempt took over: its outcome wins.
            log.warning("attempt_superseded")
