"""The queue state: live tasks by status and the oldest due one, from index lookups alone."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.explain import query_plan
from reference_app.store import TaskStore
from reference_app.store.queue_state import QueueState, read_queue_state, select_queue_state
from tests.reference_app._task_kit import insert_rows, task_row

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=utcnow().tzinfo)


def rows(status: str, count: int, **overrides: object) -> list[dict[str, object]]:
    return [task_row(NOW - timedelta(hours=1), status=status, **overrides) for _ in range(count)]


async def test_it_counts_the_live_statuses_and_finds_the_oldest_due_task(
    sessions: SessionFactory,
) -> None:
    await insert_rows(
        sessions,
        [
            *rows("succeeded", 7),  # history: not counted
            *rows("failed", 2),
            *rows("cancelled", 1),
            *rows("running", 3),
            *rows("cancelling", 1),
            *rows("scheduled", 1, run_after=NOW - timedelta(seconds=30)),
            *rows("scheduled", 2, run_after=NOW + timedelta(hours=1)),  # delayed: not due
            *rows("retrying", 1, run_after=NOW - timedelta(seconds=90)),  # waited longest
            *rows("retrying", 1, run_after=NOW + timedelta(seconds=5)),
            *rows("scheduled", 1, run_after=NOW - timedelta(seconds=10), parent_id=uuid.uuid4()),
        ],
    )
    async with session_scope(sessions) as session:
        state = await read_queue_state(session, NOW)

    assert state.by_status == {"scheduled": 4, "running": 3, "retrying": 2, "cancelling": 1}
    assert state.oldest_due == NOW - timedelta(seconds=90)
    assert state.lag_seconds == 90.0


async def test_with_nothing_due_the_lag_is_zero(sessions: SessionFactory) -> None:
    await insert_rows(sessions, rows("scheduled", 2, run_after=NOW + timedelta(minutes=5)))
    store = TaskStore(sessions, max_attempts=3, group_commit=False, clock=lambda: NOW)
    try:
        state = await store.queue_state()
    finally:
        await store.close()
    assert state == QueueState(
        by_status={"scheduled": 2, "running": 0, "retrying": 0, "cancelling": 0},
        oldest_due=None,
        now=NOW,
    )
    assert state.lag_seconds == 0.0


async def test_every_part_reads_the_status_index_and_nothing_else(
    backend: str, sessions: SessionFactory
) -> None:
    await insert_rows(
        sessions,
        [*rows("succeeded", 3000), *rows("scheduled", 20, run_after=NOW), *rows("running", 5)],
    )
    async with session_scope(sessions) as session:
        if backend == "postgres":
            await session.execute(text("ANALYZE tasks"))
            # A few thousand rows: a sequential scan is rightly the planner's choice; off, the
            # plan shows which index serves each part, as it does at scale.
            await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await query_plan(session, select_queue_state.params(now=NOW))

    assert [t for t in plan.full_scans if t != "CONSTANT"] == [], plan.steps  # SQLite: no FROM
    assert not plan.sorts, plan.steps
    assert set(plan.indexes) == {"ix_tasks_status_run_after"}, plan.steps
    assert len(plan.indexes) == 6, plan.steps  # four counts, two oldest due times
