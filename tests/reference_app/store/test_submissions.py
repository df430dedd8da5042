"""Accepting tasks (``TaskStore.accept``) under group commit: concurrent submissions share
a transaction, and an idempotency key reused inside a batch fails or replays only its own
caller."""

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.store import Accepted, IdempotencyMismatch, Lease, Submission, TaskStore
from tests.reference_app._clock import ManualClock


def submission(
    n: int, *, key: str | None = None, params: dict[str, Any] | None = None
) -> Submission:
    return Submission(
        org_id="org-a",
        user_id="alice",
        kind="process_data",
        params=params if params is not None else {"n": n},
        idempotency_key=key,
        request_id=f"req-{n}",
    )


async def counts(sessions: SessionFactory) -> tuple[int, int]:
    async with session_scope(sessions) as session:
        tasks = await session.scalar(select(func.count()).select_from(Task))
        events = await session.scalar(select(func.count()).select_from(TaskEvent))
    return int(tasks or 0), int(events or 0)


@pytest.mark.parametrize("group_commit", [True, False])
async def test_concurrent_submissions_each_commit_one_task_scheduled(
    sessions: SessionFactory, group_commit: bool
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=group_commit)
    accepted = await asyncio.gather(*(store.accept(submission(n)) for n in range(30)))
    await store.close()

    assert len({a.task_id for a in accepted}) == 30
    assert all(a.created and a.status == "scheduled" for a in accepted)
    assert await counts(sessions) == (30, 30)
    async with session_scope(sessions) as session:
        rows = (await session.execute(select(Task.id, Task.request_id, Task.version))).all()
    assert {(r.version, r.request_id) for r in rows} == {(1, f"req-{n}") for n in range(30)}


async def test_a_reused_key_in_a_batch_fails_or_replays_only_its_callers(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=True)
    first = await store.accept(submission(0, key="k-1", params={"x": 1}))

    # One batch: fresh tasks, a replay of k-1, a different body under k-1, and two new
    # submissions racing for k-2 (neither sees the other before inserting).
    outcomes = await asyncio.gather(
        *(store.accept(submission(n)) for n in range(1, 6)),
        store.accept(submission(6, key="k-1", params={"x": 1})),
        store.accept(submission(7, key="k-1", params={"x": 2})),
        store.accept(submission(8, key="k-2", params={"y": 1})),
        store.accept(submission(9, key="k-2", params={"y": 1})),
        return_exceptions=True,
    )
    await store.close()

    fresh, replay, mismatch, raced = outcomes[:5], outcomes[5], outcomes[6], outcomes[7:]
    assert all(isinstance(a, Accepted) and a.created for a in fresh)
    assert isinstance(replay, Accepted)
    assert (replay.task_id, replay.created) == (first.task_id, False)
    assert isinstance(mismatch, IdempotencyMismatch)
    assert all(isinstance(a, Accepted) for a in raced)
    assert len({a.task_id for a in raced if isinstance(a, Accepted)}) == 1  # one task for k-2
    assert sorted(a.created for a in raced if isinstance(a, Accepted)) == [False, True]
    # k-1's task, five fresh ones and k-2's task: one task_scheduled each, nothing else.
    assert await counts(sessions) == (7, 7)


async def test_the_scheduled_event_records_the_submission_and_the_stores_max_attempts(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=5, group_commit=False)
    keyed = submission(1, key="k-1")
    accepted = await store.accept(keyed)
    plain = await store.accept(submission(2))

    async with session_scope(sessions) as session:
        events = {
            e.task_id: e
            for e in await session.scalars(select(TaskEvent).where(TaskEvent.version == 1))
        }
        task = await session.get(Task, accepted.task_id)
    first, second = events[accepted.task_id], events[plain.task_id]
    assert first.type == "task_scheduled"
    assert first.payload["max_attempts"] == 5
    assert (first.payload["kind"], first.payload["params"]) == ("process_data", {"n": 1})
    assert (first.payload["idempotency_key"], first.payload["request_id"]) == ("k-1", "req-1")
    assert first.payload["request_hash"] == keyed.fingerprint()
    assert second.payload["request_hash"] is None  # no key, nothing to tell replays apart
    assert "not_before" not in first.payload
    assert task is not None
    assert (task.status, task.max_attempts, task.attempts) == ("scheduled", 5, 0)


async def test_a_task_accepted_without_not_before_is_due_for_the_sweeper_at_once(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    accepted = await store.accept(submission(1))

    claims = await store.claim_due(10, Lease("sweeper:1:aa", 30.0))

    assert [c.task_id for c in claims] == [accepted.task_id]


async def test_not_before_holds_the_task_back_from_the_sweeper_but_not_from_its_request(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    hold = utcnow() + timedelta(minutes=5)
    held = Submission(
        org_id="org-a", user_id="alice", kind="process_data", params={}, not_before=hold
    )
    accepted = await store.accept(held)
    lease = Lease("this-host:1:aa", 30.0)

    assert await store.claim_due(10, lease) == []
    async with session_scope(sessions) as session:
        task = await session.get(Task, accepted.task_id)
    assert task is not None
    assert task.run_after == hold
    claim = await store.claim(accepted.task_id, lease)  # what the inline request does
    assert claim is not None
    assert claim.attempt == 1


# Delayed work -------------------------------------------------------------------------


def test_the_fingerprint_holds_the_time_as_the_client_asked_for_it() -> None:
    def asked(**when: Any) -> str:
        return Submission(org_id="o", user_id="u", kind="k", params={}, **when).fingerprint()

    noon = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert asked(delay_seconds=60) == asked(delay_seconds=60)  # a replay a moment later
    assert asked(delay_seconds=60) != asked(delay_seconds=61)
    assert asked(delay_seconds=0) != asked()
    assert asked(run_at=noon) == asked(run_at=noon.astimezone(timezone(timedelta(hours=9))))
    assert asked(run_at=noon) != asked(run_at=noon + timedelta(seconds=1))
    assert asked(run_at=noon) != asked(delay_seconds=60)
    # A request with neither hashes as before delays existed: stored keys still replay.
    before: dict[str, Any] = {"kind": "k", "params": {}, "webhook_url": None}
    assert asked() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()


async def test_a_delayed_task_is_due_at_its_time_in_the_projection_and_in_the_log(
    sessions: SessionFactory,
) -> None:
    now = utcnow()
    clock = ManualClock(now)
    store = TaskStore(sessions, max_attempts=3, group_commit=False, clock=clock)
    due = now + timedelta(hours=1)
    delayed = Submission(
        org_id="org-a", user_id="alice", kind="k", params={}, not_before=due, delay_seconds=3600
    )
    accepted = await store.accept(delayed)
    lease = Lease("sweeper:1:aa", 30.0)

    assert await store.claim_due(10, lease) == []
    clock.set(due - timedelta(microseconds=1))
    assert await store.claim_due(10, lease) == []
    clock.set(due)
    assert [c.task_id for c in await store.claim_due(10, lease)] == [accepted.task_id]
    async with session_scope(sessions) as session:
        first = await session.scalar(
            select(TaskEvent).where(TaskEvent.task_id == accepted.task_id, TaskEvent.version == 1)
        )
    assert first is not None
    assert first.payload["not_before"] == due.isoformat()
