"""Reading a task and its events: scoped to the caller's org, 404 for anything else."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import AUTH_B, wait_for_status

TASK_FIELDS = {
    "task_id",
    "webhook",
    "kind",
    "status",
    "version",
    "attempts",
    "max_attempts",
    "result",
    "last_error",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "run_after",
}
EVENT_FIELDS = {"id", "stream_id", "version", "type", "at", "payload"}


async def _finished_task(client: httpx.AsyncClient) -> str:
    response = await client.post("/process-data", json={"data": {"a": 1}, "io_ms": 0})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    await wait_for_status(client, task_id, "succeeded")
    return task_id


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, f"naive timestamp {value!r}"
    return parsed


async def test_a_task_shows_its_projection_fields(client: httpx.AsyncClient) -> None:
    task_id = await _finished_task(client)

    response = await client.get(f"/tasks/{task_id}")

    assert response.status_code == 200
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["task_id"] == task_id
    assert task["kind"] == "process_data"
    assert task["status"] == "succeeded"
    assert task["version"] == 3
    assert task["attempts"] == 1
    assert task["max_attempts"] >= 1
    assert task["result"]["keys"] == 1
    assert task["last_error"] is None
    assert task["run_after"] is None
    assert task["webhook"] is None  # no webhook_url, no delivery
    created, started, finished = (
        _when(task[k]) for k in ("created_at", "started_at", "finished_at")
    )
    assert created <= started <= finished
    assert _when(task["updated_at"]) == finished


async def test_a_task_does_not_expose_who_asked_or_how(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/process-data",
        json={"data": {"a": 1}, "io_ms": 0, "webhook_url": "https://hooks.example.com/x"},
        headers={"Idempotency-Key": "private-key"},
    )
    task = (await client.get(f"/tasks/{response.json()['task_id']}")).json()

    for leaked in ("org_id", "user_id", "idempotency_key", "request_hash", "lease_owner"):
        assert leaked not in task


async def test_a_just_scheduled_task_reads_as_scheduled_with_a_run_after(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # No free slot: the task stays scheduled in the database, and the sweeper claims none.
    app.state.worker.capacity = 0

    response = await client.post("/process-data", json={"data": {"a": 1}})
    task = (await client.get(f"/tasks/{response.json()['task_id']}")).json()

    assert task["status"] == "scheduled"
    assert task["version"] == 1
    assert task["attempts"] == 0
    assert task["result"] is None
    assert task["started_at"] is None
    assert task["finished_at"] is None
    assert _when(task["run_after"]) == _when(task["created_at"])


async def test_events_are_listed_oldest_first_with_their_fields(
    client: httpx.AsyncClient,
) -> None:
    task_id = await _finished_task(client)

    response = await client.get(f"/tasks/{task_id}/events")

    assert response.status_code == 200
    events = response.json()
    assert [e["type"] for e in events] == ["task_scheduled", "task_started", "task_succeeded"]
    assert all(set(e) == EVENT_FIELDS for e in events)
    assert [e["version"] for e in events] == [1, 2, 3]
    assert all(e["stream_id"] == task_id for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    times = [_when(e["at"]) for e in events]
    assert times == sorted(times)
    assert events[0]["payload"]["kind"] == "process_data"
    assert events[0]["payload"]["params"]["data"] == {"a": 1}
    assert events[1]["payload"]["attempt"] == 1
    assert events[2]["payload"]["result"]["keys"] == 1


async def test_the_events_of_two_tasks_do_not_mix(client: httpx.AsyncClient) -> None:
    first, second = await _finished_task(client), await _finished_task(client)

    for task_id in (first, second):
        events = (await client.get(f"/tasks/{task_id}/events")).json()
        assert {e["stream_id"] for e in events} == {task_id}
        assert len(events) == 3


NOT_A_TASK = [
    pytest.param("unknown", id="unknown-uuid"),
    pytest.param("not-a-uuid", id="not-a-uuid"),
    pytest.param("123", id="number"),
    pytest.param("x" * 70, id="70-chars"),
    pytest.param("0" * 64, id="64-zeros"),
    pytest.param("%00", id="nul"),
    pytest.param("' OR 1=1 --", id="sql"),
]


@pytest.mark.parametrize("suffix", ["", "/events"])
@pytest.mark.parametrize("task_id", NOT_A_TASK)
async def test_an_unknown_or_malformed_id_is_a_404_like_another_orgs_task(
    client: httpx.AsyncClient, task_id: str, suffix: str
) -> None:
    owned_by_b = await client.post(
        "/process-data", json={"data": {"a": 1}, "io_ms": 0}, headers=AUTH_B
    )
    other_org = await client.get(f"/tasks/{owned_by_b.json()['task_id']}{suffix}")
    if task_id == "unknown":
        task_id = str(uuid.uuid4())

    response = await client.get(f"/tasks/{task_id}{suffix}")

    assert other_org.status_code == 404
    assert response.status_code == 404, response.text
    assert response.json() == other_org.json()
    assert set(response.json()) == {"detail"}


async def test_the_owner_org_still_reads_the_task_another_org_cannot(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/process-data", json={"data": {"a": 1}, "io_ms": 0}, headers=AUTH_B
    )
    task_id = response.json()["task_id"]

    assert (await client.get(f"/tasks/{task_id}", headers=AUTH_B)).status_code == 200
    assert (await client.get(f"/tasks/{task_id}/events", headers=AUTH_B)).status_code == 200
    assert (await client.get(f"/tasks/{task_id}")).status_code == 404
    assert (await client.get(f"/tasks/{task_id}/events")).status_code == 404


@pytest.mark.parametrize("suffix", ["", "/events"])
async def test_reading_a_task_needs_an_api_key(client: httpx.AsyncClient, suffix: str) -> None:
    task_id = await _finished_task(client)

    response = await client.get(
        f"/tasks/{task_id}{suffix}", headers={"Authorization": "Bearer wrong"}
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
