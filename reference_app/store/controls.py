"""An operator's controls: cancel a task, or re-drive one that failed or was cancelled.

Each is a decision on the task's locked row, turned into the events to append. What
to append depends only on the stored status, which tells the last committed event:

| status | cancel | retry |
| --- | --- | --- |
| ``scheduled``, ``retrying`` | ``task_cancelled`` (terminal) | 409 |
| ``running`` | ``cancel_requested``: its worker stops the attempt | 409 |
| ``cancelling`` | nothing more: already requested | 409 |
| ``failed``, ``cancelled`` | 409 | ``task_requeued``: ``scheduled`` again |
| ``succeeded`` | 409 | 409 |
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.events.lifecycle import EventType, TaskStatus, status_after
from reference_app.events.outcomes import TERMINAL_EVENTS, cancelled_event
from reference_app.events.store import Append, NewEvent, append_many
from reference_app.store.claims import Claim, ClaimRow, select_owned
from reference_app.store.outcomes import append_outcomes
from reference_app.store.records import DueTask, TerminalHook

__all__ = [
    "Controlled",
    "TaskNotFound",
    "WrongStatus",
    "cancel",
    "cancel_events",
    "requeue",
    "requeue_events",
]

_S = TaskStatus


class TaskNotFound(LookupError):
    """No such task for this org (or a webhook delivery, which is part of its task)."""


class WrongStatus(Exception):
    """The action does not apply to the task in its current status."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"a {status} task cannot be {action}")
        self.action = action
        self.status = status


@dataclass(frozen=True, slots=True)
class Controlled:
    """The task after the action: its status, and the streams its end started (a
    ``task.cancelled`` webhook delivery), due now for a worker."""

    task_id: uuid.UUID
    status: str
    kind: str
    started: list[DueTask] = field(default_factory=list)


def cancel_events(row: ClaimRow, *, by: str) -> list[NewEvent]:
    """The events that cancel ``row``'s task (none if a cancel is already requested)."""
    status = _S(row.status)
    if status in (_S.SCHEDULED, _S.RETRYING):
        return [cancelled_event(attempt=row.attempts, reason="cancelled before it ran", by=by)]
    if status is _S.RUNNING:
        payload = {"attempt": row.attempts, "by": by, "lease_owner": row.lease_owner}
        return [NewEvent(EventType.CANCEL_REQUESTED, payload)]
    if status is _S.CANCELLING:
        return []
    raise WrongStatus("cancelled", status.value)


def requeue_events(row: ClaimRow, *, by: str, budget: int, now: datetime) -> list[NewEvent]:
    """``task_requeued`` for a failed or cancelled task: due ``now``, with ``budget`` more
    attempts than it has had."""
    status = _S(row.status)
    if status not in (_S.FAILED, _S.CANCELLED):
        raise WrongStatus("retried", status.value)
    payload = {
        "by": by,
        "previous_status": status.value,
        "attempts": row.attempts,
        "max_attempts": row.attempts + budget,
        "due_at": now.isoformat(),
    }
    return [NewEvent(EventType.TASK_REQUEUED, payload, at=now)]


# The transactions (run by the store's committer) -------------------------------------------


async def _locked(session: AsyncSession, org_id: str, task_id: uuid.UUID) -> ClaimRow:
    row = (await session.execute(select_owned, {"task_id": task_id, "org_id": org_id})).first()
    if row is None:
        raise TaskNotFound(task_id)
    return row


async def cancel(
    session: AsyncSession,
    org_id: str,
    task_id: uuid.UUID,
    *,
    by: str,
    hooks: Sequence[TerminalHook],
) -> Controlled:
    """Cancel the org's task on its locked row; a cancel that ends it runs the ``hooks``."""
    row = await _locked(session, org_id, task_id)
    events = cancel_events(row, by=by)
    started: list[DueTask] = []
    if events and events[-1].type in TERMINAL_EVENTS:  # its end, with its hooks
        claim = Claim.of(row, version=row.version, attempt=row.attempts)
        (started,) = await append_outcomes(session, [(claim, events)], hooks)
    elif events:
        await append_many(session, [Append(row.id, row.version, events)])
    status = status_after(events[-1].type).value if events else row.status
    return Controlled(row.id, status, row.kind, started)


async def requeue(
    session: AsyncSession,
    org_id: str,
    task_id: uuid.UUID,
    *,
    by: str,
    budget: int,
    now: datetime,
) -> Controlled:
    """Schedule the org's failed or cancelled task again, on its locked row."""
    row = await _locked(session, org_id, task_id)
    events = requeue_events(row, by=by, budget=budget, now=now)
    await append_many(session, [Append(row.id, row.version, events)])
    return Controlled(row.id, TaskStatus.SCHEDULED.value, row.kind)
