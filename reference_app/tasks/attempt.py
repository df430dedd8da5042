"""One attempt: run the handler under a lease, and record what happened in the log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

import structlog

from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory
from reference_app.events.lifecycle import EventType
from reference_app.events.outcomes import (
    after_cancel_request,
    cancelled_event,
    failure_events,
    success_event,
)
from reference_app.events.store import NewEvent
from reference_app.store import Claim, Lease, Recorded, TaskStore
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.deadline import AttemptCancelled, AttemptTimeout, Deadline
from reference_app.tasks.errors import is_transient
from reference_app.tasks.lease import leased
from reference_app.tasks.retry import RetryPolicy

__all__ = ["CANCEL_RECORD_SECONDS", "Attempt"]

log = get_logger(__name__)

# How long a cancelled attempt (shutdown) may take to hand its task back for a retry.
CANCEL_RECORD_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """Everything an attempt needs besides its claim; one per worker."""

    store: TaskStore
    lease: Lease
    sessions: SessionFactory
    cpu_pool: Executor
    # Called with a retry's delay when one is scheduled, so the sweeper can come back then.
    on_retry_scheduled: Callable[[float], None]
    # Cancels an attempt at its deadline, and gives up on one that does not stop.
    deadline: Deadline

    async def run(
        self, claim: Claim, handler: Handler, policy: RetryPolicy, *, deadline_seconds: float
    ) -> Recorded:
        """Run ``claim``'s attempt, for at most ``deadline_seconds`` (and the deadline's grace),
        and record its outcome. Cancelled (shutdown), it hands the task back for a retry and
        re-raises."""
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
            # Renewed only while the attempt is within its deadline: a process that is
            # alive but stuck past it lets the lease lapse, and another takes the task.
            renew_for = deadline_seconds + self.deadline.grace_seconds
            cancel = _CancelRequest()
            async with leased(
                self.store, claim, self.lease, renew_for=renew_for, on_cancel=cancel.seen
            ):
                return await self._run_and_record(
                    ctx, claim, handler, policy, deadline_seconds, cancel
                )

    async def _run_and_record(
        self,
        ctx: TaskContext,
        claim: Claim,
        handler: Handler,
        policy: RetryPolicy,
        deadline_seconds: float,
        cancel: _CancelRequest,
    ) -> Recorded:
        started = time.perf_counter()
        try:
            result = await self.deadline.run(handler(ctx), deadline_seconds, stop=cancel.event)
        except AttemptCancelled:
            assert cancel.version is not None
            reason = "cancel requested while it ran: the attempt was stopped"
            event = cancelled_event(attempt=claim.attempt, reason=reason)
            recorded, _ = await self._record(replace(claim, version=cancel.version), [event])
            log.warning("task_cancelled", duration_ms=round(_elapsed_ms(started), 3))
            return recorded
        except asyncio.CancelledError:
            await self._record_interrupted(claim)
            raise
        except Exception as exc:
            if is_transient(exc):  # expected now and then: one line, no traceback
                log.warning("attempt_failed", transient=True, error=f"{type(exc).__name__}: {exc}")
            else:
                log.exception("attempt_failed", transient=False)
            # Recorded, so handled: only a failure to record reaches the shield.
            return await self._record_failure(claim, exc, _elapsed_ms(started), policy)
        success = success_event(
            attempt=claim.attempt, result=result, duration_ms=_elapsed_ms(started)
        )
        recorded, _ = await self._record(claim, [success])
        log.info("task_succeeded")
        return recorded

    async def _record_failure(
        self, claim: Claim, exc: Exception, duration_ms: float, policy: RetryPolicy
    ) -> Recorded:
        transient = is_transient(exc)
        retry_after = getattr(exc, "retry_after", None)
        delay = policy.delay(claim.attempt, retry_after) if transient else 0.0
        details: dict[str, Any] = {"duration_ms": round(duration_ms, 3)}
        if isinstance(getattr(exc, "status_code", None), int):
            details["status_code"] = exc.status_code  # type: ignore[attr-defined]
        if isinstance(exc, AttemptTimeout):
            details["deadline_seconds"] = exc.deadline_seconds
        events = failure_events(
            attempt=claim.attempt,
            max_attempts=claim.max_attempts,
            error_type=type(exc).__name__,
            error=str(exc)[:500],
            transient=transient,
            delay=delay,
            details=details,
        )
        recorded, written = await self._record(claim, events)
        final = written[-1].type if written else None
        if final is EventType.RETRY_SCHEDULED:
            log.warning("retry_scheduled", delay_seconds=round(delay, 3), reason=type(exc).__name__)
            self.on_retry_scheduled(delay)
        elif final is EventType.TASK_CANCELLED:
            log.warning("task_cancelled", reason="cancel requested while the attempt ran")
        elif final is EventType.TASK_FAILED:
            log.error("task_failed", reason=type(exc).__name__)
        return recorded

    async def _record_interrupted(self, claim: Claim) -> None:
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
                asyncio.shield(self._record(claim, events)), CANCEL_RECORD_SECONDS
            )
            log.warning("task_interrupted")

    async def _record(
        self, claim: Claim, events: list[NewEvent]
    ) -> tuple[Recorded, list[NewEvent]]:
        """Record the attempt's outcome; what was recorded, and the events written (none if
        superseded)."""
        recorded = await self.store.record_outcome(claim, events)
        if not recorded.superseded:
            return recorded, events
        version = await self.store.cancel_requested(claim, self.lease)
        if version is not None:
            # A cancel came while it ran, before a heartbeat saw it: what the attempt did
            # stands, and a failure is not retried.
            events = after_cancel_request(events)
            recorded = await self.store.record_outcome(replace(claim, version=version), events)
            return recorded, [] if recorded.superseded else events
        # Our lease expired and another attempt took over: its outcome wins.
        log.warning("attempt_superseded")
        return recorded, []


class _CancelRequest:
    """Set by the heartbeat when an operator cancels the task: the version to follow."""

    __slots__ = ("event", "version")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.version: int | None = None

    def seen(self, version: int) -> None:
        self.version = version
        self.event.set()


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
