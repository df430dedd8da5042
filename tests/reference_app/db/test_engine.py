"""The engine's per-backend tuning, and the one-transaction session scope."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.db.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_READERS,
    SessionFactory,
    create_engine,
    create_read_engine,
    create_session_factory,
    session_scope,
)
from reference_app.db.models import Contact

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


def contact(email: str = "a@example.com") -> Contact:
    return Contact(org_id="org-a", email=email, name="A", source_task_id=uuid.uuid4())


async def emails(sessions: SessionFactory) -> list[str]:
    async with session_scope(sessions) as session:
        return list(await session.scalars(select(Contact.email).order_by(Contact.email)))


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("pragma", "expected"),
    [
        ("journal_mode", "wal"),
        ("synchronous", 1),  # NORMAL
        ("busy_timeout", SQLITE_BUSY_TIMEOUT_MS),
        ("foreign_keys", 1),
    ],
)
async def test_sqlite_connections_are_tuned(
    engine: AsyncEngine, pragma: str, expected: object
) -> None:
    async with engine.connect() as connection:
        assert await connection.scalar(text(f"PRAGMA {pragma}")) == expected


@SQLITE_ONLY
async def test_sqlite_transactions_take_the_write_lock_when_they_begin(
    engine: AsyncEngine, database_url: str
) -> None:
    path = make_url(database_url).database
    assert path is not None
    async with engine.begin() as connection:
        # Only a read so far; BEGIN IMMEDIATE has already taken the write lock.
        await connection.execute(text("SELECT 1"))
        other = sqlite3.connect(path, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute(
                    "INSERT INTO contacts (org_id, email, name, source_task_id) "
                    "VALUES ('o', 'e', 'n', 'x')"
                )
        finally:
            other.close()


@SQLITE_ONLY
async def test_sqlite_keeps_one_pooled_connection(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        first = await connection.scalar(text("SELECT 1"))
    assert first == 1
    assert engine.pool.size() == 1  # type: ignore[attr-defined]


@SQLITE_ONLY
async def test_sqlite_reads_while_the_writer_holds_the_write_lock(
    engine: AsyncEngine, database_url: str
) -> None:
    readers = create_read_engine(database_url)
    assert readers is not None
    try:
        async with engine.begin() as writer:
            await writer.execute(
                text(
                    "INSERT INTO contacts (org_id, email, name, source_task_id) "
                    "VALUES ('o', 'uncommitted@example.com', 'n', 'x')"
                )
            )
            # The writer holds the lock with an uncommitted row: a reader neither waits
            # for it (busy_timeout would be 5 s) nor sees the row.
            async with readers.connect() as reader:
                seen = await reader.scalar(text("SELECT count(*) FROM contacts"))
        assert seen == 0
        assert readers.pool.size() == SQLITE_READERS  # type: ignore[attr-defined]
    finally:
        await readers.dispose()


@SQLITE_ONLY
async def test_sqlite_read_connections_refuse_writes(database_url: str) -> None:
    readers = create_read_engine(database_url)
    assert readers is not None
    try:
        async with readers.connect() as reader:
            assert await reader.scalar(text("PRAGMA query_only")) == 1
            with pytest.raises(OperationalError, match="readonly"):
                await reader.execute(text("DELETE FROM contacts"))
    finally:
        await readers.dispose()


@POSTGRES_ONLY
async def test_postgres_reads_share_the_main_pool(database_url: str) -> None:
    assert create_read_engine(database_url) is None


async def test_sqlite_creates_the_directory_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "nested" / "app.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    assert path.is_file()


@POSTGRES_ONLY
async def test_postgres_replaces_pooled_connections_the_server_closed(engine: AsyncEngine) -> None:
    async with engine.connect() as doomed, engine.connect() as killer:
        doomed_pid = await doomed.scalar(text("SELECT pg_backend_pid()"))
        await doomed.commit()
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": doomed_pid})

    # Both connections are back in the pool, one of them dead. Pre-ping finds it on
    # checkout and opens a new one: no error reaches the caller.
    async with engine.connect() as first, engine.connect() as second:
        pids = {
            await first.scalar(text("SELECT pg_backend_pid()")),
            await second.scalar(text("SELECT pg_backend_pid()")),
        }

    assert len(pids) == 2
    assert doomed_pid not in pids


async def test_session_scope_commits_on_success(sessions: SessionFactory) -> None:
    async with session_scope(sessions) as session:
        session.add(contact("a@example.com"))

    assert await emails(sessions) == ["a@example.com"]


async def test_session_scope_rolls_back_on_an_error_and_reraises_it(
    sessions: SessionFactory,
) -> None:
    async def add_then_fail() -> None:
        async with session_scope(sessions) as session:
            session.add(contact("a@example.com"))
            await session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await add_then_fail()

    assert await emails(sessions) == []


async def test_session_scope_rolls_back_everything_when_a_statement_fails(
    sessions: SessionFactory,
) -> None:
    async with session_scope(sessions) as session:
        session.add(contact("taken@example.com"))

    async def add_new_then_taken() -> None:
        async with session_scope(sessions) as session:
            session.add(contact("new@example.com"))
            await session.flush()
            session.add(contact("taken@example.com"))

    with pytest.raises(IntegrityError):
        await add_new_then_taken()

    assert await emails(sessions) == ["taken@example.com"]


async def test_objects_stay_readable_after_their_session_commits(
    sessions: SessionFactory,
) -> None:
    async with session_scope(sessions) as session:
        added = contact("a@example.com")
        session.add(added)
        await session.flush()
        contact_id = added.id

    # expire_on_commit=False: no lazy reload, which async code could not do outside the session.
    assert (added.id, added.email) == (contact_id, "a@example.com")


async def test_each_session_scope_is_a_new_session(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    async with session_scope(sessions) as first:
        pass
    async with session_scope(sessions) as second:
        pass

    assert first is not second
