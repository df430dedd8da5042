"""Running tasks: claim with a versioned append, run under a lease, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.writer import Writer
from reference_app.events.lifecycle import EventType, TaskStatus
from reference_app.events.store import (
    Append,
    ConcurrencyConflict,
    NewEvent,
    append_many,
    renew_lease,
    start_streams,
)
from reference_app.tasks.claim import (
    Claim,
    ClaimRow,
    select_claimable,
    select_due,
    select_expired_leases,
)
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.errors import is_transient
from reference_app.tasks.outcomes import TERMINAL_EVENTS, failure_events, success_event
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.shield import shielded
from reference_app.webhooks.delivery import WEBHOOK_KIND, schedule_delivery

__all__ = ["Claim", "TaskRunner"]

log = get_logger(__name__)

_CANCEL_RECORD_SECONDS = 2.0


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
        policies: Mapping[str, RetryPolicy] | None = None,
        writer: Writer | None = None,
    ) -> None:
        self.sessions = sessions
        # Claims and outcomes go through the writer: group-committed in the app.
        self.writer = writer or Writer(sessions, group_commit=False)
        self.handlers = handlers
        self.policy = policy
        # Per-kind policies (webhook deliveries back off over hours); ``policy`` for the rest.
        self.policies = dict(policies or {})
        self.capacity = capacity
        self.lease = timedelta(seconds=lease_seconds)
        self.cpu_pool = cpu_pool
        self.owner = owner or f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_flight = 0
        self._spawned: set[asyncio.Task[None]] = set()
        # Set when work was left waiting for a slot; a freed slot then calls on_work_due.
        self._backlog = False
        # The sweeper's wake-up: called when a slot frees with work waiting, and when a
        # retry this process scheduled comes due (instead of waiting for the next sweep).
        self.on_work_due: Callable[[], None] | None = None

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
        if self._backlog and self.on_work_due is not None:
            self.on_work_due()

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
        # Take the slots before awaiting the database, so a request cannot take them meanwhile.
        self._in_flight += limit
        claims: list[Claim] = []
        try:
            async with session_scope(self.sessions) as session:
                rows = await session.execute(select_due, {"now": utcnow(), "limit": limit})
                started = await self._start(session, rows.all())
            claims = started  # committed
        finally:
            self._in_flight -= limit - len(claims)
        self._backlog = len(claims) == limit
        for claim in claims:
            self._spawn(claim)
        return len(claims)

    async def recover_expired_leases(self) -> int:
        """Fail the attempts of running tasks whose owner stopped renewing, and schedule retries."""
        now = utcnow()
        async with session_scope(self.sessions) as session:
            rows = (await session.execute(select_expired_leases, {"now": now})).all()
            outcomes = [
                (
                    Claim.of(row, version=row.version, attempt=row.attempts),
                    failure_events(
                        attempt=row.attempts,
                        max_attempts=row.max_attempts,
                        error_type="LeaseExpired",
                        error=f"lease held by {row.lease_owner} expired; its process stopped",
                        transient=True,
                        delay=0.0,
                    ),
                )
                for row in rows
            ]
            enqueued = await self._append_outcomes(session, outcomes) if outcomes else []
        deliveries = [delivery for each in enqueued for delivery in each]
        for row in rows:
            log.warning("lease_expired", task_id=str(row.id), kind=row.kind, attempt=row.attempts)
        self._run_soon(deliveries)
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
            return await self.writer.run_batched(self._claim_batch, task_id)
        except ConcurrencyConflict:
            return None  # the sweeper got there first

    async def _claim_batch(
        self, session: AsyncSession, task_ids: Sequence[uuid.UUID]
    ) -> list[Claim | None]:
        """Start the tasks of ``task_ids`` that are still scheduled: one read, one append for
        all of them. None for the others (already claimed, or named twice)."""
        rows = await session.execute(select_claimable, {"task_ids": sorted(set(task_ids))})
        startable = [row for row in rows if row.status == TaskStatus.SCHEDULED.value]
        started = {claim.task_id: claim for claim in await self._start(session, startable)}
        return [started.pop(task_id, None) for task_id in task_ids]

    async def _start(self, session: AsyncSession, rows: Sequence[ClaimRow]) -> list[Claim]:
        """Start the next attempt of each row's task: a versioned append of ``task_started``
        each, which is the claim lock, all of them in one ``append_many``."""
        versions = await append_many(session, [self._started(row) for row in rows])
        return [
            Claim.of(row, version=version, attempt=row.attempts + 1)
            for row, version in zip(rows, versions, strict=True)
        ]

    def _started(self, row: ClaimRow) -> Append:
        """``task_started`` for the row's next attempt, leased to this process."""
        started = NewEvent(
            EventType.TASK_STARTED,
            {
                "attempt": row.attempts + 1,
                "lease_owner": self.owner,
                "lease_expires_at": (utcnow() + self.lease).isoformat(),
            },
        )
        return Append(row.id, row.version, [started], owner_id=row.parent_id)

    def _spawn(self, claim: Claim) -> None:
        self._track(asyncio.create_task(self._run_spawned(claim), name=f"task-{claim.task_id}"))

    def _track(self, task: asyncio.Task[None]) -> None:
        # The loop keeps only weak references to tasks: hold them until done.
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _run_soon(self, task_ids: list[uuid.UUID]) -> None:
        """Start just-scheduled tasks (webhook deliveries) now if slots are free, else leave them
        to the sweeper."""
        for task_id in task_ids:
            if not self.try_reserve():
                return
            self._track(asyncio.create_task(self.run_scheduled(task_id=task_id)))

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
            # The lease is renewed until the outcome is committed, not just while the body
            # runs: a slow commit must not make the sweeper think this process died.
            async with self._leased(claim):
                await self._run_and_record(ctx, claim)

    async def _run_and_record(self, ctx: TaskContext, claim: Claim) -> None:
        started = time.perf_counter()
        try:
            result = await self.handlers[claim.kind](ctx)
        except asyncio.CancelledError:
            await self._record_cancelled(claim)
            raise
        except Exception as exc:
            if is_transient(exc):  # expected now and then: one line, no traceback
                log.warning("attempt_failed", transient=True, error=f"{type(exc).__name__}: {exc}")
            else:
                log.exception("attempt_failed", transient=False)
            # Recorded, so handled: only a failure to record reaches the shield.
            await self._record_failure(claim, exc, _elapsed_ms(started))
            return
        await self._record(
            claim,
            [success_event(attempt=claim.attempt, result=result, duration_ms=_elapsed_ms(started))],
        )
        log.info("task_succeeded")

    @contextlib.asynccontextmanager
    async def _leased(self, claim: Claim) -> AsyncIterator[None]:
        """Keep renewing the claim's lease for as long as the block runs."""
        stop = asyncio.Event()
        heartbeat = asyncio.create_task(
            self._keep_lease(claim, stop), name=f"lease-{claim.task_id}"
        )
        try:
            yield
        finally:
            stop.set()
            # Let a renewal in flight finish: cancelling it mid-query would throw away a
            # pooled connection. One that hangs (the database is gone) is cancelled.
            try:
                await asyncio.wait([heartbeat], timeout=self.lease.total_seconds() / 3)
            finally:
                heartbeat.cancel()

    async def _keep_lease(self, claim: Claim, stop: asyncio.Event) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                async with session_scope(self.sessions) as session:
                    kept = await renew_lease(
                        session,
                        claim.task_id,
                        version=claim.version,
                        owner=self.owner,
                        until=utcnow() + self.lease,
                    )
                if not kept and not stop.is_set():  # after our outcome, the version moved on
                    log.warning("lease_lost")
                    return
            except Exception:
                log.exception("lease_renewal_failed")

    def _policy_for(self, kind: str) -> RetryPolicy:
        return self.policies.get(kind, self.policy)

    async def _record_failure(self, claim: Claim, exc: Exception, duration_ms: float) -> None:
        transient = is_transient(exc)
        retry_after = getattr(exc, "retry_after", None)
        delay = self._policy_for(claim.kind).delay(claim.attempt, retry_after) if transient else 0.0
        details: dict[str, Any] = {"duration_ms": round(duration_ms, 3)}
        if isinstance(getattr(exc, "status_code", None), int):
            details["status_code"] = exc.status_code  # type: ignore[attr-defined]
        events = failure_events(
            attempt=claim.attempt,
            max_attempts=claim.max_attempts,
            error_type=type(exc).__name__,
            error=str(exc)[:500],
            transient=transient,
            delay=delay,
            details=details,
        )
        await self._record(claim, events)
        if events[-1].type is EventType.RETRY_SCHEDULED:
            log.warning("retry_scheduled", delay_seconds=round(delay, 3), reason=type(exc).__name__)
            if self.on_work_due is not None:
                asyncio.get_running_loop().call_later(delay, self.on_work_due)
        else:
            log.error("task_failed", reason=type(exc).__name__)

    async def _record_cancelled(self, claim: Claim) -> None:
        """Hand an attempt cut by shutdown back for a retry now, not after its lease expires."""
        events = failure_events(
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

    async def _record(self, claim: Claim, events: list[NewEvent]) -> None:
        try:
            deliveries = await self.writer.run_batched(self._append_outcomes, (claim, events))
        except ConcurrencyConflict:
            # Our lease expired and another attempt took over: its outcome wins.
            log.warning("attempt_superseded")
            return
        self._run_soon(deliveries)

    async def _append_outcomes(
        self, session: AsyncSession, outcomes: Sequence[tuple[Claim, list[NewEvent]]]
    ) -> list[list[uuid.UUID]]:
        """Append attempts' outcomes; a final one with a webhook URL enqueues its delivery
        in the same transaction. Returns the deliveries enqueued for each outcome."""
        appends = [Append(c.task_id, c.version, events, c.parent_id) for c, events in outcomes]
        await append_many(session, appends)
        enqueued: list[list[uuid.UUID]] = []
        deliveries: list[tuple[uuid.UUID, NewEvent]] = []
        for claim, events in outcomes:
            final = events[-1]
            if claim.webhook_url is None or final.type not in TERMINAL_EVENTS:
                enqueued.append([])
                continue
            succeeded = final.type is EventType.TASK_SUCCEEDED
            delivery = schedule_delivery(
                claim,
                status="succeeded" if succeeded else "failed",
                outcome={"result": final.payload["result"]}
                if succeeded
                else {"error": f"{final.payload['error_type']}: {final.payload['error']}"},
                max_attempts=self._policy_for(WEBHOOK_KIND).max_attempts,
                at=final.at,
            )
            deliveries.append(delivery)
            enqueued.append([delivery[0]])
        await start_streams(session, deliveries)
        return enqueued


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
