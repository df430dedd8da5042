"""The async engine and session factory, tuned per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "SQLITE_READERS",
    "SessionFactory",
    "create_engine",
    "create_read_engine",
    "create_session_factory",
    "session_scope",
]

SessionFactory = async_sessionmaker[AsyncSession]

SQLITE_BUSY_TIMEOUT_MS = 5000
# Read connections beside SQLite's one writer: WAL lets them read while it writes.
SQLITE_READERS = 4


def create_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).

    SQLite gets WAL, ``synchronous=NORMAL``, a busy timeout and one pooled
    connection that starts every transaction with ``BEGIN IMMEDIATE``: SQLite
    has one writer at a time anyway, and queueing for it in the pool is cheaper
    and fairer than sleeping in its busy handler or failing a read-to-write upgrade.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # No pre-ping: a file database does not drop connections, and a ping is a round trip.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, **kwargs)
        _tune_sqlite(engine)
        return engine
    # No overflow: an overflow connection is closed when it is returned, so under load
    # the app would open and close PostgreSQL backends all the time.
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, **kwargs
    )


def create_read_engine(url: str, **kwargs: Any) -> AsyncEngine | None:
    """Connections for reads only, beside ``create_engine``'s, or None where the main
    engine's pool serves reads as well (PostgreSQL).

    On SQLite every transaction of the main engine takes the write lock when it begins,
    on its one connection, so a status read would queue behind every claim and commit.
    In WAL mode readers do not block the writer, nor it them: these connections begin
    deferred transactions and are ``query_only``, so a write by mistake fails loudly.
    """
    if make_url(url).get_backend_name() != "sqlite":
        return None
    engine = create_async_engine(url, pool_size=SQLITE_READERS, max_overflow=0, **kwargs)
    _tune_sqlite(engine, writer=False)
    return engine


def _tune_sqlite(engine: AsyncEngine, *, writer: bool = True) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let us emit BEGIN ourselves instead of the driver's deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not writer:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that keep loaded values after commit, so tasks can read them without I/O."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A new session with one transaction: committed on success, rolled back on error."""
    async with factory() as session, session.begin():
        yield session
