"""``app.dependency_overrides[get_store]`` swaps the task store of every route: what the
floor (benchmarks/_accept_floor.py) is built on, and a way to test a route without a database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.api.deps import get_store
from reference_app.db.models import Task, TaskEvent
from reference_app.store import Accepted, Submission, TaskRecord
from tests.conftest import AUTH_B, count_rows

BODIES: dict[str, dict[str, Any]] = {
    "/import-contacts": {"file_id": "contacts-2026.csv"},
    "/send-notification": {"email": "ada@example.com", "message": "Your import is done."},
    "/process-data": {"data": {"rows": [1, 2, 3]}, "io_ms": 0},
}
# What each endpoint puts in the submission: its kind and params.
SUBMITTED: dict[str, tuple[str, dict[str, Any]]] = {
    "/import-contacts": ("import_contacts", {"file_id": "contacts-2026.csv"}),
    "/send-notification": (
        "send_notification",
        {"email": "ada@example.com", "message": "Your import is done."},
    ),
    "/process-data": ("process_data", {"data": {"rows": [1, 2, 3]}, "io_ms": 0, "cpu_ms": 0}),
}
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class RecordingStore:
    """Records what the routes ask of it; holds one task of its own, never in a database."""

    def __init__(self) -> None:
        self.task_id = uuid.uuid4()
        self.submissions: list[Submission] = []
        self.reads: list[tuple[str, str, uuid.UUID]] = []

    async def accept(self, submission: Submission) -> Accepted:
        self.submissions.append(submission)
        # created=False: no task for the worker to start (the real store has none to claim).
        return Accepted(task_id=self.task_id, status="scheduled", created=False)

    async def find_task(self, org_id: str, task_id: uuid.UUID) -> TaskRecord | None:
        self.reads.append(("find_task", org_id, task_id))
        return TaskRecord(self._task(), delivery=None) if task_id == self.task_id else None

    async def events_of(self, org_id: str, task_id: uuid.UUID) -> list[TaskEvent] | None:
        self.reads.append(("events_of", org_id, task_id))
        if task_id != self.task_id:
            return None
        event = TaskEvent(
            id=7,
            stream_id=task_id,
            task_id=task_id,
            version=1,
            type="task_scheduled",
            payload={"kind": "process_data"},
            at=NOW,
        )
        return [event]

    def _task(self) -> Task:
        return Task(
            id=self.task_id,
            org_id="org-a",
            user_id="alice",
            kind="process_data",
            status="succeeded",
            version=3,
            attempts=1,
            max_attempts=5,
            params={},
            result={"from": "the recording store"},
            last_error=None,
            created_at=NOW,
            updated_at=NOW,
            started_at=NOW,
            finished_at=NOW,
            run_after=None,
        )


@pytest.fixture
def store(app: FastAPI) -> RecordingStore:
    """The recording store, in place of the app's for every route of this test."""
    recording = RecordingStore()

    async def recording_store() -> RecordingStore:
        return recording

    app.dependency_overrides[get_store] = recording_store
    return recording


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("path", list(BODIES))
async def test_a_post_hands_the_callers_submission_to_the_overriding_store(
    client: httpx.AsyncClient, store: RecordingStore, engine: AsyncEngine, path: str
) -> None:
    response = await client.post(
        path,
        json=BODIES[path],
        headers={"Idempotency-Key": "key-1", "X-Request-ID": "req-42"},
    )

    assert response.status_code == 202, response.text
    assert response.json()["task_id"] == str(store.task_id)
    assert response.headers["x-request-id"] == "req-42"
    kind, params = SUBMITTED[path]
    assert store.submissions == [
        Submission(
            org_id="org-a",
            user_id="alice",
            kind=kind,
            params=params,
            idempotency_key="key-1",
            request_id="req-42",
        )
    ]
    # The app's own store was never asked: nothing in the database.
    assert await count_rows(engine) == (0, 0)


async def test_the_request_id_the_middleware_made_is_the_one_submitted(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await client.post("/process-data", json=BODIES["/process-data"])

    assert response.status_code == 202, response.text
    (submission,) = store.submissions
    assert submission.request_id == response.headers["x-request-id"]
    assert submission.idempotency_key is None


async def test_the_submission_is_the_callers_whichever_key_calls(
    anonymous: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await anonymous.post("/process-data", json=BODIES["/process-data"], headers=AUTH_B)

    assert response.status_code == 202, response.text
    (submission,) = store.submissions
    assert (submission.org_id, submission.user_id) == ("org-b", "bob")


async def test_a_refused_post_never_reaches_the_store(
    anonymous: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await anonymous.post("/process-data", json=BODIES["/process-data"])

    assert response.status_code == 401
    assert store.submissions == []


async def test_the_reads_ask_the_overriding_store_with_the_callers_org(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    task = await client.get(f"/tasks/{store.task_id}")
    events = await client.get(f"/tasks/{store.task_id}/events")
    unknown = uuid.uuid4()
    missing = await client.get(f"/tasks/{unknown}")

    assert task.status_code == 200, task.text
    assert task.json()["task_id"] == str(store.task_id)
    assert task.json()["result"] == {"from": "the recording store"}
    assert events.status_code == 200, events.text
    assert [(e["id"], e["type"]) for e in events.json()] == [(7, "task_scheduled")]
    assert missing.status_code == 404
    assert store.reads == [
        ("find_task", "org-a", store.task_id),
        ("events_of", "org-a", store.task_id),
        ("find_task", "org-a", unknown),
    ]


async def test_without_the_override_the_apps_own_store_answers(
    app: FastAPI, client: httpx.AsyncClient, store: RecordingStore
) -> None:
    del app.dependency_overrides[get_store]

    response = await client.get(f"/tasks/{store.task_id}")

    assert response.status_code == 404  # the database has no such task
    assert store.reads == []
