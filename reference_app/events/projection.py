"""The task projection as a pure fold over the log, and its rebuild from the log."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import EventType, status_after

__all__ = [
    "OPERATIONAL_COLUMNS",
    "RecordedEvent",
    "changes_for",
    "compute_projection",
    "fold",
    "rebuild_projection",
]

# Written by the lease heartbeat between events, so not derivable from the log.
OPERATIONAL_COLUMNS = frozenset({"lease_expires_at"})


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """What the projection needs to know of one event."""

    type: EventType
    version: int
    payload: dict[str, Any]
    at: datetime


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _error_text(payload: dict[str, Any]) -> str:
    return f"{payload['error_type']}: {payload['error']}"


def changes_for(event: RecordedEvent) -> dict[str, Any]:
    """The projection columns that ``event`` sets. Depends on the event alone."""
    p = event.payload
    changes: dict[str, Any] = {
        "status": status_after(event.type).value,
        "version": event.version,
        "updated_at": event.at,
    }
    match event.type:
        case EventType.TASK_SCHEDULED:
            changes.update(
                kind=p["kind"],
                org_id=p["org_id"],
                user_id=p["user_id"],
                params=p["params"],
                request_id=p.get("request_id"),
                webhook_url=p.get("webhook_url"),
                idempotency_key=p.get("idempotency_key"),
                request_hash=p.get("request_hash"),
                max_attempts=p["max_attempts"],
                attempts=0,
                result=None,
                last_error=None,
                created_at=event.at,
                started_at=None,
                finished_at=None,
                # An inline task is not due for the sweeper while its request runs it.
                run_after=_when(p["not_before"]) if p.get("not_before") else event.at,
                lease_owner=None,
                lease_expires_at=None,
                parent_id=uuid.UUID(p["parent_id"]) if p.get("parent_id") else None,
            )
        case EventType.TASK_STARTED:
            changes.update(
                attempts=p["attempt"],
                started_at=event.at,
                run_after=None,
                lease_owner=p["lease_owner"],
                lease_expires_at=_when(p["lease_expires_at"]),
            )
        case EventType.ATTEMPT_FAILED:
            changes.update(last_error=_error_text(p))
        case EventType.RETRY_SCHEDULED:
            changes.update(run_after=_when(p["due_at"]), lease_owner=None, lease_expires_at=None)
        case EventType.TASK_SUCCEEDED:
            # A failed attempt's error stays in the log (GET /tasks/{id}/events), not on a success.
            changes.update(
                result=p["result"],
                last_error=None,
                finished_at=event.at,
                lease_owner=None,
                lease_expires_at=None,
            )
        case EventType.TASK_FAILED:
            changes.update(
                last_error=_error_text(p),
                finished_at=event.at,
                lease_owner=None,
                lease_expires_at=None,
            )
        case EventType.CANCEL_REQUESTED:
            pass  # the status says it; the lease stays with the attempt that is stopping
        case EventType.TASK_CANCELLED:
            changes.update(
                finished_at=event.at, run_after=None, lease_owner=None, lease_expires_at=None
            )
        case EventType.TASK_REQUEUED:
            # Attempts count on; the retry budget is renewed from where they stand.
            changes.update(
                max_attempts=p["max_attempts"],
                run_after=_when(p["due_at"]),
                result=None,
                finished_at=None,
            )
    return changes


def fold(events: Iterable[RecordedEvent]) -> dict[str, Any]:
    """The projection row of one task's stream, events in version order."""
    row: dict[str, Any] = {}
    for event in events:
        row.update(changes_for(event))
    return row


async def compute_projection(session: AsyncSession) -> dict[uuid.UUID, dict[str, Any]]:
    """Every stream's projection row (tasks and webhook deliveries), from the log alone."""
    query = select(TaskEvent).order_by(TaskEvent.stream_id, TaskEvent.version)
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for event in await session.scalars(query):
        recorded = RecordedEvent(EventType(event.type), event.version, event.payload, event.at)
        rows.setdefault(event.stream_id, {"id": event.stream_id}).update(changes_for(recorded))
    return rows


async def rebuild_projection(session: AsyncSession) -> int:
    """Replace the ``tasks`` table with the fold of the log; returns the task count.

    Safe while the app runs: on PostgreSQL it locks ``tasks`` against appends
    (SQLite's ``BEGIN IMMEDIATE`` already does), and a live lease keeps its
    heartbeat-extended expiry, so running tasks are not handed to the sweeper early.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Hold off appends (they update tasks first) until the new rows are in.
        await session.execute(text("LOCK TABLE tasks IN EXCLUSIVE MODE"))
    rebuilt = await compute_projection(session)
    leased = ("running", "cancelling")
    running = await session.execute(
        select(Task.id, Task.lease_expires_at).where(Task.status.in_(leased))
    )
    live_leases = {task_id: expires for task_id, expires in running}
    for task_id, row in rebuilt.items():
        if row["status"] in leased and live_leases.get(task_id) is not None:
            row["lease_expires_at"] = max(row["lease_expires_at"], live_leases[task_id])
    await session.execute(delete(Task))
    if rebuilt:
        await session.execute(insert(Task), list(rebuilt.values()))
    return len(rebuilt)
