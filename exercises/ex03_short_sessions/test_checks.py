"""Checks for exercise 03. Run: make check EX=03 (EXERCISE_TARGET=solution for the reference).

A fake CRM records, at the moment it is called, how many pooled connections are checked out:
a fact about the code's structure, not about timing.
"""

from __future__ import annotations

import asyncio
import uuid
from types import ModuleType

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from exercises._target import load_target
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Contact


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex03_short_sessions")


class FakeCRM:
    """Records how many pooled connections are out when ``push`` is called.

    With ``burst=n``, each push also waits (up to ``WAIT_SECONDS``) until n pushes are in
    flight at once: that happens only if no task holds the pool's one connection while pushing.
    """

    WAIT_SECONDS = 1.5

    def __init__(self, engine: AsyncEngine, burst: int = 1) -> None:
        self.engine = engine
        self.burst = burst
        self.pushed: list[tuple[str, str]] = []
        self.checked_out_during_push: list[int] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.all_in = asyncio.Event()

    async def push(self, email: str, name: str) -> None:
        self.checked_out_during_push.append(self.engine.pool.checkedout())  # type: ignore[attr-defined]
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        if self.in_flight >= self.burst:
            self.all_in.set()
        try:
            await asyncio.wait_for(self.all_in.wait(), self.WAIT_SECONDS)
        except TimeoutError:
            self.all_in.set()  # give up once, so the rest of a failing burst does not wait
        self.in_flight -= 1
        self.pushed.append((email, name))


async def add_contact(sessions: SessionFactory, email: str) -> int:
    async with session_scope(sessions) as session:
        contact = Contact(org_id="org-a", email=email, name="Ada", source_task_id=uuid.uuid4())
        session.add(contact)
        await session.flush()
        return contact.id


async def name_of(sessions: SessionFactory, contact_id: int) -> str:
    async with session_scope(sessions) as session:
        name = await session.scalar(select(Contact.name).where(Contact.id == contact_id))
    assert name is not None
    return name


async def test_the_contact_is_pushed_and_marked_synced(
    target: ModuleType, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    contact_id = await add_contact(sessions, "ada@example.com")
    crm = FakeCRM(engine)
    await target.sync_to_crm(sessions, contact_id=contact_id, push=crm.push)
    assert crm.pushed == [("ada@example.com", "Ada")]
    assert await name_of(sessions, contact_id) == "Ada (synced)"


async def test_no_connection_is_checked_out_while_the_crm_call_runs(
    target: ModuleType, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    contact_id = await add_contact(sessions, "ada@example.com")
    crm = FakeCRM(engine)
    await target.sync_to_crm(sessions, contact_id=contact_id, push=crm.push)
    assert crm.checked_out_during_push == [0], (
        "a pooled connection was held through the slow call: close the session before push()"
    )
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_burst_on_a_one_connection_pool_pushes_all_at_once(
    target: ModuleType, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    """SQLite's pool has one connection: five tasks can be in the CRM call together only if
    none of them holds it there."""
    ids = [await add_contact(sessions, f"c{n}@example.com") for n in range(5)]
    crm = FakeCRM(engine, burst=len(ids))
    await asyncio.gather(*(target.sync_to_crm(sessions, contact_id=i, push=crm.push) for i in ids))
    assert crm.peak_in_flight == len(ids), (
        f"only {crm.peak_in_flight} of {len(ids)} CRM calls ran at once: the others were waiting "
        "for the pooled connection a task held through its call"
    )
    assert [await name_of(sessions, i) for i in ids] == ["Ada (synced)"] * len(ids)
