"""Checks for exercise 06. Run: make check EX=06 (EXERCISE_TARGET=solution for the reference).

The reference app runs in-process with its lifespan (runner and sweeper) on a fresh SQLite
database, with fast retries; the partner is lesson 06's in-process ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from exercises._target import load_target
from reference_app.core.config import Settings
from reference_app.main import create_app

AUTH = {"Authorization": "Bearer demo-key-org-a"}
MAX_ATTEMPTS = 4
CAP_SECONDS = 0.5  # a Retry-After of 1 s is clamped to this; backoff draws stay far below it


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex06_classify_errors")


@pytest.fixture
async def client(target: ModuleType, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=database_url,
        env="test",
        log_format="json",
        migrate_on_startup=False,
        sweep_interval_seconds=0.05,
        lease_seconds=3.0,
        shutdown_grace_seconds=2.0,
        task_max_attempts=MAX_ATTEMPTS,
        task_retry_base_seconds=0.01,
        task_retry_cap_seconds=CAP_SECONDS,
    )
    app = create_app(settings, handlers={"process_data": target.sync_account})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH
        ) as client:
            yield client


async def run(
    client: httpx.AsyncClient, kind: str
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """Submit one sync of a fresh ``kind-...`` account; wait until it ends; task, types, events."""
    account_id = f"{kind}-{uuid.uuid4().hex[:8]}"
    body = {"data": {"account_id": account_id}, "io_ms": 0}
    response = await client.post("/process-data", json=body)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    async with asyncio.timeout(20):
        while True:
            task: dict[str, Any] = (await client.get(f"/tasks/{task_id}")).json()
            if task["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.02)
    events: list[dict[str, Any]] = (await client.get(f"/tasks/{task_id}/events")).json()
    return task, [event["type"] for event in events], events


RETRY = ["task_started", "attempt_failed", "retry_scheduled"]


async def test_a_healthy_partner_succeeds_at_once(client: httpx.AsyncClient) -> None:
    task, types, _ = await run(client, "ok")
    assert (task["status"], task["attempts"]) == ("succeeded", 1)
    assert task["result"]["balance"] == 42
    assert types == ["task_scheduled", "task_started", "task_succeeded"]


async def test_a_503_is_retried_until_it_succeeds(client: httpx.AsyncClient) -> None:
    task, types, _ = await run(client, "flaky-2")
    assert task["status"] == "succeeded", f"a 503 is transient; got {task['last_error']!r}"
    assert task["attempts"] == 3
    assert types == ["task_scheduled", *RETRY, *RETRY, "task_started", "task_succeeded"]


async def test_a_429_waits_for_retry_after(client: httpx.AsyncClient) -> None:
    task, types, events = await run(client, "throttled-1")
    assert task["status"] == "succeeded", f"a 429 is transient; got {task['last_error']!r}"
    assert types == ["task_scheduled", *RETRY, "task_started", "task_succeeded"]
    retry = next(event for event in events if event["type"] == "retry_scheduled")
    # Retry-After: 1, clamped to the cap: only a retry that read the header waits this long.
    assert retry["payload"]["delay_seconds"] == CAP_SECONDS


async def test_a_404_fails_at_once_without_retries(client: httpx.AsyncClient) -> None:
    task, types, _ = await run(client, "missing")
    assert (task["status"], task["attempts"]) == ("failed", 1)
    assert "404" in task["last_error"]
    assert types == ["task_scheduled", "task_started", "attempt_failed", "task_failed"]


async def test_a_refused_connection_is_retried_until_attempts_run_out(
    client: httpx.AsyncClient,
) -> None:
    task, types, _ = await run(client, "down")
    assert (task["status"], task["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert types.count("retry_scheduled") == MAX_ATTEMPTS - 1
