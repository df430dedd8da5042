"""A claim: the attempt of a task that a worker owns under its lease, the store's reads
that find claimable work, and the append that starts attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias, cast

from sqlalchemy import Row, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.clock import utcnow
from reference_app.db.models import Task
from reference_app.events.lifecycle import EventType, TaskStatus
from reference_app.events.store import Append, NewEvent, append_many, renew_leases

__all__ = [
    "Claim",
    "ClaimRow",
    "Lease",
    "claim_batch",
    "count_due",
    "renew_batch",
    "select_cancel_request",
    "select_claimable",
    "select_due",
    "select_due_except_kinds",
    "select_due_of_kinds",
    "select_expired_leases",
    "select_owned",
    "start_attempts",
]

# Core reads, not ORM entities: a claim needs a few columns once, not an identity map.
# Built once and executed with parameters.
_tasks = cast(Table, Task.__table__)
_columns = (
    _tasks.c.id,
    _tasks.c.version,
    _tasks.c.status,
    _tasks.c.attempts,
    _tasks.c.max_attempts,
    _tasks.c.kind,
    _tasks.c.org_id,
    _tasks.c.user_id,
    _tasks.c.params,
    _tasks.c.request_id,
    _tasks.c.webhook_url,
    _tasks.c.parent_id,
    _tasks.c.lease_owner,
    _tasks.c.run_after,
)

# A row of the selects below.
ClaimRow: TypeAlias = Row[*tuple[Any, ...]]

# Tasks by id (parameter ``task_ids``, a list): the just-scheduled tasks of one batch.
select_claimable = select(*_columns).where(_tasks.c.id.in_(bindparam("task_ids", expanding=True)))

# Scheduled and retrying tasks due by ``now``, oldest first, at most ``limit``. Rows another
# process has locked are skipped (PostgreSQL; SQLite has one writer at a time anyway).
select_due = (
    select(*_columns)
    .where(
        _tasks.c.status.in_([TaskStatus.SCHEDULED.value, TaskStatus.RETRYING.value]),
        _tasks.c.run_after <= bindparam("now"),
    )
    .order_by(_tasks.c.run_after)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)

# The same, of the ``kinds`` named (a kind with a concurrency limit of its own), or of
# every kind but those (the kinds that share the worker's general slots).
select_due_of_kinds = select_due.where(_tasks.c.kind.in_(bindparam("kinds", expanding=True)))
select_due_except_kinds = select_due.where(_tasks.c.kind.not_in(bindparam("kinds", expanding=True)))

# How many scheduled and retrying tasks are due by ``now``: the backlog admission control
# bounds. The same index as ``select_due``.
count_due = select(func.count()).where(
    _tasks.c.status.in_([TaskStatus.SCHEDULED.value, TaskStatus.RETRYING.value]),
    _tasks.c.run_after <= bindparam("now"),
)

# Running tasks (a cancel requested or not) whose lease expired before ``now``.
select_expired_leases = (
    select(*_columns)
    .where(
        _tasks.c.status.in_([TaskStatus.RUNNING.value, TaskStatus.CANCELLING.value]),
        _tasks.c.lease_expires_at < bindparam("now"),
    )
    .with_for_update(skip_locked=True)
)

# The org's task ``task_id`` (not a webhook delivery, which is part of its task), locked
# for an operator's action on it.
select_owned = (
    select(*_columns)
    .where(
        _tasks.c.id == bindparam("task_id"),
        _tasks.c.org_id == bindparam("org_id"),
        _tasks.c.parent_id.is_(None),
    )
    .with_for_update()
)

# Whether a cancel was requested of the attempt ``attempt`` that ``owner`` runs: the row's
# version then is the one its ``task_cancelled`` must follow.
select_cancel_request = select(_tasks.c.version).where(
    _tasks.c.id == bindparam("task_id"),
    _tasks.c.status == TaskStatus.CANCELLING.value,
    _tasks.c.lease_owner == bindparam("owner"),
    _tasks.c.attempts == bindparam("attempt"),
)


@dataclass(frozen=True, slots=True)
class Claim:
    """The task's data, and its stream version once ``task_started`` is appended."""

    task_id: uuid.UUID
    version: int
    attempt: int
    kind: str
    org_id: str
    user_id: str
    params: dict[str, Any]
    request_id: str | None
    max_attempts: int
    webhook_url: str | None = None
    parent_id: uuid.UUID | None = None
    # When the task was due (its row's ``run_after``), and when this attempt's ``task_started``
    # was written: the queue delay, for the store's observers.
    due_at: datetime | None = None
    started_at: datetime | None = None

    @classmethod
    def of(
        cls, row: ClaimRow, *, version: int, attempt: int, started_at: datetime | None = None
    ) -> Claim:
        """From a row of one of this module's selects."""
        return cls(
            task_id=row.id,
            version=version,
            attempt=attempt,
            kind=row.kind,
            org_id=row.org_id,
            user_id=row.user_id,
            params=row.params,
            request_id=row.request_id,
            max_attempts=row.max_attempts,
            webhook_url=row.webhook_url,
            parent_id=row.parent_id,
            due_at=row.run_after,
            started_at=started_at,
        )

    @property
    def owner_id(self) -> uuid.UUID:
        """The task whose events these are: the parent for a webhook delivery, else itself."""
        return self.parent_id or self.task_id


@dataclass(frozen=True, slots=True)
class Lease:
    """Who runs an attempt, and for how long without renewing."""

    owner: str
    seconds: float

    def expires(self, now: datetime | None = None) -> datetime:
        return (now or utcnow()) + timedelta(seconds=self.seconds)


async def start_attempts(
    session: AsyncSession, rows: Sequence[ClaimRow], lease: Lease
) -> list[Claim]:
    """Start the next attempt of each row's task: a versioned append of ``task_started``
    each, which is the claim lock, all of them in one ``append_many``."""
    expires = lease.expires().isoformat()
    started = [
        NewEvent(
            EventType.TASK_STARTED,
            {"attempt": row.attempts + 1, "lease_owner": lease.owner, "lease_expires_at": expires},
        )
        for row in rows
    ]
    appends = [
        Append(row.id, row.version, [event], owner_id=row.parent_id)
        for row, event in zip(rows, started, strict=True)
    ]
    versions = await append_many(session, appends)
    return [
        Claim.of(row, version=version, attempt=row.attempts + 1, started_at=event.at)
        for row, version, event in zip(rows, versions, started, strict=True)
    ]


async def claim_batch(
    session: AsyncSession, items: Sequence[tuple[uuid.UUID, Lease]]
) -> list[Claim | None]:
    """One read and one append for every claim of a batch. None for a task that is no
    longer scheduled, or that the batch names twice (the claim goes to the caller whose
    lease it was started under)."""
    leases = dict(items)  # a task named twice is started under its last caller's lease
    rows = await session.execute(select_claimable, {"task_ids": sorted(leases)})
    startable = [row for row in rows if row.status == TaskStatus.SCHEDULED.value]
    started: dict[uuid.UUID, Claim] = {}
    # Grouped by lease: a batch holds the claims of one worker, so nearly always one group.
    for lease in set(leases.values()):
        mine = [row for row in startable if leases[row.id] == lease]
        started.update((c.task_id, c) for c in await start_attempts(session, mine, lease))
    return [
        started.pop(task_id, None) if leases[task_id] == lease else None for task_id, lease in items
    ]


async def renew_batch(
    session: AsyncSession, items: Sequence[tuple[uuid.UUID, int, Lease]]
) -> list[bool]:
    """Renew a batch's leases, a statement per lease owner; whether each was renewed."""
    renewed: set[tuple[uuid.UUID, int, Lease]] = set()
    for lease in {lease for _, _, lease in items}:
        mine = [(task_id, version) for task_id, version, each in items if each == lease]
        kept = await renew_leases(session, mine, owner=lease.owner, until=lease.expires())
        renewed |= {(task_id, version, lease) for task_id, version in kept}
    return [item in renewed for item in items]
