"""Lesson 03: the request's session in a task fails for real; ids and a session per task do not.

The failing steps run under a real uvicorn process: the errors happen after the
response, where only the server's log sees them (and in-process, aiosqlite
leaks the coroutine that MissingGreenlet interrupts). Every database test runs
on SQLite and on PostgreSQL through the ``database_url`` fixture.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from lessons.lesson_03_session_isolation import step_01_request_session
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Contact
from reference_app.testing import LiveServer, live_server

pytestmark = pytest.mark.live

LESSON = "lessons.lesson_03_session_isolation"
ASGI_ERROR = "Exception in ASGI application"
BURST = 6
SEND_MS = 3000  # three times the steps' one-second pool timeout


def serve(step: str, database_url: str, **env: str) -> AbstractContextManager[LiveServer]:
    return live_server(
        f"{LESSON}.{step}:app",
        env={"APP_DATABASE_URL": database_url, "APP_LOG_FORMAT": "json", **env},
    )


def events(server: LiveServer) -> list[str]:
    return [record["event"] for record in server.logs()]


def tracebacks(server: LiveServer) -> list[str]:
    """Each traceback uvicorn logged as an unhandled ASGI exception."""
    return [
        record["exception"] for record in server.logs() if record["event"].startswith(ASGI_ERROR)
    ]


def errors(server: LiveServer) -> list[str]:
    """The last line of each of those tracebacks."""
    return [trace.splitlines()[-1] for trace in tracebacks(server)]


async def wait_until(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy, for ``seconds`` at most."""
    async with asyncio.timeout(seconds):
        while True:
            if result := check():
                return result
            await asyncio.sleep(0.05)


async def contact_names(sessions: SessionFactory) -> dict[str, str]:
    async with session_scope(sessions) as session:
        rows = await session.execute(select(Contact.email, Contact.name))
        return {email: name for email, name in rows}


# Step 1: the request's session and object in the task ----------------------------------


async def test_step_01_default_scope_session_is_open_but_the_expired_object_raises_missing_greenlet(
    database_url: str, sessions: SessionFactory
) -> None:
    with serve("step_01_request_session", database_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post(
                "/contacts", json={"email": "ada@example.com", "name": "Ada"}
            )
        await wait_until(lambda: errors(server))

    assert response.status_code == 201  # the client was told all is well
    # On SQLite the session's own rollback then fails the same way, and is chained last.
    [trace] = tracebacks(server)
    assert (
        "sqlalchemy.exc.MissingGreenlet: greenlet_spawn has not been called; can't call "
        "await_() here. Was IO attempted in an unexpected place?"
    ) in trace
    started = next(r for r in server.logs() if r["event"] == "welcome_started")
    assert started["detached"] is False  # the default scope has not closed the session yet...
    assert started["expired"] is True  # ...but the commit expired the object: a lazy load
    order = events(server)
    assert order.index("welcome_started") < order.index("request_session_closed")
    assert "contact_welcomed" not in order
    assert await contact_names(sessions) == {"ada@example.com": "Ada"}


async def test_step_01_function_scope_closes_the_session_first_and_raises_detached_instance(
    database_url: str, sessions: SessionFactory
) -> None:
    with serve("step_01_request_session", database_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post(
                "/contacts-function-scope", json={"email": "bob@example.com", "name": "Bob"}
            )
        await wait_until(lambda: errors(server))

    assert response.status_code == 201
    [error] = errors(server)
    assert error.startswith("sqlalchemy.orm.exc.DetachedInstanceError: Instance <Contact at 0x")
    assert "is not bound to a Session; attribute refresh operation cannot proceed" in error
    started = next(r for r in server.logs() if r["event"] == "welcome_started")
    assert started["detached"] is True
    order = events(server)
    assert order.index("request_session_closed") < order.index("welcome_started")
    assert "contact_welcomed" not in order
    assert await contact_names(sessions) == {"bob@example.com": "Bob"}


async def test_step_01_with_expire_on_commit_false_alone_the_update_is_silently_lost(
    sessions: SessionFactory,
) -> None:
    # ``sessions`` is create_session_factory: expire_on_commit=False. A closed session
    # leaves the object detached but loaded, so nothing raises, and nothing is written.
    session = sessions()
    contact = Contact(
        org_id="org-a", email="cy@example.com", name="Cy", source_task_id=uuid.uuid4()
    )
    session.add(contact)
    await session.commit()
    await session.close()  # what scope="function" does before the task runs

    with capture_logs() as logs:
        await step_01_request_session.welcome(session, contact)

    assert [e["event"] for e in logs] == ["welcome_started", "contact_welcomed"]
    assert contact.name == "Cy (welcomed)"  # in memory only
    assert await contact_names(sessions) == {"cy@example.com": "Cy"}


# Step 2: ids in, a session of the task's own -------------------------------------------


async def test_step_02_the_task_opens_its_own_session_and_the_write_is_committed(
    database_url: str, sessions: SessionFactory
) -> None:
    with serve("step_02_ids_and_own_session", database_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            first = await client.post("/contacts", json={"email": "ada@example.com", "name": "Ada"})
            second = await client.post(
                "/contacts", json={"email": "bob@example.com", "name": "Bob"}
            )
        await wait_until(lambda: events(server).count("contact_welcomed") == 2)

    # expire_on_commit=False: the request read contact.id after its commit, without a reload.
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    welcomed = [r for r in server.logs() if r["event"] == "contact_welcomed"]
    assert [r["contact_id"] for r in welcomed] == [first.json()["id"], second.json()["id"]]
    assert errors(server) == []
    assert await contact_names(sessions) == {
        "ada@example.com": "Ada (welcomed)",
        "bob@example.com": "Bob (welcomed)",
    }


# Steps 3 and 4: the same burst against the same tiny pool -------------------------------


async def burst(server: LiveServer) -> list[httpx.Response]:
    """``BURST`` sign-ups at once, each queueing a welcome that takes ``SEND_MS`` to send."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/contacts",
                    params={"send_ms": SEND_MS},
                    json={"email": f"user{n}@example.com", "name": f"User {n}"},
                )
                for n in range(BURST)
            )
        )


def capacity(backend: str) -> int:
    """Connections with APP_DB_POOL_SIZE=1: one on either backend (the app has no overflow)."""
    return 1


async def test_step_03_tasks_holding_a_connection_through_a_slow_call_exhaust_the_pool(
    backend: str, database_url: str, sessions: SessionFactory
) -> None:
    with serve("step_03_pool_exhaustion", database_url, APP_DB_POOL_SIZE="1") as server:
        responses = await burst(server)
        async with httpx.AsyncClient(base_url=server.url) as client:
            full = f"Current Checked out connections: {capacity(backend)}"
            async with asyncio.timeout(10):  # the tasks hold every connection the pool has
                while True:
                    if full in (await client.get("/pool")).json()["status"]:
                        break
                    await asyncio.sleep(0.05)
        created = [r for r in responses if r.status_code == 201]
        # Every task either welcomes its contact or dies on the pool; every 500 is a request
        # that got no connection either.
        failed_requests = [r for r in responses if r.status_code == 500]
        await wait_until(
            lambda: (
                events(server).count("contact_welcomed") + len(errors(server))
                == len(created) + len(failed_requests)
            ),
            seconds=30,
        )

    assert len(created) + len(failed_requests) == BURST
    timeouts = errors(server)
    assert len(timeouts) >= 1
    assert set(timeouts) == {
        "sqlalchemy.exc.TimeoutError: QueuePool limit of size 1 overflow 0 reached, "
        "connection timed out, timeout 1.00 "
        "(Background on this error at: https://sqlalche.me/e/21/3o7r)"
    }
    names = await contact_names(sessions)
    welcomed = [name for name in names.values() if name.endswith("(welcomed)")]
    assert len(welcomed) == events(server).count("contact_welcomed") < BURST


async def test_step_04_short_sessions_welcome_the_whole_burst_with_the_same_tiny_pool(
    database_url: str, sessions: SessionFactory
) -> None:
    with serve("step_04_short_sessions", database_url, APP_DB_POOL_SIZE="1") as server:
        responses = await burst(server)
        await wait_until(lambda: events(server).count("contact_welcomed") == BURST, seconds=30)
        async with httpx.AsyncClient(base_url=server.url) as client:
            pool = (await client.get("/pool")).json()["status"]

    assert [r.status_code for r in responses] == [201] * BURST
    assert errors(server) == []
    assert "Pool size: 1 " in pool
    assert "Current Checked out connections: 0" in pool  # all given back while the emails sent
    names = await contact_names(sessions)
    assert sorted(names.values()) == sorted(f"User {n} (welcomed)" for n in range(BURST))
