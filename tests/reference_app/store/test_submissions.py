"""Accepting tasks under group commit: concurrent submissions share a transaction,
and an idempotency key reused inside a batch fails or replays only its own caller."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.db.writer import Writer
from reference_app.tasks.scheduling import (
    Accepted,
    IdempotencyMismatch,
    Submission,
    submit_task,
)


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
    writer = Writer(sessions, group_commit=group_commit)
    accepted = await asyncio.gather(
        *(submit_task(writer, submission(n), max_attempts=3) for n in range(30))
    )
    await writer.close()

    assert len({a.task_id for a in accepted}) == 30
    assert all(a.created and a.status == "scheduled" for a in accepted)
    assert await counts(sessions) == (30, 30)
    async with session_scope(sessions) as session:
        rows = (await session.execute(select(Task.id, Task.request_id, Task.version))).all()
    assert {(r.version, r.request_id) for r in rows} == {(1, f"req-{n}") for n in range(30)}


async def test_a_reused_key_in_a_batch_fails_or_replays_only_its_callers(
    sessions: SessionFactory,
) -> None:
    writer = Writer(sessions, group_commit=True)
    first = await submit_task(writer, submission(0, key="k-1", params={"x": 1}), max_attempts=3)

    # One batch: fresh tasks, a replay of k-1, a different body under k-1, and two new
    # submissions racing for k-2 (neither sees the other before inserting).
    outcomes = await asyncio.gather(
        *(submit_task(writer, submission(n), max_attempts=3) for n in range(1, 6)),
        submit_task(writer, submission(6, key="k-1", params={"x": 1}), max_attempts=3),
        submit_task(writer, submission(7, key="k-1", params={"x": 2}), max_attempts=3),
        submit_task(writer, submission(8, key="k-2", params={"y": 1}), max_attempts=3),
        submit_task(writer, submission(9, key="k-2", params={"y": 1}), max_attempts=3),
        return_exceptions=True,
    )
    await writer.close()

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
