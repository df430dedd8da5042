"""Query plans on both databases: the index read, a whole-table scan, a sort."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.explain import query_plan
from reference_app.db.models import Task, TaskEvent


async def test_a_lookup_by_an_indexed_column_names_its_index(
    backend: str, sessions: SessionFactory
) -> None:
    async with session_scope(sessions) as session:
        if backend == "postgres":
            await session.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table
        plan = await query_plan(session, select(TaskEvent).where(TaskEvent.task_id == uuid.uuid4()))

    assert plan.indexes == ["ix_task_events_task_id"], plan.steps
    assert plan.full_scans == []
    assert not plan.sorts


async def test_a_filter_on_an_unindexed_column_reads_the_whole_table_and_a_sort_shows(
    sessions: SessionFactory,
) -> None:
    async with session_scope(sessions) as session:
        unindexed = select(Task).where(Task.user_id == "u").order_by(Task.kind)
        plan = await query_plan(session, unindexed)

    assert plan.full_scans == ["tasks"], plan.steps
    assert plan.indexes == []
    assert plan.sorts, plan.steps


async def test_analyze_runs_the_statement_on_postgresql_and_adds_its_timings(
    backend: str, sessions: SessionFactory
) -> None:
    async with session_scope(sessions) as session:
        plan = await query_plan(session, select(Task).where(Task.user_id == "u"), analyze=True)

    if backend == "postgres":
        assert "Actual Total Time" in plan.raw[0]["Plan"]
    else:  # SQLite has no timings: the same plan, the statement not run
        assert plan.full_scans == ["tasks"]
