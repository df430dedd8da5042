"""The org's task with the greatest idempotency key in a range: how a schedule finds the
last slot it made a task for (its keys sort in time order)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.db.models import Task

__all__ = ["KeyedTask", "newest_by_key"]


@dataclass(frozen=True, slots=True)
class KeyedTask:
    task_id: uuid.UUID
    status: str
    idempotency_key: str


async def newest_by_key(
    session: AsyncSession, org_id: str, lowest: str, highest: str
) -> KeyedTask | None:
    """The org's task whose key is the greatest in ``[lowest, highest]`` and starts with
    what both bounds start with. One range of ``uq_tasks_org_idempotency_key``, read
    backwards; the prefix test keeps it exact under any collation."""
    prefix = os.path.commonprefix([lowest, highest])  # noqa: RUF071 - by character, as keys
    key = Task.idempotency_key
    row = (
        await session.execute(
            select(Task.id, Task.status, key)
            .where(
                Task.org_id == org_id,
                key.between(lowest, highest),
                func.substr(key, 1, len(prefix)) == prefix,
            )
            .order_by(key.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else KeyedTask(row.id, row.status, row.idempotency_key)
