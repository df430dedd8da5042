"""The writer: one transaction per unit, or a group commit that fails only the guilty unit."""

import asyncio
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Contact
from reference_app.db.writer import Writer


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

    from sqlalchemy import event

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
