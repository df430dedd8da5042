"""Listing an org's tasks, newest first, a page at a time: the query and its cursor.

A page is ordered by ``(created_at, id)`` descending, so rows created in the same
microsecond still have one order, and the cursor is the position of a page's last row:
the next page is the rows strictly after it (keyset pagination, never OFFSET). A row
created or changed meanwhile never makes a row of a later page skip or repeat.

Every filter keeps the query one backward range scan of a ``(org_id, [status | kind,]
created_at, id)`` index (migration 0003), with no sort, however deep the page. The
indexes are partial, ``WHERE parent_id IS NULL``: webhook deliveries are not tasks of
the API (``GET /tasks/{id}`` shows a task's delivery), so they are not listed.

The cursor is not signed: it is a position, not a permission. The org comes from the
API key on every page, so an edited cursor can only move within the caller's own tasks;
a malformed one is ``InvalidCursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.db.models import Task
from reference_app.store.records import TaskRecord

__all__ = ["InvalidCursor", "Position", "TaskFilters", "TaskPage", "list_tasks", "page_query"]


class InvalidCursor(ValueError):
    """A cursor this store did not hand out (cut short, edited, or from elsewhere)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: its last row's ``created_at`` and id."""

    created_at: datetime
    task_id: uuid.UUID

    def encode(self) -> str:
        """The opaque cursor: URL-safe base64 of ``[created_at, id]``, unpadded."""
        raw = json.dumps([self.created_at.isoformat(), self.task_id.hex], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position ``encode`` made; InvalidCursor for anything else."""
        try:
            value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if not (isinstance(value, list) and len(value) == 2):
                raise ValueError("not a pair")
            created_at, task_id = (str(part) for part in value)
            position = cls(datetime.fromisoformat(created_at), uuid.UUID(hex=task_id))
            if position.created_at.utcoffset() is None:
                raise ValueError("a naive time")
        except (binascii.Error, ValueError):  # JSON and Unicode errors are ValueErrors
            raise InvalidCursor(
                "not a cursor from this API: pass the `next` of the previous page unchanged"
            ) from None
        return position


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """What to list: every filter given must match; ``created_after <= created_at <
    created_before``, so adjacent windows share no task."""

    status: str | None = None
    kind: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    """A page of tasks, newest first, and the position of the next page (None at the end)."""

    items: list[TaskRecord]
    next: Position | None


def page_query(
    org_id: str, filters: TaskFilters, *, limit: int, after: Position | None = None
) -> Select[Task]:
    """The org's tasks that match ``filters``, after ``after``, newest first, at most ``limit``."""
    query = select(Task).where(Task.org_id == org_id, Task.parent_id.is_(None))
    if filters.status is not None:
        query = query.where(Task.status == filters.status)
    if filters.kind is not None:
        query = query.where(Task.kind == filters.kind)
    if filters.created_after is not None:
        query = query.where(Task.created_at >= filters.created_after)
    # One upper bound, the tighter: given two, SQLite may bound its scan by the looser one
    # (or pick another index), and read every row between them.
    before = filters.created_before
    if after is not None and (before is None or after.created_at < before):
        # A row-value comparison: both databases make it the start of the backward scan.
        query = query.where(tuple_(Task.created_at, Task.id) < (after.created_at, after.task_id))
    elif before is not None:
        query = query.where(Task.created_at < before)
    return query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)


async def list_tasks(
    session: AsyncSession,
    org_id: str,
    filters: TaskFilters,
    *,
    limit: int,
    after: Position | None = None,
) -> TaskPage:
    """A page of the org's tasks, each with its latest webhook delivery."""
    rows = list(await session.scalars(page_query(org_id, filters, limit=limit + 1, after=after)))
    more = len(rows) > limit
    tasks = rows[:limit]
    deliveries = await _latest_deliveries(session, [t.id for t in tasks if t.webhook_url])
    last = tasks[-1] if more else None
    return TaskPage(
        items=[TaskRecord(task, deliveries.get(task.id)) for task in tasks],
        next=Position(last.created_at, last.id) if last is not None else None,
    )


async def _latest_deliveries(
    session: AsyncSession, parent_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Task]:
    """Each parent's newest delivery (a re-run task may have reported its end twice)."""
    if not parent_ids:
        return {}
    found = await session.scalars(
        select(Task).where(Task.parent_id.in_(parent_ids)).order_by(Task.created_at, Task.id)
    )
    return {delivery.parent_id: delivery for delivery in found if delivery.parent_id}
