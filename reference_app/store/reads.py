"""The store's reads: a task and its delivery, its events, the task an idempotency key made.

Org-scoped: another org's task, an unknown id and a webhook delivery (a part of
its parent task, not a task of the API) all read as None.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.db.models import Task, TaskEvent
from reference_app.store.records import TaskRecord
from reference_app.store.submissions import Accepted, IdempotencyMismatch, Submission

__all__ = ["events_of", "find_by_key", "find_task"]

_by_key = select(Task.id, Task.status, Task.request_hash)
_delivery_of = select(Task)


async def _owned(session: AsyncSession, org_id: str, task_id: uuid.UUID) -> Task | None:
    task = await session.get(Task, task_id)
    if task is None or task.org_id != org_id or task.parent_id is not None:
        return None
    return task


async def find_task(session: AsyncSession, org_id: str, task_id: uuid.UUID) -> TaskRecord | None:
    """The org's task with this id, and its newest webhook delivery's row if it has one."""
    task = await _owned(session, org_id, task_id)
    if task is None:
        return None
    # The newest: a re-driven task that ends again gets a delivery for each end.
    newest = _delivery_of.where(Task.parent_id == task.id).order_by(Task.created_at.desc())
    delivery = await session.scalar(newest.limit(1))
    return TaskRecord(task, delivery)


async def events_of(
    session: AsyncSession, org_id: str, task_id: uuid.UUID
) -> list[TaskEvent] | None:
    """Every event filed under the org's task (its deliveries' too), oldest first."""
    if await _owned(session, org_id, task_id) is None:
        return None
    events = await session.scalars(
        select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    )
    return list(events)


async def find_by_key(session: AsyncSession, submission: Submission) -> Accepted | None:
    """The task the submission's idempotency key already made; IdempotencyMismatch if the
    key was used with another request."""
    row = (
        await session.execute(
            _by_key.where(
                Task.org_id == submission.org_id,
                Task.idempotency_key == submission.idempotency_key,
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != submission.fingerprint():
        raise IdempotencyMismatch(submission.idempotency_key)
    return Accepted(task_id=row.id, status=row.status, created=False)
