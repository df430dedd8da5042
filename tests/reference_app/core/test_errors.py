"""A database outage is a 503 with Retry-After, writes nothing, and heals by itself."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from reference_app.core.errors import (
    DATABASE_UNAVAILABLE,
    RETRY_AFTER_SECONDS,
    is_database_outage,
)
from reference_app.db import engine as db_engine
from reference_app.db.models import Task, TaskEvent
from reference_app.main import create_app
from tests.conftest import AUTH_A, make_settings, wait_for_status

if TYPE_CHECKING:
    from tests.reference_app.core.conftest import TcpProxy

BODIES: dict[str, dict[str, Any]] = {
    "/import-contacts": {"file_id": "contacts.csv"},
    "/send-notification": {"email": "ada@example.com", "message": "hello"},
    "/process-data": {"data": {"a": 1}, "io_ms": 0},
}


# is_database_outage ---------------------------------------------------------


def _wrapped(cls: type[DBAPIError], *, invalidated: bool = False) -> DBAPIError:
    return cls("SELECT 1", {}, Exception("driver says no"), connection_invalidated=invalidated)


class _DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: an error carrying PostgreSQL's SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _with_sqlstate(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _DriverError(sqlstate))


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(_wrapped(OperationalError), id="operational-error"),
        pytest.param(_wrapped(InterfaceError), id="interface-error"),
        pytest.param(PoolTimeoutError("QueuePool limit reached"), id="pool-timeout"),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), id="connection-refused"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="connection-reset"),
        pytest.param(OSError(113, "No route to host"), id="os-error"),
        pytest.param(TimeoutError(), id="timeout"),
        pytest.param(_wrapped(DBAPIError, invalidated=True), id="invalidated-connection"),
        pytest.param(_wrapped(ProgrammingError, invalidated=True), id="invalidated-programming"),
        # A PostgreSQL server shutting down or starting up refuses connections with these.
        pytest.param(_with_sqlstate("57P03"), id="cannot-connect-now"),
        pytest.param(_with_sqlstate("57P01"), id="admin-shutdown"),
        pytest.param(_with_sqlstate("08006"), id="connection-failure"),
    ],
)
def test_errors_that_mean_the_database_is_unreachable_are_outages(exc: BaseException) -> None:
    assert is_database_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(_wrapped(IntegrityError), id="integrity-error"),
        pytest.param(_wrapped(ProgrammingError), id="programming-error"),
        pytest.param(_wrapped(DBAPIError), id="plain-dbapi-error"),
        pytest.param(_with_sqlstate("23505"), id="unique-violation"),
        pytest.param(_with_sqlstate("22P05"), id="untranslatable-character"),
        pytest.param(ValueError("bad input"), id="value-error"),
        pytest.param(KeyError("task"), id="key-error"),
        pytest.param(RuntimeError("bug"), id="runtime-error"),
        pytest.param(asyncio.CancelledError(), id="cancelled"),
    ],
)
def test_bugs_and_constraint_violations_are_not_outages(exc: BaseException) -> None:
    assert not is_database_outage(exc)


# Other errors are JSON too ---------------------------------------------------


async def test_a_422_does_not_echo_input_that_json_cannot_encode(client: httpx.AsyncClient):
    # NaN in a number field and a lone surrogate in the data: the error names them without
    # sending the input back (which would fail to encode: a 500 instead of a 422).
    response = await client.post(
        "/process-data",
        content=b'{"data": {"a": "\\ud800"}, "io_ms": NaN}',
        headers={**AUTH_A, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    errors = response.json()["detail"]
    assert {tuple(error["loc"]) for error in errors} == {("body", "data"), ("body", "io_ms")}
    assert all("input" not in error for error in errors)


async def test_an_unexpected_error_is_a_json_500(settings):
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        response = await client.get("/boom")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}


# Helpers --------------------------------------------------------------------


async def count_rows(engine: AsyncEngine) -> tuple[int, int, int]:
    """(tasks, task_events, task_scheduled events), read through an engine that is not the app's."""
    async with engine.connect() as connection:
        tasks = await connection.scalar(select(func.count()).select_from(Task))
        events = await connection.scalar(select(func.count()).select_from(TaskEvent))
        scheduled = await connection.scalar(
            select(func.count()).select_from(TaskEvent).where(TaskEvent.type == "task_scheduled")
        )
    return int(tasks or 0), int(events or 0), int(scheduled or 0)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH_A
        ) as client:
            yield client


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"detail": DATABASE_UNAVAILABLE}


# PostgreSQL going away and coming back --------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_postgres_outage_is_a_503_that_writes_nothing_and_heals_by_itself(
    postgres_proxy: tuple[TcpProxy, str], engine: AsyncEngine
) -> None:
    proxy, proxied_url = postgres_proxy
    app = create_app(make_settings(proxied_url))
    async with running(app) as client:
        before = await client.post("/process-data", json=BODIES["/process-data"])
        assert before.status_code == 202, before.text
        await wait_for_status(client, before.json()["task_id"], "succeeded")
        assert proxy.connections_made >= 1
        counts_before = await count_rows(engine)

        await proxy.stop()
        with capture_logs() as logs:
            during = [await client.post(path, json=body) for path, body in BODIES.items()]
            during.append(
                await client.post(
                    "/process-data",
                    json=BODIES["/process-data"],
                    headers={"Idempotency-Key": "during-outage"},
                )
            )
            during.append(
                await client.post(
                    "/process-data", params={"mode": "inline"}, json=BODIES["/process-data"]
                )
            )
            during.append(await client.get(f"/tasks/{before.json()['task_id']}"))
            during.append(await client.get("/ready"))

        for response in during:
            assert_unavailable(response)
        unavailable = [e for e in logs if e["event"] == "database_unavailable"]
        assert {e["path"] for e in unavailable} >= {*BODIES, f"/tasks/{before.json()['task_id']}"}
        assert await count_rows(engine) == counts_before

        await proxy.start()
        after = await client.post("/process-data", json=BODIES["/process-data"])
        assert after.status_code == 202, after.text
        await wait_for_status(client, after.json()["task_id"], "succeeded")
        assert (await client.get("/ready")).status_code == 200
        again = await client.post(
            "/process-data", json=BODIES["/process-data"], headers={"Idempotency-Key": "after"}
        )
        assert again.status_code == 202, again.text

    tasks, _, scheduled = await count_rows(engine)
    assert tasks == scheduled == counts_before[0] + 2


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_postgres_outage_never_surfaces_as_a_500(
    postgres_proxy: tuple[TcpProxy, str], engine: AsyncEngine
) -> None:
    proxy, proxied_url = postgres_proxy
    app = create_app(make_settings(proxied_url))
    async with running(app) as client:
        await proxy.stop()
        responses = await asyncio.gather(
            *(client.post(path, json=body) for path, body in BODIES.items() for _ in range(4))
        )
        await proxy.start()

    assert [r.status_code for r in responses] == [503] * len(responses)
    assert await count_rows(engine) == (0, 0, 0)


# SQLite locked by another writer ---------------------------------------------


def _lock_exclusively(path: str) -> sqlite3.Connection:
    """Take SQLite's write lock from a connection the app does not own."""
    locker = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


def _release(locker: sqlite3.Connection) -> None:
    locker.execute("ROLLBACK")
    locker.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_sqlite_database_locked_past_the_busy_timeout_is_a_503_that_writes_nothing(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    db_path = make_url(database_url).database
    assert db_path is not None
    app = create_app(make_settings(database_url))
    async with running(app) as client:
        # In a thread: the sweeper may hold the lock for a moment, and needs the loop to let go.
        locker = await asyncio.to_thread(_lock_exclusively, db_path)
        try:
            with capture_logs() as logs:
                locked = [await client.post(path, json=body) for path, body in BODIES.items()]
        finally:
            await asyncio.to_thread(_release, locker)

        for response in locked:
            assert_unavailable(response)
        assert any(
            e["event"] == "database_unavailable" and e["error_type"] == "OperationalError"
            for e in logs
        )

        after = await client.post("/process-data", json=BODIES["/process-data"])
        assert after.status_code == 202, after.text
        await wait_for_status(client, after.json()["task_id"], "succeeded")

    assert await count_rows(engine) == (1, 3, 1)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_busy_timeout_is_applied_to_every_sqlite_connection(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "SQLITE_BUSY_TIMEOUT_MS", 1234)
    engine = db_engine.create_engine(database_url)
    try:
        async with engine.connect() as connection:
            busy = await connection.exec_driver_sql("PRAGMA busy_timeout")
            assert busy.scalar() == 1234
    finally:
        await engine.dispose()
