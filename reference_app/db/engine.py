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

__all__ = ["SessionFactory", "create_engine", "create_session_factory", "session_scope"]

SessionFactory = async_sessionmaker[AsyncSession]

SQLITE_BUSY_TIMEOUT_MS = 5000


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


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let us emit BEGIN ourselves instead of the driver's deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that keep loaded values after commit, so tasks can read them without I/O."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A new session with one transaction: committed on success, rolled back on error."""
    async with factory() as session, session.begin():
        yield session
