"""Ending attempts: their outcome events appended, with the streams the terminal hooks start
in the same transaction, and what ends an attempt whose owner stopped renewing its lease."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.events.lifecycle import TaskStatus
from reference_app.events.outcomes import TERMINAL_EVENTS, cancelled_event, failure_events
from reference_app.events.store import Append, NewEvent, append_many, start_streams
from reference_app.store.claims import Claim, ClaimRow
from reference_app.store.records import DueTask, NewStream, TerminalHook

__all__ = ["append_outcomes", "expiry_events"]


async def append_outcomes(
    session: AsyncSession,
    outcomes: Sequence[tuple[Claim, list[NewEvent]]],
    hooks: Sequence[TerminalHook],
) -> list[list[DueTask]]:
    """Append attempts' outcomes, and start what the terminal ``hooks`` return for the
    final ones, in the same transaction. The streams started, for each outcome."""
    appends = [Append(c.task_id, c.version, events, c.parent_id) for c, events in outcomes]
    await append_many(session, appends)
    started: list[list[DueTask]] = []
    streams: list[NewStream] = []
    for claim, events in outcomes:
        final = events[-1]
        mine: list[DueTask] = []
        if final.type in TERMINAL_EVENTS:
            for hook in hooks:
                stream = hook(claim, final)
                if stream is not None:
                    streams.append(stream)
                    mine.append(DueTask(stream[0], stream[1].payload["kind"]))
        started.append(mine)
    await start_streams(session, streams)
    return started


def expiry_events(row: ClaimRow) -> list[NewEvent]:
    """What ends an attempt whose owner stopped renewing its lease: a retry (or the end, on
    its last attempt), or the cancel an operator had requested of it."""
    if row.status == TaskStatus.CANCELLING.value:  # nobody is left to stop it: it is over
        reason = f"cancel requested; the lease held by {row.lease_owner} then expired"
        return [cancelled_event(attempt=row.attempts, reason=reason)]
    return failure_events(
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        error_type="LeaseExpired",
        error=f"lease held by {row.lease_owner} expired; its process stopped",
        transient=True,
        delay=0.0,
    )
