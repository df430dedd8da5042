"""Appending to the log, with the projection updated in the same transaction.

The projection row carries the stream's version. An append updates it only
where it still holds the version the caller read; otherwise nothing is
written and ``ConcurrencyConflict`` is raised, rolling back the caller's
transaction. That optimistic check is also the claim lock: of several
processes trying to start the same task, exactly one appends ``task_started``.

Appends come in batches (the group committer hands over every claim or
outcome of a transaction at once), so the statements do not grow with the
batch: one SELECT locks and checks every stream's row, one UPDATE per shape of
change moves them (executemany), and one INSERT writes all their events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, false, insert, or_, select, tuple_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.clock import utcnow
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import (
    EventType,
    IllegalTransition,
    TaskStatus,
    check_batch,
    check_sequence,
    statuses_before,
)
from reference_app.events.projection import RecordedEvent, changes_for

__all__ = [
    "Append",
    "ConcurrencyConflict",
    "NewEvent",
    "append_events",
    "append_many",
    "renew_lease",
    "renew_leases",
    "start_stream",
    "start_streams",
]

# Core tables, not ORM entities: these statements run on every request and task,
# and need neither the identity map nor ORM bulk-update bookkeeping.
_tasks = cast(Table, Task.__table__)
_events = cast(Table, TaskEvent.__table__)
# Statements are built once and executed with parameters: building one costs more than
# running it, and SQLAlchemy compiles each statement once and caches it.
# Executed with a list of rows: one multi-row INSERT however many rows.
_insert_tasks = insert(_tasks)
_insert_events = insert(_events)


def _allowed(first: EventType) -> frozenset[str]:
    return frozenset(s.value for s in statuses_before(first))


def _versioned_update(first: EventType) -> Update:
    """The projection UPDATE for a batch that starts with ``first``. It sets the columns
    named in its parameters, and only where the row still holds the expected version."""
    return update(_tasks).where(
        _tasks.c.id == bindparam("expected_id"),
        _tasks.c.version == bindparam("expected_version"),
        # The stored status tells the last committed event, so this checks the transition.
        # Equalities, not IN: an IN list is an "expanding" parameter, which executemany refuses.
        or_(false(), *(_tasks.c.status == status for status in sorted(_allowed(first)))),
    )


_append = {event_type: _versioned_update(event_type) for event_type in EventType}
_allowed_after = {event_type: _allowed(event_type) for event_type in EventType}
# The rows an append will move, locked until commit: FOR UPDATE on PostgreSQL (in id
# order, so two batches lock their common rows in the same order), and on SQLite the
# transaction's BEGIN IMMEDIATE already holds the database's only write lock.
_lock_streams = (
    select(_tasks.c.id, _tasks.c.version, _tasks.c.status)
    .where(_tasks.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_tasks.c.id)
    .with_for_update()
)
# Row values and RETURNING: both databases have them (SQLite since 3.15 and 3.35).
_renew_leases = (
    update(_tasks)
    .where(
        tuple_(_tasks.c.id, _tasks.c.version).in_(bindparam("streams", expanding=True)),
        _tasks.c.lease_owner == bindparam("owner"),
        _tasks.c.status == TaskStatus.RUNNING.value,
    )
    .values(lease_expires_at=bindparam("until"))
    .returning(_tasks.c.id, _tasks.c.version)
)


class ConcurrencyConflict(Exception):
    """The stream moved on since it was read; nothing was written."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: EventType
    payload: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


def _rows(
    stream_id: uuid.UUID, owner_id: uuid.UUID, first_version: int, events: Sequence[NewEvent]
) -> list[dict[str, Any]]:
    return [
        {
            "stream_id": stream_id,
            "task_id": owner_id,
            "version": first_version + i,
            "type": e.type.value,
            "payload": e.payload,
            "at": e.at,
        }
        for i, e in enumerate(events)
    ]


def _merged_changes(first_version: int, events: Sequence[NewEvent]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for i, e in enumerate(events):
        changes.update(changes_for(RecordedEvent(e.type, first_version + i, e.payload, e.at)))
    return changes


async def start_stream(session: AsyncSession, task_id: uuid.UUID, scheduled: NewEvent) -> None:
    """Append ``task_scheduled`` as version 1 and insert the projection row.

    A stream whose payload names a ``parent_id`` (a webhook delivery) files its
    events under that task, so they show up in the parent's event list.
    """
    await start_streams(session, [(task_id, scheduled)])


async def start_streams(
    session: AsyncSession, streams: Sequence[tuple[uuid.UUID, NewEvent]]
) -> list[uuid.UUID]:
    """``start_stream`` for many streams, with one INSERT per table for all of them.
    Returns their ids, in order."""
    tasks: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for task_id, scheduled in streams:
        check_sequence(None, [scheduled.type])
        changes = _merged_changes(1, [scheduled])
        tasks.append({"id": task_id, **changes})
        events += _rows(task_id, changes["parent_id"] or task_id, 1, [scheduled])
    if tasks:
        await session.execute(_insert_tasks, tasks)
        await session.execute(_insert_events, events)
    return [task_id for task_id, _ in streams]


async def append_events(
    session: AsyncSession,
    task_id: uuid.UUID,
    *,
    expected_version: int,
    events: Sequence[NewEvent],
    owner_id: uuid.UUID | None = None,
) -> int:
    """Append ``events`` after ``expected_version``; return the stream's new version.

    ``owner_id`` is the task the events are filed under, when the stream is
    not a task's own (a webhook delivery's events belong to its parent).

    Raises IllegalTransition if the batch may not follow the stream's last
    event, and ConcurrencyConflict if the stream is no longer at ``expected_version``.
    """
    append = Append(task_id, expected_version, events, owner_id)
    (version,) = await append_many(session, [append])
    return version


@dataclass(frozen=True, slots=True)
class Append:
    """One stream's part of ``append_many``: the arguments of ``append_events``."""

    task_id: uuid.UUID
    expected_version: int
    events: Sequence[NewEvent]
    owner_id: uuid.UUID | None = None


async def append_many(session: AsyncSession, appends: Sequence[Append]) -> list[int]:
    """``append_events`` for several streams, in statements that do not grow with their
    number. Returns each stream's new version; raises as ``append_events`` does, before
    anything is written."""
    if not appends:
        return []
    ids = [a.task_id for a in appends]
    if len(set(ids)) != len(ids):
        # The second append to a stream would expect the version the first one replaces.
        raise ConcurrencyConflict("two appends to one stream in one batch")
    locked = await session.execute(_lock_streams, {"ids": ids})
    current = {row.id: row for row in locked}
    updates: dict[tuple[EventType, tuple[str, ...]], list[dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    for a in appends:
        types = [e.type for e in a.events]
        check_batch(types)
        row = current.get(a.task_id)
        if row is None or row.version != a.expected_version:
            raise ConcurrencyConflict(
                f"task {a.task_id} is no longer at version {a.expected_version}"
            )
        if row.status not in _allowed_after[types[0]]:
            raise IllegalTransition(f"{types[0]} may not follow a task in status {row.status}")
        first = a.expected_version + 1
        params = {
            "expected_id": a.task_id,
            "expected_version": a.expected_version,
            **_merged_changes(first, a.events),
        }
        # executemany compiles its statement from the first row's keys: one group per shape.
        updates.setdefault((types[0], tuple(sorted(params))), []).append(params)
        rows += _rows(a.task_id, a.owner_id or a.task_id, first, a.events)
    sane_multi_rowcount = session.get_bind().dialect.supports_sane_multi_rowcount
    for (first_type, _), group in updates.items():
        result = await session.execute(_append[first_type], group)
        # The rows are locked and checked, so every UPDATE applies; the versioned WHERE and
        # this count are a second line of defence (asyncpg reports no executemany count).
        if (len(group) == 1 or sane_multi_rowcount) and (
            not isinstance(result, CursorResult) or result.rowcount != len(group)
        ):
            raise ConcurrencyConflict("a locked, checked stream did not move")
    await session.execute(_insert_events, rows)
    return [a.expected_version + len(a.events) for a in appends]


async def renew_lease(
    session: AsyncSession, task_id: uuid.UUID, *, version: int, owner: str, until: datetime
) -> bool:
    """Extend a running task's lease; False if the task moved on or another owner holds it."""
    renewed = await renew_leases(session, [(task_id, version)], owner=owner, until=until)
    return (task_id, version) in renewed


async def renew_leases(
    session: AsyncSession,
    streams: Sequence[tuple[uuid.UUID, int]],
    *,
    owner: str,
    until: datetime,
) -> set[tuple[uuid.UUID, int]]:
    """``renew_lease`` for many (task id, version) pairs of one owner, in one statement.
    Returns the pairs whose lease was extended."""
    if not streams:
        return set()
    result = await session.execute(
        _renew_leases, {"streams": list(streams), "owner": owner, "until": until}
    )
    return {(row.id, row.version) for row in result}
