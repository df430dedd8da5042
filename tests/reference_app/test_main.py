"""The real server: uvicorn in a subprocess, stopped with SIGTERM mid-work and started again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.migrate import alembic_config, migrate_database
from reference_app.db.models import Task, TaskEvent
from reference_app.db.schema import MIGRATE_COMMAND
from reference_app.events.lifecycle import TERMINAL_STATUSES, TaskStatus
from reference_app.testing import LiveServer, free_port, live_server
from tests.conftest import AUTH_A, ORG_A_KEY, wait_for_status

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
EXIT_SECONDS = 30.0
IO_MS = 1500
TASKS = 8


def server_env(database_url: str, **extra: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APP_")}
    env.update(APP_DATABASE_URL=database_url, APP_LOG_FORMAT="json", **extra)  # only these
    return env


def json_lines(server: LiveServer) -> list[dict[str, Any]]:
    """The server's output: every line must be one JSON object."""
    return [json.loads(line) for line in server.log_text().splitlines() if line.strip()]


@contextmanager
def serve(env: dict[str, str | None], log_path: Path) -> Iterator[LiveServer]:
    with live_server(
        "reference_app.main:app",
        env=env,
        log_path=log_path,
        cwd=ROOT,
        args=["--timeout-graceful-shutdown", "2"],
    ) as server:
        yield server


async def terminate(server: LiveServer) -> None:
    """SIGTERM, as a process manager sends it; returns once the process shut down cleanly."""
    code = await asyncio.to_thread(server.stop, EXIT_SECONDS)
    # uvicorn re-raises the signal it handled once shutdown is complete.
    assert code in (0, -signal.SIGTERM), code
    events = [line["event"] for line in json_lines(server)]
    assert "app_stopped" in events
    assert events[-1].startswith("Finished server process")


async def load_streams(
    sessions: SessionFactory, ids: list[str]
) -> dict[uuid.UUID, tuple[Task, list[TaskEvent]]]:
    task_ids = [uuid.UUID(i) for i in ids]
    async with session_scope(sessions) as session:
        tasks = {t.id: t for t in await session.scalars(select(Task).where(Task.id.in_(task_ids)))}
        events = list(
            await session.scalars(
                select(TaskEvent)
                .where(TaskEvent.task_id.in_(task_ids))
                .order_by(TaskEvent.task_id, TaskEvent.version)
            )
        )
    return {
        task_id: (tasks[task_id], [e for e in events if e.task_id == task_id])
        for task_id in task_ids
        if task_id in tasks
    }


async def test_sigterm_mid_work_loses_nothing_and_a_restart_finishes_it(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    env = server_env(
        database_url,
        APP_MIGRATE_ON_STARTUP="false",
        APP_MAX_CONCURRENT_TASKS="2",
        APP_SWEEP_INTERVAL_SECONDS="0.2",
        APP_SHUTDOWN_GRACE_SECONDS="0.5",
        APP_LEASE_SECONDS="3",
    )

    with serve(env, tmp_path / "first.log") as first:
        async with httpx.AsyncClient(base_url=first.url, headers=AUTH_A, timeout=10) as client:
            responses = [
                await client.post("/process-data", json={"data": {"n": n}, "io_ms": IO_MS})
                for n in range(TASKS)
            ]
        assert [r.status_code for r in responses] == [202] * TASKS
        accepted = [r.json()["task_id"] for r in responses]
        request_ids = {r.json()["task_id"]: r.headers["X-Request-ID"] for r in responses}

        # 2 run, 6 wait for a slot: far more work than the shutdown grace allows.
        await terminate(first)

    after_stop = await load_streams(sessions, accepted)
    assert set(after_stop) == {uuid.UUID(i) for i in accepted}
    for task, events in after_stop.values():
        assert events[0].type == "task_scheduled"
        assert [e.version for e in events] == list(range(1, task.version + 1))
        assert task.status in {s.value for s in TaskStatus}  # terminal or not, but known
    unfinished = [
        t for t, _ in after_stop.values() if TaskStatus(t.status) not in TERMINAL_STATUSES
    ]
    assert unfinished, "the shutdown was meant to cut work short"

    with serve(env, tmp_path / "second.log") as second:
        async with httpx.AsyncClient(base_url=second.url, headers=AUTH_A, timeout=10) as client:
            for task_id in accepted:
                await wait_for_status(client, task_id, "succeeded", "failed", seconds=60)

    after_restart = await load_streams(sessions, accepted)
    for task, events in after_restart.values():
        assert task.status == "succeeded", [e.type for e in events]
        assert task.attempts == sum(e.type == "task_started" for e in events)
    assert ORG_A_KEY not in first.log_text() + second.log_text()
    # The restarted process ran work that no request of its own scheduled, yet its
    # log lines carry the id of the request that did.
    rerun = [line for line in json_lines(second) if line["event"] == "task_started"]
    assert {line["task_id"] for line in rerun} == {str(t.id) for t in unfinished}
    assert all(line["request_id"] == request_ids[line["task_id"]] for line in rerun)


async def test_a_fresh_sqlite_path_gets_its_schema_on_startup_and_serves(tmp_path: Path) -> None:
    database = tmp_path / "var" / "nested" / "app.db"
    env = server_env(f"sqlite+aiosqlite:///{database}")  # startup migration: SQLite's default

    with serve(env, tmp_path / "server.log") as server:
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH_A, timeout=10) as client:
            ready = await client.get("/ready")
            response = await client.post(
                "/send-notification", json={"email": "ann@example.com", "message": "hi"}
            )
            assert response.status_code == 202, response.text
            task = await wait_for_status(client, response.json()["task_id"], "succeeded")
        await terminate(server)

    assert ready.status_code == 200
    assert task["attempts"] == 1
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert revision == head
    assert ready.json() == {"status": "ready", "database": "ok", "schema": head}
    assert {"tasks", "task_events", "contacts"} <= tables
    lines = json_lines(server)  # uvicorn's own lines are JSON too
    assert "app_started" in {line["event"] for line in lines}
    assert any(line.get("logger") == "uvicorn.error" for line in lines)


def refused_start(database_url: str) -> tuple[int, list[dict[str, Any]]]:
    """uvicorn on ``database_url``, PostgreSQL's default of no migration on startup: its exit
    code and its output, every line of which must be one JSON object."""
    command = [sys.executable, "-m", "uvicorn", "reference_app.main:app"]
    env = server_env(database_url, APP_MIGRATE_ON_STARTUP="false")
    done = subprocess.run(
        [*command, "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=EXIT_SECONDS,
        cwd=ROOT,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
    )
    assert done.stdout == ""
    return done.returncode, [json.loads(line) for line in done.stderr.splitlines()]


@pytest.mark.parametrize("revision", [None, "0001"], ids=["never-migrated", "older-revision"])
def test_a_database_behind_the_code_stops_uvicorn_with_one_line_naming_the_command(
    empty_database_url: str, revision: str | None
) -> None:
    if revision is not None:
        asyncio.run(migrate_database(empty_database_url, revision))
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    code, lines = refused_start(empty_database_url)

    assert code == 3  # uvicorn's "startup failed"
    ours = [line for line in lines if line["logger"].startswith("reference_app")]
    [refusal] = ours  # no app_started, no sweeper, nothing else
    assert refusal["event"] == "schema_not_migrated"
    assert refusal["level"] == "error"
    assert (refusal["current"], refusal["head"]) == (revision, head)
    assert refusal["command"] == MIGRATE_COMMAND
    assert f"run `{MIGRATE_COMMAND}`" in refusal["detail"]
    # uvicorn prints the lifespan's exception as one record, a traceback whose last line is
    # the same sentence, and then says it is exiting. Nothing else has a traceback.
    tracebacks = [line for line in lines if "Traceback" in line["event"]]
    [traceback] = tracebacks
    last = traceback["event"].rstrip().splitlines()[-1]
    assert last.startswith("reference_app.db.schema.SchemaNotCurrent: schema_not_migrated")
    assert refusal["detail"] in last
    assert lines.index(refusal) < lines.index(traceback)
    assert lines[-1]["event"] == "Application startup failed. Exiting."
