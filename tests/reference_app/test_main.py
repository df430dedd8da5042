"""The real server: uvicorn in a subprocess, stopped with SIGTERM mid-work and started again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
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
from reference_app.db.migrate import alembic_config
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import TERMINAL_STATUSES, TaskStatus
from tests.conftest import AUTH_A, ORG_A_KEY, wait_for_status

pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30.0
EXIT_SECONDS = 30.0
IO_MS = 1500
TASKS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env.update(APP_DATABASE_URL=database_url, APP_LOG_FORMAT="json", **extra)
    return env


class Server:
    """One uvicorn process serving ``reference_app.main:app`` on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's output: every line must be one JSON object."""
        text = self.log_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            async with asyncio.timeout(STARTUP_SECONDS):
                while True:
                    if self.process.poll() is not None:
                        pytest.fail(f"the server exited at startup:\n{self.log_path.read_text()}")
                    try:
                        if (await client.get("/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

    async def terminate(self) -> None:
        """SIGTERM, as a process manager sends it; returns once the process shut down cleanly."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, EXIT_SECONDS)
        # uvicorn re-raises the signal it handled once shutdown is complete.
        assert code in (0, -signal.SIGTERM), code
        events = [line["event"] for line in self.log_lines()]
        assert "app_stopped" in events
        assert events[-1].startswith("Finished server process")


@contextmanager
def serve(env: dict[str, str], log_path: Path) -> Iterator[Server]:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "reference_app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--timeout-graceful-shutdown",
                "2",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield Server(process, port, log_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=EXIT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


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
        await first.wait_ready()
        async with httpx.AsyncClient(base_url=first.url, headers=AUTH_A, timeout=10) as client:
            responses = [
                await client.post("/process-data", json={"data": {"n": n}, "io_ms": IO_MS})
                for n in range(TASKS)
            ]
        assert [r.status_code for r in responses] == [202] * TASKS
        accepted = [r.json()["task_id"] for r in responses]
        request_ids = {r.json()["task_id"]: r.headers["X-Request-ID"] for r in responses}

        # 2 run, 6 wait for a slot: far more work than the shutdown grace allows.
        await first.terminate()

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
        await second.wait_ready()
        async with httpx.AsyncClient(base_url=second.url, headers=AUTH_A, timeout=10) as client:
            for task_id in accepted:
                await wait_for_status(client, task_id, "succeeded", "failed", seconds=60)

    after_restart = await load_streams(sessions, accepted)
    for task, events in after_restart.values():
        assert task.status == "succeeded", [e.type for e in events]
        assert task.attempts == sum(e.type == "task_started" for e in events)
    assert ORG_A_KEY not in first.log_path.read_text() + second.log_path.read_text()
    # The restarted process ran work that no request of its own scheduled, yet its
    # log lines carry the id of the request that did.
    rerun = [line for line in second.log_lines() if line["event"] == "task_started"]
    assert {line["task_id"] for line in rerun} == {str(t.id) for t in unfinished}
    assert all(line["request_id"] == request_ids[line["task_id"]] for line in rerun)


async def test_a_fresh_sqlite_path_gets_its_schema_on_startup_and_serves(tmp_path: Path) -> None:
    database = tmp_path / "var" / "nested" / "app.db"
    env = server_env(f"sqlite+aiosqlite:///{database}")  # startup migration: SQLite's default

    with serve(env, tmp_path / "server.log") as server:
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH_A, timeout=10) as client:
            ready = await client.get("/ready")
            response = await client.post(
                "/send-notification", json={"email": "ann@example.com", "message": "hi"}
            )
            assert response.status_code == 202, response.text
            task = await wait_for_status(client, response.json()["task_id"], "succeeded")
        await server.terminate()

    assert ready.status_code == 200
    assert task["attempts"] == 1
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert revision == head
    assert {"tasks", "task_events", "contacts"} <= tables
    lines = server.log_lines()  # uvicorn's own lines are JSON too
    assert "app_started" in {line["event"] for line in lines}
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
