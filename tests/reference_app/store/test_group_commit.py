"""The group committer: a transaction per unit, or group commits that fail only the guilty unit."""

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reference_app.core.errors import is_database_outage
from reference_app.db.engine import (
    SessionFactory,
    create_engine,
    create_session_factory,
    session_scope,
)
from reference_app.db.models import Contact
from reference_app.store.group_commit import GroupCommitter as Writer
from reference_app.testing import free_port
from tests.conftest import LockedSQLite


def contact_unit(email: str):
    async def unit(session: AsyncSession) -> str:
        session.add(Contact(org_id="org-a", email=email, name="n", source_task_id=uuid.uuid4()))
        await session.flush()  # a duplicate email fails here, inside the batch
        return email

    return unit


async def emails(sessions: SessionFactory) -> list[str]:
    async with session_scope(sessions) as session:
        return sorted(await session.scalars(select(Contact.email)))


@pytest.mark.parametrize("group_commit", [True, False])
async def test_every_unit_commits_and_returns_its_result(
    sessions: SessionFactory, group_commit: bool
) -> None:
    writer = Writer(sessions, group_commit=group_commit)
    results = await asyncio.gather(*(writer.run(contact_unit(f"{n}@x.test")) for n in range(20)))
    await writer.close()

    assert sorted(results) == sorted(f"{n}@x.test" for n in range(20))
    assert await emails(sessions) == sorted(results)


async def test_a_failing_unit_fails_only_its_caller(sessions: SessionFactory) -> None:
    writer = Writer(sessions, group_commit=True)
    await writer.run(contact_unit("taken@x.test"))

    outcomes = await asyncio.gather(
        writer.run(contact_unit("a@x.test")),
        writer.run(contact_unit("taken@x.test")),  # unique (org_id, email): fails
        writer.run(contact_unit("b@x.test")),
        return_exceptions=True,
    )
    await writer.close()

    assert outcomes[0] == "a@x.test"
    assert isinstance(outcomes[1], Exception)
    assert outcomes[2] == "b@x.test"
    assert await emails(sessions) == ["a@x.test", "b@x.test", "taken@x.test"]


async def test_group_commit_shares_transactions(
    engine: AsyncEngine, sessions: SessionFactory
) -> None:
    commits = 0

    def count(connection: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine.sync_engine, "commit", count)
    writer = Writer(sessions, group_commit=True)
    await asyncio.gather(*(writer.run(contact_unit(f"{n}@x.test")) for n in range(50)))
    await writer.close()
    event.remove(engine.sync_engine, "commit", count)

    async with session_scope(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 50
    assert commits < 50  # fewer commits than units: that is the point


def contacts_unit(calls: list[int]):
    """A batch unit: every item of the batch in one multi-row INSERT; each item's result is
    its position in the call, to show that results go back to the right callers."""

    async def unit(session: AsyncSession, items: Sequence[str]) -> list[str]:
        calls.append(len(items))
        contacts = [
            {"org_id": "org-a", "email": e, "name": "n", "source_task_id": uuid.uuid4()}
            for e in items
        ]
        await session.execute(insert(Contact), contacts)
        return [f"{email} #{i} of {len(items)}" for i, email in enumerate(items)]

    return unit


@pytest.mark.parametrize("group_commit", [True, False])
async def test_batched_items_are_written_together_and_each_caller_returns_after_commit(
    sessions: SessionFactory, group_commit: bool
) -> None:
    calls: list[int] = []
    unit = contacts_unit(calls)
    writer = Writer(sessions, group_commit=group_commit)
    results = await asyncio.gather(*(writer.run_batched(unit, f"{n}@x.test") for n in range(40)))
    await writer.close()

    # Each caller gets its own item's result back.
    assert [r.split(" ")[0] for r in results] == [f"{n}@x.test" for n in range(40)]
    assert await emails(sessions) == sorted(f"{n}@x.test" for n in range(40))
    assert sum(calls) == 40
    if group_commit:
        assert len(calls) < 40  # several items to a call: one INSERT for many rows
    else:
        assert calls == [1] * 40


async def test_a_conflicting_item_fails_only_its_caller_and_the_rest_of_its_batch_commits(
    sessions: SessionFactory,
) -> None:
    calls: list[int] = []
    unit = contacts_unit(calls)
    writer = Writer(sessions, group_commit=True)
    await writer.run_batched(unit, "taken@x.test")

    outcomes = await asyncio.gather(
        writer.run(contact_unit("single@x.test")),
        *(writer.run_batched(unit, f"{n}@x.test") for n in range(5)),
        writer.run_batched(unit, "taken@x.test"),  # unique (org_id, email): fails
        *(writer.run_batched(unit, f"{n}@x.test") for n in range(5, 10)),
        return_exceptions=True,
    )
    await writer.close()

    assert isinstance(outcomes[6], IntegrityError)
    assert outcomes[0] == "single@x.test"
    # The batch was rolled back and each item written alone: the only one of its call.
    expected = [f"{n}@x.test #0 of 1" for n in range(10)]
    assert [o for i, o in enumerate(outcomes) if i not in (0, 6)] == expected
    assert await emails(sessions) == sorted(
        ["single@x.test", "taken@x.test", *(f"{n}@x.test" for n in range(10))]
    )


@pytest.fixture
def dead_database_url(backend: str, tmp_path: Path) -> str:
    """An unreachable database: a directory as SQLite file, a closed port for PostgreSQL."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}"
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"


async def test_a_batch_while_the_database_is_down_gives_every_caller_the_outage_at_once(
    dead_database_url: str,
) -> None:
    engine = create_engine(dead_database_url)
    attempts = 0

    def count(*args: object) -> None:
        nonlocal attempts
        attempts += 1

    event.listen(engine.sync_engine, "do_connect", count)
    writer = Writer(create_session_factory(engine), group_commit=True)
    try:
        outcomes = await asyncio.gather(
            *(writer.run_batched(contacts_unit([]), f"{n}@x.test") for n in range(10)),
            *(writer.run(contact_unit(f"single{n}@x.test")) for n in range(10)),
            return_exceptions=True,
        )
        await writer.close()
    finally:
        await engine.dispose()

    assert all(isinstance(o, Exception) and is_database_outage(o) for o in outcomes), outcomes
    # Not one more attempt per caller: the outage fails the batch's callers together.
    assert 1 <= attempts < len(outcomes)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_callers_queued_behind_a_locked_database_fail_with_it_not_after_it(
    sessions: SessionFactory, engine: AsyncEngine, database_url: str
) -> None:
    writer = Writer(sessions, group_commit=True)
    with LockedSQLite(database_url, engine) as locked:  # another process holds the write lock
        try:
            first = [
                asyncio.create_task(writer.run_batched(contacts_unit([]), f"{n}@x.test"))
                for n in range(5)
            ]
            await asyncio.sleep(0.2)  # the first batch now waits in SQLite's busy handler
            later = [
                asyncio.create_task(writer.run(contact_unit(f"later{n}@x.test"))) for n in range(5)
            ]
            outcomes = await asyncio.gather(*first, *later, return_exceptions=True)
        finally:
            await writer.close()

    assert all(isinstance(o, Exception) and is_database_outage(o) for o in outcomes), outcomes
    # One wait on the lock for all ten: the later callers did not queue a second one.
    assert locked.begins == 1
    assert await emails(sessions) == []
