"""Lesson 07: the event log, its projection, idempotency keys, and recovery after SIGKILL."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from lessons.lesson_07_event_log import (
    step_01_list_and_fold,
    step_02_durable_log,
    step_03_idempotency,
)
from reference_app.core.config import get_settings
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.events.projection import compute_projection
from reference_app.testing import LiveServer, start_server
from tests.conftest import AUTH_A, AUTH_B, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
STEP_01 = "lessons.lesson_07_event_log.step_01_list_and_fold:app"
STEP_04 = "lessons.lesson_07_event_log.step_04_crash_recovery:app"
WORK = {"data": {"order": 42, "lines": 3}, "io_ms": 10}


@pytest.fixture
def step_settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the steps' ``get_settings()`` at this test's database."""
    monkeypatch.setenv("APP_DATABASE_URL", database_url)
    monkeypatch.setenv("APP_LOG_FORMAT", "json")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@asynccontextmanager
async def serve(app: FastAPI, headers: dict[str, str] = AUTH_A) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running; ASGITransport runs background tasks before returning."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            yield client


async def event_types(client: httpx.AsyncClient, task_id: str) -> list[str]:
    response = await client.get(f"/tasks/{task_id}/events")
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()]


async def task_rows(sessions: SessionFactory) -> dict[uuid.UUID, dict[str, Any]]:
    async with session_scope(sessions) as session:
        tasks = await session.scalars(select(Task))
        return {
            t.id: {c: getattr(t, c) for c in ("status", "version", "attempts", "result")}
            for t in tasks
        }


# Step 1: an append-only list and a fold ------------------------------------------


async def test_step_01_the_status_is_the_fold_of_the_tasks_events() -> None:
    app = step_01_list_and_fold.app
    async with serve(app) as client:
        response = await client.post("/process-data", json=WORK)
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        assert response.json()["status_url"] == f"http://testserver/tasks/{task_id}"

        events = (await client.get(f"/tasks/{task_id}/events")).json()
        status = (await client.get(f"/tasks/{task_id}")).json()

    assert [(e["version"], e["type"]) for e in events] == [
        (1, "task_scheduled"),
        (2, "task_started"),
        (3, "task_succeeded"),
    ]
    assert status == step_01_list_and_fold.fold(events)
    assert status["status"] == "succeeded"
    assert status["result"] == {"keys": 2}
    # Replaying a prefix of the log gives the status at that point in time.
    assert step_01_list_and_fold.fold(events[:2])["status"] == "running"


async def test_step_01_an_unknown_task_is_a_404() -> None:
    async with serve(step_01_list_and_fold.app) as client:
        response = await client.get(f"/tasks/{uuid.uuid4()}")
    assert response.status_code == 404


@pytest.mark.live
async def test_step_01_a_restart_forgets_every_task_its_clients_were_told_about() -> None:
    first = start_server(STEP_01, env={"APP_LOG_FORMAT": "json"}, cwd=ROOT)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            accepted = (await client.post("/process-data", json=WORK)).json()
            assert (await client.get(f"/tasks/{accepted['task_id']}")).status_code == 200
    finally:
        first.kill()

    second = start_server(STEP_01, env={"APP_LOG_FORMAT": "json"}, cwd=ROOT)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(accepted["status_url"].replace(first.url, second.url))
    finally:
        second.stop()
    assert response.status_code == 404


# Step 2: the log in the database, and the projection --------------------------------


async def test_step_02_every_event_is_a_row_and_the_projection_is_their_fold(
    step_settings: None, sessions: SessionFactory
) -> None:
    async with serve(step_02_durable_log.app) as client:
        response = await client.post("/process-data", json=WORK)
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        status = (await client.get(f"/tasks/{task_id}")).json()
        events = (await client.get(f"/tasks/{task_id}/events")).json()

    assert [(e["version"], e["type"]) for e in events] == [
        (1, "task_scheduled"),
        (2, "task_started"),
        (3, "task_succeeded"),
    ]
    assert (status["status"], status["version"], status["attempts"]) == ("succeeded", 3, 1)
    assert status["result"] == {"keys": 2}
    async with session_scope(sessions) as session:
        folded = (await compute_projection(session))[uuid.UUID(task_id)]
    live = (await task_rows(sessions))[uuid.UUID(task_id)]
    assert {key: folded[key] for key in live} == live


async def test_step_02_another_organisations_task_is_a_404(step_settings: None) -> None:
    async with serve(step_02_durable_log.app) as client:
        task_id = (await client.post("/process-data", json=WORK)).json()["task_id"]
        assert (await client.get(f"/tasks/{task_id}", headers=AUTH_B)).status_code == 404
        assert (await client.get(f"/tasks/{task_id}/events", headers=AUTH_B)).status_code == 404
        assert (await client.get(f"/tasks/{task_id}")).status_code == 200


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE task_events SET type = 'task_failed' WHERE version = 3",
        "DELETE FROM task_events WHERE version = 2",
    ],
)
async def test_step_02_the_database_refuses_to_change_or_delete_an_event(
    step_settings: None, engine: AsyncEngine, statement: str
) -> None:
    async with serve(step_02_durable_log.app) as client:
        task_id = (await client.post("/process-data", json=WORK)).json()["task_id"]

        with pytest.raises(DBAPIError, match="task_events is append-only"):
            async with engine.begin() as connection:
                await connection.execute(text(statement))

        types = await event_types(client, task_id)
    assert types == ["task_scheduled", "task_started", "task_succeeded"]


async def test_step_02_rebuild_projection_restores_a_damaged_projection_from_the_log(
    step_settings: None, sessions: SessionFactory, database_url: str
) -> None:
    async with serve(step_02_durable_log.app) as client:
        ids = [(await client.post("/process-data", json=WORK)).json()["task_id"] for _ in "abc"]
    before = await task_rows(sessions)
    async with session_scope(sessions) as session:
        await session.execute(delete(Task).where(Task.id == uuid.UUID(ids[0])))
        forged = {"status": "failed", "version": 99, "result": None}
        await session.execute(update(Task).where(Task.id == uuid.UUID(ids[1])).values(**forged))
    assert await task_rows(sessions) != before

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reference_app",
        "--database-url",
        database_url,
        "rebuild-projection",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "APP_LOG_FORMAT": "json"},
    )
    async with asyncio.timeout(45):
        out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "rebuilt the projection of 3 tasks from the event log"
    assert await task_rows(sessions) == before
    async with session_scope(sessions) as session:
        assert await session.scalar(select(TaskEvent.id).where(TaskEvent.version > 3)) is None


# Step 3: idempotency keys --------------------------------------------------------------


async def count_streams(sessions: SessionFactory) -> int:
    async with session_scope(sessions) as session:
        return len((await session.scalars(select(TaskEvent.stream_id).distinct())).all())


async def test_step_03_the_same_key_and_body_return_the_same_task_and_run_it_once(
    step_settings: None, sessions: SessionFactory
) -> None:
    key = {"Idempotency-Key": "order-42"}
    async with serve(step_03_idempotency.app) as client:
        first = await client.post("/process-data", json=WORK, headers=key)
        replay = await client.post("/process-data", json=WORK, headers=key)
        types = await event_types(client, first.json()["task_id"])

    assert (first.status_code, replay.status_code) == (202, 202)
    assert replay.json()["task_id"] == first.json()["task_id"]
    assert replay.json()["status"] == "succeeded"  # the replay reports the task's progress
    assert types == ["task_scheduled", "task_started", "task_succeeded"]
    assert await count_streams(sessions) == 1


async def test_step_03_the_same_key_with_another_body_is_a_409_and_writes_nothing(
    step_settings: None, sessions: SessionFactory
) -> None:
    key = {"Idempotency-Key": "order-42"}
    async with serve(step_03_idempotency.app) as client:
        first = await client.post("/process-data", json=WORK, headers=key)
        other = await client.post("/process-data", json={**WORK, "io_ms": 11}, headers=key)

    assert first.status_code == 202
    assert other.status_code == 409
    assert "already used" in other.json()["detail"]
    assert await count_streams(sessions) == 1


async def test_step_03_concurrent_first_requests_with_one_key_make_one_task(
    step_settings: None, sessions: SessionFactory
) -> None:
    key = {"Idempotency-Key": "double-click"}
    async with serve(step_03_idempotency.app) as client:
        responses = await asyncio.gather(
            *(client.post("/process-data", json=WORK, headers=key) for _ in range(5))
        )

    assert [r.status_code for r in responses] == [202] * 5
    assert len({r.json()["task_id"] for r in responses}) == 1
    assert await count_streams(sessions) == 1


async def test_step_03_keys_are_per_organisation_and_requests_without_one_always_schedule(
    step_settings: None, sessions: SessionFactory
) -> None:
    key = {"Idempotency-Key": "order-42"}
    async with serve(step_03_idempotency.app) as client:
        org_a = await client.post("/process-data", json=WORK, headers=key)
        org_b = await client.post("/process-data", json=WORK, headers={**key, **AUTH_B})
        no_key = [await client.post("/process-data", json=WORK) for _ in range(2)]

    ids = {r.json()["task_id"] for r in [org_a, org_b, *no_key]}
    assert len(ids) == 4
    assert await count_streams(sessions) == 4


# Step 4: the reference app recovers from SIGKILL -----------------------------------------

CRASH_TASKS = 4
CRASH_IO_MS = 3000


def crash_env(database_url: str) -> dict[str, str]:
    return {
        "APP_DATABASE_URL": database_url,
        "APP_LOG_FORMAT": "json",
        "APP_LEASE_SECONDS": "2",
        "APP_SWEEP_INTERVAL_SECONDS": "0.2",
    }


def log_events(server: LiveServer, event: str) -> list[dict[str, Any]]:
    return [line for line in server.logs() if line.get("event") == event]


@pytest.mark.live
@pytest.mark.timeout(150)
async def test_step_04_after_a_sigkill_mid_task_a_restart_finishes_every_accepted_task(
    database_url: str, sessions: SessionFactory
) -> None:
    env = crash_env(database_url)
    bodies = [{"data": {"order": n}, "io_ms": CRASH_IO_MS} for n in range(CRASH_TASKS)]
    first = start_server(STEP_04, env=env, cwd=ROOT)
    try:
        async with httpx.AsyncClient(base_url=first.url, headers=AUTH_A, timeout=10) as client:
            responses = [
                await client.post("/process-data", json=body, headers={"Idempotency-Key": f"k{n}"})
                for n, body in enumerate(bodies)
            ]
            assert [r.status_code for r in responses] == [202] * CRASH_TASKS
            ids = [r.json()["task_id"] for r in responses]
            for task_id in ids:
                await wait_for_status(client, task_id, "running")
    finally:
        first.kill()  # SIGKILL: no shutdown, no last words
    assert first.process.returncode == -9
    assert {row["status"] for row in (await task_rows(sessions)).values()} == {"running"}

    second = start_server(STEP_04, env=env, cwd=ROOT)
    try:
        async with httpx.AsyncClient(base_url=second.url, headers=AUTH_A, timeout=10) as client:
            finished = [await wait_for_status(client, i, "succeeded", "failed") for i in ids]
            streams = [(await client.get(f"/tasks/{i}/events")).json() for i in ids]
            # The client never saw its 202s: it retries with the same keys, and nothing doubles.
            retries = [
                await client.post("/process-data", json=body, headers={"Idempotency-Key": f"k{n}"})
                for n, body in enumerate(bodies)
            ]
    finally:
        second.stop()

    assert [task["status"] for task in finished] == ["succeeded"] * CRASH_TASKS
    assert [task["attempts"] for task in finished] == [2] * CRASH_TASKS
    for events in streams:
        assert [e["type"] for e in events] == [
            "task_scheduled",
            "task_started",
            "attempt_failed",
            "retry_scheduled",
            "task_started",
            "task_succeeded",
        ]
        assert events[2]["payload"]["error_type"] == "LeaseExpired"
        first_owner, second_owner = events[1]["payload"], events[4]["payload"]
        assert str(first.pid) in first_owner["lease_owner"]
        assert str(second.pid) in second_owner["lease_owner"]
    assert [r.json()["task_id"] for r in retries] == ids
    assert await task_rows(sessions) == {
        uuid.UUID(i): {"status": "succeeded", "version": 6, "attempts": 2, "result": t["result"]}
        for i, t in zip(ids, finished, strict=True)
    }
    # The restarted process logged each recovery, under the id of the request that scheduled it.
    assert {line["task_id"] for line in log_events(second, "lease_expired")} == set(ids)
    request_ids = {r.json()["task_id"]: r.headers["X-Request-ID"] for r in responses}
    reruns = [line for line in log_events(second, "task_started") if line["attempt"] == 2]
    assert {(line["task_id"], line["request_id"]) for line in reruns} == set(request_ids.items())
