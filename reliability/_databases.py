"""A fresh, migrated database per scenario: a temp file on SQLite, a database on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.migrate import migrate_database
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import TERMINAL_STATUSES
from reliability._loop import run_async

__all__ = [
    "BACKENDS",
    "DatabaseUnavailable",
    "count_rows",
    "fresh_database",
    "postgres_url",
    "unfinished_tasks",
]

BACKENDS = ("sqlite", "postgresql")


class DatabaseUnavailable(RuntimeError):
    """The backend a scenario needs cannot be reached."""


def postgres_url() -> str:
    """The PostgreSQL server to create scenario databases on (``RELIABILITY_POSTGRES_URL``)."""
    default = os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    return os.environ.get("RELIABILITY_POSTGRES_URL", default)


def _admin_dsn() -> str:
    url = make_url(postgres_url()).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    try:
        connection = await asyncpg.connect(_admin_dsn(), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        shown = make_url(postgres_url()).render_as_string(hide_password=True)
        raise DatabaseUnavailable(
            f"PostgreSQL at {shown} is unreachable ({exc!r}); start it or set "
            "RELIABILITY_POSTGRES_URL"
        ) from exc
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """Yield the URL of a new, migrated database; remove it afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="reliability-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'app.db'}"
            run_async(lambda: migrate_database(url))
            yield url
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    name = f"fbj_reliability_{uuid.uuid4().hex[:12]}"
    run_async(lambda: _admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)
        run_async(lambda: migrate_database(url))
        yield url
    finally:
        run_async(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_UNFINISHED = (
    select(func.count())
    .select_from(Task)
    .where(Task.status.not_in([str(s) for s in TERMINAL_STATUSES]))
)


async def _count(url: str, settle_seconds: float) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        sessions = create_session_factory(engine)
        deadline = time.monotonic() + settle_seconds
        while settle_seconds and time.monotonic() < deadline:
            async with session_scope(sessions) as session:
                if not await session.scalar(_UNFINISHED):
                    break
            await asyncio.sleep(0.1)
        async with session_scope(sessions) as session:
            tasks = await session.scalar(select(func.count()).select_from(Task))
            events = await session.scalar(select(func.count()).select_from(TaskEvent))
        return tasks or 0, events or 0
    finally:
        await engine.dispose()


def count_rows(database_url: str, *, settle_seconds: float = 0.0) -> tuple[int, int]:
    """How many rows ``tasks`` and ``task_events`` hold: what "nothing was written" checks.

    With ``settle_seconds``, first wait (up to that long) for every task to be terminal, so
    that events of earlier work are not counted as written by what comes next.
    """
    return run_async(lambda: _count(database_url, settle_seconds))


async def _unfinished(url: str) -> int:
    engine = create_engine(url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            count = await session.scalar(_UNFINISHED)
        return count or 0
    finally:
        await engine.dispose()


def unfinished_tasks(database_url: str, seconds: float) -> int:
    """How many tasks are still not terminal after waiting up to ``seconds`` for them."""
    deadline = time.monotonic() + seconds
    while (left := run_async(lambda: _unfinished(database_url))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
