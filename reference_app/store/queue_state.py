"""The queue at a glance, for the metrics' gauges: the live tasks by status, and the oldest
due task, in one statement of index lookups.

Every part reads ``ix_tasks_status_run_after`` (status, run_after): a count per live status
is a range of it, and each oldest due time is the first entry of one. So the cost follows
the work outstanding, never the history: the ended statuses are not counted, since a count
of every task that ever succeeded is a scan that grows with the log (the attempt counters
give the rate at which tasks end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Label

from reference_app.db.models import Task
from reference_app.events.lifecycle import TaskStatus

__all__ = ["DUE_STATUSES", "LIVE_STATUSES", "QueueState", "read_queue_state", "select_queue_state"]

_tasks = cast(Table, Task.__table__)

LIVE_STATUSES = (
    TaskStatus.SCHEDULED,
    TaskStatus.RUNNING,
    TaskStatus.RETRYING,
    TaskStatus.CANCELLING,
)
"""The statuses a task leaves without an operator: the work outstanding."""
DUE_STATUSES = (TaskStatus.SCHEDULED, TaskStatus.RETRYING)
"""The statuses whose tasks wait for a worker once their ``run_after`` has come."""


def _count(status: TaskStatus) -> Label[Any]:
    query = select(func.count()).where(_tasks.c.status == status.value)
    return query.scalar_subquery().label(status.value)


def _oldest_due(status: TaskStatus) -> Label[Any]:
    # The first entry of the index's range. Not min(): PostgreSQL may answer that by reading
    # the whole due range, which is the backlog.
    query = (
        select(_tasks.c.run_after)
        .where(_tasks.c.status == status.value, _tasks.c.run_after <= bindparam("now"))
        .order_by(_tasks.c.run_after)
        .limit(1)
    )
    return query.scalar_subquery().label(f"oldest_{status.value}")


# One round trip, parameter ``now``: a column per live status's count, then per due status
# the oldest ``run_after`` not after ``now``.
select_queue_state = select(
    *[_count(s) for s in LIVE_STATUSES],
    *[_oldest_due(s) for s in DUE_STATUSES],
)


@dataclass(frozen=True, slots=True)
class QueueState:
    by_status: dict[str, int]
    """Tasks (webhook deliveries included) in each of ``LIVE_STATUSES``."""
    oldest_due: datetime | None
    """The ``run_after`` of the task that has waited longest for a worker; None: none waits."""
    now: datetime

    @property
    def lag_seconds(self) -> float:
        """How long the oldest due task has waited (0 when none does)."""
        if self.oldest_due is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_due).total_seconds())


async def read_queue_state(session: AsyncSession, now: datetime) -> QueueState:
    row = (await session.execute(select_queue_state, {"now": now})).one()
    counts = {s.value: int(getattr(row, s.value) or 0) for s in LIVE_STATUSES}
    due = [getattr(row, f"oldest_{s.value}") for s in DUE_STATUSES]
    oldest = min((d for d in due if d is not None), default=None)
    return QueueState(by_status=counts, oldest_due=oldest, now=now)
