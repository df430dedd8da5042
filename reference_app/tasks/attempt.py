"""One attempt: run the handler under a lease, and record what happened in the log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import structlog

from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory
from reference_app.events.lifecycle import EventType
from reference_app.events.outcomes import failure_events, success_event
from reference_app.events.store import NewEvent
from reference_app.store import Claim, Lease, Recorded, TaskStore
from reference_app.tasks.context import Handler, TaskContext
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

    async def run(self, claim: Claim, handler: Handler, policy: RetryPolicy) -> Recorded:
        """Run ``claim``'s attempt and record its outcome. Cancelled (shutdown), it hands the
        task back for a retry and re-raises."""
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
            async with leased(self.store, claim, self.lease):
                return await self._run_and_record(ctx, claim, handler, policy)

    async def _run_and_record(
        self, ctx: TaskContext, claim: Claim, handler: Handler, policy: RetryPolicy
    ) -> Recorded:
        started = time.perf_counter()
        try:
            result = await handler(ctx)
        except asyncio.CancelledError:
            await self._record_cancelled(claim)
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
        recorded = await self._record(claim, [success])
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
        events = failure_events(
            attempt=claim.attempt,
            max_attempts=claim.max_attempts,
            error_type=type(exc).__name__,
            error=str(exc)[:500],
            transient=transient,
            delay=delay,
            details=details,
        )
        recorded = await self._record(claim, events)
        if events[-1].type is EventType.RETRY_SCHEDULED:
            log.warning("retry_scheduled", delay_seconds=round(delay, 3), reason=type(exc).__name__)
            self.on_retry_scheduled(delay)
        else:
            log.error("task_failed", reason=type(exc).__name__)
        return recorded

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
                asyncio.shield(self._record(claim, events)), CANCEL_RECORD_SECONDS
            )
            log.warning("task_interrupted")

    async def _record(self, claim: Claim, events: list[NewEvent]) -> Recorded:
        recorded = await self.store.record_outcome(claim, events)
        if recorded.superseded:
            # Our lease expired and another attempt took over: its outcome wins.
            log.warning("attempt_superseded")
        return recorded


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
