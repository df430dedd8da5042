"""Admission control: with ``APP_MAX_DUE_TASKS`` set, a POST past the due backlog's bound is
a 503 with Retry-After that writes nothing, and the bound frees as the backlog is worked off."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task
from tests.conftest import make_settings
from tests.reference_app._task_kit import JOB, WAIT, Gate, serving, wait_until


async def task_count(sessions: SessionFactory) -> int:
    async with session_scope(sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(Task)) or 0)


async def test_past_the_bound_a_post_is_a_503_that_writes_nothing_until_the_backlog_drains(
    database_url: str, sessions: SessionFactory
) -> None:
    gate = Gate()
    # Counted once at start: between counts, the store's own accepts and claims move it.
    settings = make_settings(
        database_url, max_concurrent_tasks=1, max_due_tasks=3, sweep_interval_seconds=3600
    )

    async with serving(settings, {"process_data": gate}) as client:
        # ASGITransport runs a response's background tasks before it returns: the first
        # POST's task holds the only slot, and its request stays open until the gate opens.
        first = asyncio.create_task(client.post("/process-data", json=JOB))
        try:
            await wait_until(lambda: gate.running == 1)
            waiting = [await client.post("/process-data", json=JOB) for _ in range(3)]
            refused = await client.post("/process-data", json=JOB)
            written = await task_count(sessions)
        finally:
            gate.release.set()
        assert (await asyncio.wait_for(first, WAIT)).status_code == 202
        # The backlog is worked off, and the bound lets work in again.
        for response in waiting:
            assert response.status_code == 202, response.text
        for _ in range(int(WAIT / 0.05)):  # bounded: the backlog drains in milliseconds
            later = await client.post("/process-data", json=JOB)
            if later.status_code != 503:
                break
            await asyncio.sleep(0.05)

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert "APP_MAX_DUE_TASKS=3" in refused.json()["detail"]
    assert written == 4  # the refused POST wrote nothing
    assert later.status_code == 202


async def test_an_idempotent_replay_is_answered_even_past_the_bound(
    database_url: str, sessions: SessionFactory
) -> None:
    gate = Gate()
    settings = make_settings(
        database_url, max_concurrent_tasks=1, max_due_tasks=1, sweep_interval_seconds=3600
    )

    async with serving(settings, {"process_data": gate}) as client:
        first = asyncio.create_task(client.post("/process-data", json=JOB))
        try:
            await wait_until(lambda: gate.running == 1)
            keyed = {"Idempotency-Key": "k-1"}
            original = await client.post("/process-data", json=JOB, headers=keyed)
            replay = await client.post("/process-data", json=JOB, headers=keyed)
            fresh = await client.post("/process-data", json=JOB)
        finally:
            gate.release.set()
        await asyncio.wait_for(first, WAIT)

    assert original.status_code == 202
    assert replay.status_code == 202  # the task exists: nothing new to admit
    assert replay.json()["task_id"] == original.json()["task_id"]
    assert fresh.status_code == 503


async def test_without_a_bound_everything_is_accepted(
    database_url: str, sessions: SessionFactory
) -> None:
    gate = Gate()
    settings = make_settings(database_url, max_concurrent_tasks=1)

    async with serving(settings, {"process_data": gate}) as client:
        first = asyncio.create_task(client.post("/process-data", json=JOB))
        try:
            await wait_until(lambda: gate.running == 1)
            responses = [await client.post("/process-data", json=JOB) for _ in range(20)]
        finally:
            gate.release.set()
        await asyncio.wait_for(first, WAIT)

    assert [r.status_code for r in responses] == [202] * 20
    assert isinstance(client, httpx.AsyncClient)
