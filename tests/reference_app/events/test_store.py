"""The store: versioned appends that move the projection in the same transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import EventType, IllegalTransition
from reference_app.events.store import (
    Append,
    ConcurrencyConflict,
    NewEvent,
    append_events,
    append_many,
    renew_lease,
    start_stream,
)

E = EventType
CONCURRENT_WRITERS = 8


def scheduled() -> NewEvent:
    return NewEvent(
        E.TASK_SCHEDULED,
        {
            "kind": "send_notification",
            "org_id": "org-a",
            "user_id": "alice",
            "params": {"email": "a@example.com", "message": "hi"},
            "request_id": "req-1",
            "max_attempts": 3,
        },
    )


def started(attempt: int = 1, owner: str = "worker-1") -> NewEvent:
    lease = (utcnow() + timedelta(seconds=30)).isoformat()
    return NewEvent(
        E.TASK_STARTED, {"attempt": attempt, "lease_owner": owner, "lease_expires_at": lease}
    )


def failed_then(decision: EventType, attempt: int = 1) -> list[NewEvent]:
    failure = NewEvent(
        E.ATTEMPT_FAILED,
        {"attempt": attempt, "error_type": "TimeoutError", "error": "slow", "transient": True},
    )
    if decision is E.RETRY_SCHEDULED:
        payload: dict[str, Any] = {"attempt": attempt, "due_at": failure.at.isoformat()}
    else:
        payload = {"attempt": attempt, "error_type": "TimeoutError", "error": "slow"}
    return [failure, NewEvent(decision, payload, at=failure.at)]


def succeeded(attempt: int = 1) -> NewEvent:
    return NewEvent(E.TASK_SUCCEEDED, {"attempt": attempt, "result": {"ok": True}})


async def new_task(sessions: SessionFactory) -> uuid.UUID:
    task_id = uuid.uuid4()
    async with session_scope(sessions) as session:
        await start_stream(session, task_id, scheduled())
    return task_id


async def append(
    sessions: SessionFactory, task_id: uuid.UUID, expected_version: int, events: list[NewEvent]
) -> int:
    async with session_scope(sessions) as session:
        return await append_events(
            session, task_id, expected_version=expected_version, events=events
        )


async def stored_events(sessions: SessionFactory, task_id: uuid.UUID) -> list[tuple[int, str]]:
    async with session_scope(sessions) as session:
        rows = await session.execute(
            select(TaskEvent.version, TaskEvent.type)
            .where(TaskEvent.task_id == task_id)
            .order_by(TaskEvent.id)
        )
        return [(r.version, r.type) for r in rows]


async def stored_task(sessions: SessionFactory, task_id: uuid.UUID) -> Task | None:
    async with session_scope(sessions) as session:
        return await session.get(Task, task_id)


async def test_start_stream_writes_version_1_and_the_projection_row(
    sessions: SessionFactory,
) -> None:
    task_id = await new_task(sessions)

    assert await stored_events(sessions, task_id) == [(1, "task_scheduled")]
    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.status, task.version, task.attempts) == ("scheduled", 1, 0)
    assert (task.kind, task.org_id, task.user_id) == ("send_notification", "org-a", "alice")
    assert task.run_after == task.created_at


async def test_start_stream_commits_nothing_when_its_transaction_rolls_back(
    sessions: SessionFactory,
) -> None:
    task_id = uuid.uuid4()

    async def schedule_then_die() -> None:
        async with session_scope(sessions) as session:
            await start_stream(session, task_id, scheduled())
            raise RuntimeError("request died before commit")

    with pytest.raises(RuntimeError, match="request died"):
        await schedule_then_die()

    assert await stored_events(sessions, task_id) == []
    assert await stored_task(sessions, task_id) is None


async def test_start_stream_refuses_any_first_event_but_task_scheduled(
    sessions: SessionFactory,
) -> None:
    task_id = uuid.uuid4()
    async with session_scope(sessions) as session:
        with pytest.raises(IllegalTransition):
            await start_stream(session, task_id, started())

    assert await stored_events(sessions, task_id) == []
    assert await stored_task(sessions, task_id) is None


async def test_an_append_whose_event_insert_fails_leaves_the_projection_unmoved(
    sessions: SessionFactory,
) -> None:
    task_id = await new_task(sessions)
    # A rogue writer took version 2 in the log without moving the projection.
    async with session_scope(sessions) as session:
        await session.execute(
            insert(TaskEvent).values(
                stream_id=task_id,
                task_id=task_id,
                version=2,
                type="task_started",
                payload={"rogue": True},
                at=utcnow(),
            )
        )

    with pytest.raises(IntegrityError):
        await append(sessions, task_id, 1, [started()])

    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.status, task.version, task.lease_owner) == ("scheduled", 1, None)


async def test_versions_run_from_1_to_n_without_gaps(sessions: SessionFactory) -> None:
    task_id = await new_task(sessions)

    versions = [
        await append(sessions, task_id, 1, [started(1)]),
        await append(sessions, task_id, 2, failed_then(E.RETRY_SCHEDULED)),
        await append(sessions, task_id, 4, [started(2)]),
        await append(sessions, task_id, 5, [succeeded(2)]),
    ]

    assert versions == [2, 4, 5, 6]
    assert await stored_events(sessions, task_id) == [
        (1, "task_scheduled"),
        (2, "task_started"),
        (3, "attempt_failed"),
        (4, "retry_scheduled"),
        (5, "task_started"),
        (6, "task_succeeded"),
    ]
    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.status, task.version, task.attempts) == ("succeeded", 6, 2)
    assert task.result == {"ok": True}
    assert task.last_error is None  # the success clears it; attempt_failed keeps it in the log


async def test_of_concurrent_appends_at_one_version_exactly_one_wins(
    sessions: SessionFactory,
) -> None:
    task_id = await new_task(sessions)
    owners = [f"worker-{n}" for n in range(CONCURRENT_WRITERS)]

    async def claim(owner: str) -> int:
        # Each writer has its own session and transaction, as separate requests would.
        return await append(sessions, task_id, 1, [started(owner=owner)])

    async with asyncio.timeout(30):
        outcomes = await asyncio.gather(*(claim(o) for o in owners), return_exceptions=True)

    winners = [owner for owner, outcome in zip(owners, outcomes, strict=True) if outcome == 2]
    losers = [o for o in outcomes if isinstance(o, ConcurrencyConflict)]
    assert len(winners) == 1, outcomes
    assert len(losers) == CONCURRENT_WRITERS - 1, outcomes
    assert await stored_events(sessions, task_id) == [(1, "task_scheduled"), (2, "task_started")]
    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.version, task.status, task.lease_owner) == (2, "running", winners[0])


@pytest.mark.parametrize("expected_version", [0, 2, 7])
async def test_an_append_at_a_stale_or_future_version_conflicts_and_writes_nothing(
    sessions: SessionFactory, expected_version: int
) -> None:
    task_id = await new_task(sessions)

    async with session_scope(sessions) as session:
        with pytest.raises(ConcurrencyConflict, match=f"no longer at version {expected_version}"):
            await append_events(
                session, task_id, expected_version=expected_version, events=[started()]
            )
        # The transaction goes on to commit: the refused append itself wrote nothing.

    assert await stored_events(sessions, task_id) == [(1, "task_scheduled")]
    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.status, task.version) == ("scheduled", 1)


async def test_append_many_moves_every_stream_and_writes_their_events_in_one_insert(
    sessions: SessionFactory,
) -> None:
    first, second = await new_task(sessions), await new_task(sessions)
    await append(sessions, second, 1, [started()])
    inserts: list[int] = []

    async with session_scope(sessions) as session:
        connection = await session.connection()

        def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if statement.startswith("INSERT INTO task_events"):
                inserts.append(1)

        event.listen(connection.sync_connection, "before_cursor_execute", count)
        versions = await append_many(
            session, [Append(first, 1, [started()]), Append(second, 2, [succeeded()])]
        )
        event.remove(connection.sync_connection, "before_cursor_execute", count)

    assert versions == [2, 3]
    assert len(inserts) == 1
    assert await stored_events(sessions, first) == [(1, "task_scheduled"), (2, "task_started")]
    assert [t for _, t in await stored_events(sessions, second)][-1] == "task_succeeded"


async def test_append_many_uses_the_same_statements_for_ten_streams_as_for_one(
    sessions: SessionFactory,
) -> None:
    # One locking SELECT, one UPDATE per shape of change (executemany), one INSERT: a batch
    # of claims or outcomes costs a few statements, not a few per task.
    async def statements_for(count: int) -> list[str]:
        tasks = [await new_task(sessions) for _ in range(count)]
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            seen.append(statement.split()[0])

        async with session_scope(sessions) as session:
            connection = await session.connection()
            event.listen(connection.sync_connection, "before_cursor_execute", record)
            versions = await append_many(session, [Append(t, 1, [started()]) for t in tasks])
            event.remove(connection.sync_connection, "before_cursor_execute", record)
        assert versions == [2] * count
        for task_id in tasks:
            assert await stored_events(sessions, task_id) == [
                (1, "task_scheduled"),
                (2, "task_started"),
            ]
        return seen

    assert await statements_for(10) == await statements_for(1) == ["SELECT", "UPDATE", "INSERT"]


async def test_two_appends_to_one_stream_in_one_batch_conflict_and_write_nothing(
    sessions: SessionFactory,
) -> None:
    task_id = await new_task(sessions)

    with pytest.raises(ConcurrencyConflict):
        async with session_scope(sessions) as session:
            await append_many(
                session, [Append(task_id, 1, [started()]), Append(task_id, 1, [started()])]
            )

    assert await stored_events(sessions, task_id) == [(1, "task_scheduled")]


async def test_append_many_with_one_stale_stream_conflicts_and_its_transaction_commits_nothing(
    sessions: SessionFactory,
) -> None:
    fresh, stale = await new_task(sessions), await new_task(sessions)

    with pytest.raises(ConcurrencyConflict):
        async with session_scope(sessions) as session:
            await append_many(
                session, [Append(fresh, 1, [started()]), Append(stale, 2, [started()])]
            )

    for task_id in (fresh, stale):
        assert await stored_events(sessions, task_id) == [(1, "task_scheduled")]


async def test_an_append_to_an_unknown_task_conflicts(sessions: SessionFactory) -> None:
    unknown = uuid.uuid4()

    with pytest.raises(ConcurrencyConflict):
        await append(sessions, unknown, 1, [started()])

    assert await stored_events(sessions, unknown) == []


@pytest.mark.parametrize(
    "events",
    [
        [succeeded()],
        failed_then(E.TASK_FAILED),
        [NewEvent(E.RETRY_SCHEDULED, {"attempt": 1, "due_at": utcnow().isoformat()})],
        [scheduled()],
    ],
    ids=["succeeded_before_start", "failed_before_start", "retry_before_start", "rescheduled"],
)
async def test_an_illegal_transition_is_refused_and_writes_nothing(
    sessions: SessionFactory, events: list[NewEvent]
) -> None:
    task_id = await new_task(sessions)

    async with session_scope(sessions) as session:
        with pytest.raises(IllegalTransition):
            await append_events(session, task_id, expected_version=1, events=events)

    assert await stored_events(sessions, task_id) == [(1, "task_scheduled")]
    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.status, task.version) == ("scheduled", 1)


async def test_attempt_failed_without_its_decision_is_refused(sessions: SessionFactory) -> None:
    task_id = await new_task(sessions)
    await append(sessions, task_id, 1, [started()])

    with pytest.raises(IllegalTransition, match="must be appended with"):
        await append(sessions, task_id, 2, failed_then(E.RETRY_SCHEDULED)[:1])

    assert [t for _, t in await stored_events(sessions, task_id)] == [
        "task_scheduled",
        "task_started",
    ]


@pytest.mark.parametrize(
    "finish",
    [[succeeded()], failed_then(E.TASK_FAILED)],
    ids=["after_task_succeeded", "after_task_failed"],
)
@pytest.mark.parametrize(
    "attempt",
    [[started(2)], [succeeded()], failed_then(E.RETRY_SCHEDULED), failed_then(E.TASK_FAILED)],
    ids=["start", "succeed", "retry", "fail"],
)
async def test_nothing_can_be_appended_after_a_terminal_event(
    sessions: SessionFactory, finish: list[NewEvent], attempt: list[NewEvent]
) -> None:
    task_id = await new_task(sessions)
    await append(sessions, task_id, 1, [started()])
    final_version = await append(sessions, task_id, 2, finish)
    before = await stored_events(sessions, task_id)

    with pytest.raises(IllegalTransition):
        await append(sessions, task_id, final_version, attempt)

    assert await stored_events(sessions, task_id) == before
    task = await stored_task(sessions, task_id)
    assert task is not None
    assert task.version == final_version
    assert task.status in {"succeeded", "failed"}


async def test_renew_lease_extends_the_lease_of_the_owner_at_its_version(
    sessions: SessionFactory,
) -> None:
    task_id = await new_task(sessions)
    version = await append(sessions, task_id, 1, [started(owner="worker-1")])
    until = utcnow() + timedelta(minutes=10)

    async with session_scope(sessions) as session:
        assert await renew_lease(session, task_id, version=version, owner="worker-1", until=until)

    task = await stored_task(sessions, task_id)
    assert task is not None
    assert task.lease_expires_at == until
    # A heartbeat is not an event.
    assert (task.version, len(await stored_events(sessions, task_id))) == (2, 2)


@pytest.mark.parametrize(
    ("owner", "version"),
    [("worker-2", 2), ("worker-1", 1), ("worker-1", 3)],
    ids=["another_owner", "stale_version", "future_version"],
)
async def test_renew_lease_refuses_the_wrong_owner_or_version(
    sessions: SessionFactory, owner: str, version: int
) -> None:
    task_id = await new_task(sessions)
    await append(sessions, task_id, 1, [started(owner="worker-1")])
    before = await stored_task(sessions, task_id)
    assert before is not None

    async with session_scope(sessions) as session:
        renewed = await renew_lease(
            session, task_id, version=version, owner=owner, until=utcnow() + timedelta(hours=1)
        )

    assert renewed is False
    after = await stored_task(sessions, task_id)
    assert after is not None
    assert after.lease_expires_at == before.lease_expires_at


async def test_renew_lease_refuses_a_task_that_finished(sessions: SessionFactory) -> None:
    task_id = await new_task(sessions)
    await append(sessions, task_id, 1, [started(owner="worker-1")])
    await append(sessions, task_id, 2, [succeeded()])

    async with session_scope(sessions) as session:
        for version in (2, 3):
            assert not await renew_lease(
                session, task_id, version=version, owner="worker-1", until=utcnow()
            )

    task = await stored_task(sessions, task_id)
    assert task is not None
    assert (task.lease_owner, task.lease_expires_at) == (None, None)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE task_events SET type = 'task_succeeded'",
        "UPDATE task_events SET payload = '{}' WHERE version = 1",
        "DELETE FROM task_events",
        "DELETE FROM task_events WHERE version = 2",
    ],
)
async def test_the_database_refuses_to_change_the_log(
    engine: AsyncEngine, sessions: SessionFactory, statement: str
) -> None:
    task_id = await new_task(sessions)
    await append(sessions, task_id, 1, [started()])

    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement))

    assert await stored_events(sessions, task_id) == [(1, "task_scheduled"), (2, "task_started")]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_postgres_refuses_to_truncate_the_log(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # SQLite has no TRUNCATE; an unfiltered DELETE is covered above on both backends.
    task_id = await new_task(sessions)

    with pytest.raises(DBAPIError, match="append-only: TRUNCATE refused"):
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE task_events"))

    assert await stored_events(sessions, task_id) == [(1, "task_scheduled")]
