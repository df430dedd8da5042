"""Checks for exercise 07. Run: make check EX=07 (EXERCISE_TARGET=solution for the reference).

A rerun is what the sweeper does after a crash: the same task id and inputs, the next attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from exercises._target import load_target
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Contact
from reference_app.tasks.context import TaskContext


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex07_idempotent_task")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:  # a TaskContext needs one; this task does not use it
        yield pool


def context(
    sessions: SessionFactory,
    pool: ThreadPoolExecutor,
    *,
    task_id: uuid.UUID,
    sheet_id: str,
    attempt: int = 1,
    org_id: str = "org-a",
) -> TaskContext:
    return TaskContext(
        task_id=task_id,
        org_id=org_id,
        kind="import_newsletter",
        params={"sheet_id": sheet_id},
        attempt=attempt,
        sessions=sessions,
        cpu_pool=pool,
    )


async def run(target: ModuleType, ctx: TaskContext) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await target.import_newsletter(ctx)
    except IntegrityError as exc:
        pytest.fail(
            f"attempt {ctx.attempt} raised {type(exc).__name__} (a unique key): the body is not "
            "safe to repeat, so a rerun after a crash would fail a task whose work was done"
        )
    return result


async def count(sessions: SessionFactory, org_id: str = "org-a") -> int:
    async with session_scope(sessions) as session:
        query = select(func.count()).select_from(Contact).where(Contact.org_id == org_id)
        return int(await session.scalar(query) or 0)


async def test_one_run_imports_every_row(
    target: ModuleType, sessions: SessionFactory, pool: ThreadPoolExecutor
) -> None:
    ctx = context(sessions, pool, task_id=uuid.uuid4(), sheet_id="sheet-1")
    result = await run(target, ctx)
    assert result == {"sheet_id": "sheet-1", "rows": target.ROWS_PER_SHEET}
    assert await count(sessions) == target.ROWS_PER_SHEET


async def test_a_rerun_after_a_crash_succeeds_and_adds_nothing(
    target: ModuleType, sessions: SessionFactory, pool: ThreadPoolExecutor
) -> None:
    task_id = uuid.uuid4()
    await run(target, context(sessions, pool, task_id=task_id, sheet_id="sheet-1"))
    # The process died after the commit, before task_succeeded: the sweeper runs it again.
    rerun = context(sessions, pool, task_id=task_id, sheet_id="sheet-1", attempt=2)
    assert (await run(target, rerun))["rows"] == target.ROWS_PER_SHEET
    assert await count(sessions) == target.ROWS_PER_SHEET


async def test_three_runs_leave_the_rows_of_one(
    target: ModuleType, sessions: SessionFactory, pool: ThreadPoolExecutor
) -> None:
    task_id = uuid.uuid4()
    for attempt in (1, 2, 3):
        ctx = context(sessions, pool, task_id=task_id, sheet_id="sheet-2", attempt=attempt)
        await run(target, ctx)
    assert await count(sessions) == target.ROWS_PER_SHEET


async def test_another_organisation_gets_its_own_rows(
    target: ModuleType, sessions: SessionFactory, pool: ThreadPoolExecutor
) -> None:
    await run(target, context(sessions, pool, task_id=uuid.uuid4(), sheet_id="sheet-3"))
    other = context(sessions, pool, task_id=uuid.uuid4(), sheet_id="sheet-3", org_id="org-b")
    await run(target, other)
    assert (await count(sessions), await count(sessions, "org-b")) == (
        target.ROWS_PER_SHEET,
        target.ROWS_PER_SHEET,
    )
