"""Fixtures shared by the whole suite: both databases, the app, and a client.

Every database test runs on SQLite and on PostgreSQL. Each test gets a database
of its own, copied from a template that the migrations built once per session:
a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (made a few
tests ahead, and dropped behind them, on threads of their own).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.core.config import Settings
from reference_app.db.engine import SessionFactory, create_engine, create_session_factory
from reference_app.db.migrate import migrate_database
from reference_app.db.models import Task, TaskEvent
from reference_app.main import create_app

T = TypeVar("T")

TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

ORG_A_KEY = "demo-key-org-a"
ORG_B_KEY = "demo-key-org-b"
AUTH_A = {"Authorization": f"Bearer {ORG_A_KEY}"}
AUTH_B = {"Authorization": f"Bearer {ORG_B_KEY}"}


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop, from sync fixture code."""

    async def _main() -> T:
        return await make()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _main()).result()


def _admin_dsn(database: str | None = None) -> str:
    url = make_url(TEST_POSTGRES_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(_admin_dsn(), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    run_async(lambda: migrate_database(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database. Without PostgreSQL its tests skip locally and fail in CI."""
    try:
        run_async(lambda: _admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL at {TEST_POSTGRES_URL} is unreachable ({exc!r})"
        if IN_CI:
            pytest.fail(f"{message}; CI needs it: .ci/run starts it", pytrace=False)
        pytest.skip(f"{message}; start it or set TEST_POSTGRES_URL")
    name = f"fbj_template_{os.getpid()}"
    run_async(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    run_async(lambda: _admin(f'CREATE DATABASE "{name}"'))
    template_url = make_url(TEST_POSTGRES_URL).set(database=name)
    run_async(lambda: migrate_database(template_url.render_as_string(hide_password=False)))
    yield name
    run_async(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _admin_now(sql: str) -> None:
    asyncio.run(_admin(sql))


class PostgresDatabases:
    """Fresh copies of the template, created ahead of the tests that take them.

    CREATE DATABASE ... TEMPLATE and, above all, DROP DATABASE (it unlinks some 300 files,
    about 0.4 s on the 2-core CI machine) took most of a short test's time. On threads of
    their own they overlap with the tests: creates stay a few tests ahead, and drops queue
    behind, one at a time, without holding up a create. Each test still gets a database no
    other test has used, and every database is gone when the session ends.
    """

    AHEAD = 2  # copies ready (or being made) beyond the one a test is taking

    def __init__(self, template: str) -> None:
        self._template = template
        self._creating = ThreadPoolExecutor(self.AHEAD, thread_name_prefix="postgres-create")
        self._dropping = ThreadPoolExecutor(1, thread_name_prefix="postgres-drop")
        self._ready: deque[Future[str]] = deque()
        self._drops: dict[str, Future[None]] = {}

    def _create(self) -> str:
        name = f"fbj_test_{uuid.uuid4().hex[:12]}"
        _admin_now(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    def take(self) -> str:
        """A database of the caller's own; ``drop`` it when done."""
        while len(self._ready) <= self.AHEAD:
            self._ready.append(self._creating.submit(self._create))
        ahead = self._ready.popleft()
        if ahead.exception() is None:
            return ahead.result()
        return self._create()  # the copy made ahead failed (server away?): try now, or fail

    def drop(self, name: str) -> None:
        self._drops[name] = self._dropping.submit(_admin_now, _drop_sql(name))

    def close(self) -> None:
        """Drop the copies nobody took, then wait for every drop; retry a failed one once."""
        for ahead in self._ready:
            if ahead.exception() is None:
                self.drop(ahead.result())
        self._creating.shutdown()
        self._dropping.shutdown()  # waits for every drop
        for name, dropped in self._drops.items():
            if dropped.exception() is not None:
                _admin_now(_drop_sql(name))


def _drop_sql(name: str) -> str:
    return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'


@pytest.fixture(scope="session")
def postgres_databases(postgres_template: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_template)
    yield databases
    databases.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    if backend == "sqlite":
        path = tmp_path / "app.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    name = databases.take()
    try:
        yield make_url(TEST_POSTGRES_URL).set(database=name).render_as_string(False)
    finally:
        databases.drop(name)


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database of this test's own with no tables at all (never migrated)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_template")  # skips locally, fails in CI, without PostgreSQL
    name = f"fbj_empty_{uuid.uuid4().hex[:12]}"
    run_async(lambda: _admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(TEST_POSTGRES_URL).set(database=name).render_as_string(False)
    finally:
        run_async(lambda: _admin(_drop_sql(name)))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: fast sweeps and retries, JSON logs, schema already migrated."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "env": "test",
        "log_format": "json",
        "migrate_on_startup": False,
        "sweep_interval_seconds": 0.05,
        "lease_seconds": 3.0,
        "shutdown_grace_seconds": 2.0,
        "task_retry_base_seconds": 0.01,
        "task_retry_cap_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (engine, runner, sweeper)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for org A. ASGITransport runs background tasks before it returns the response."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=AUTH_A
    ) as client:
        yield client


async def wait_for_status(
    client: httpx.AsyncClient, task_id: str, *statuses: str, seconds: float = 15.0
) -> dict[str, Any]:
    """Poll ``GET /tasks/{id}`` until the task is in one of ``statuses``."""
    body: dict[str, Any] = {}
    async with asyncio.timeout(seconds):
        while True:
            response = await client.get(f"/tasks/{task_id}")
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] in statuses:
                return body
            await asyncio.sleep(0.02)


async def count_rows(engine: AsyncEngine) -> tuple[int, int]:
    """(tasks, task_events), read through an engine that is not the app's."""
    async with engine.connect() as connection:
        tasks = await connection.scalar(select(func.count()).select_from(Task))
        events = await connection.scalar(select(func.count()).select_from(TaskEvent))
    return int(tasks or 0), int(events or 0)


class LockedSQLite:
    """Another process holding SQLite's one write lock (BEGIN IMMEDIATE), while ``begins``
    counts the BEGIN IMMEDIATEs ``engine`` sends meanwhile: each one is a wait on the lock."""

    def __init__(self, database_url: str, engine: AsyncEngine) -> None:
        path = make_url(database_url).database
        assert path, "a file database"
        self.path = path
        self.engine = engine
        self.begins = 0

    def _count(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.begins += statement == "BEGIN IMMEDIATE"

    def __enter__(self) -> LockedSQLite:
        self._locker = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        self._locker.execute("BEGIN IMMEDIATE")
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._count)
        self._locker.rollback()
        self._locker.close()
