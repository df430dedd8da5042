"""The projection is a fold over the log: the fold alone, then the live ``tasks`` table."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update

from reference_app.core.config import Settings
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task
from reference_app.events.lifecycle import EventType
from reference_app.events.projection import (
    OPERATIONAL_COLUMNS,
    RecordedEvent,
    changes_for,
    compute_projection,
    fold,
    rebuild_projection,
)
from reference_app.events.store import NewEvent, append_events, renew_lease, start_stream
from reference_app.main import create_app
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.errors import TransientError
from reference_app.tasks.handlers import HANDLERS, send_notification
from tests.conftest import make_settings, wait_for_status

E = EventType
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
MAX_ATTEMPTS = 3
COLUMNS = [c.name for c in Task.__table__.columns]


# The fold, on its own ----------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


SCHEDULED = RecordedEvent(
    E.TASK_SCHEDULED,
    1,
    {
        "kind": "import_contacts",
        "org_id": "org-a",
        "user_id": "alice",
        "params": {"file_id": "f1"},
        "request_id": "req-1",
        "webhook_url": "https://hooks.example.com/x",
        "idempotency_key": "key-1",
        "request_hash": "ab" * 32,
        "max_attempts": 3,
    },
    at(0),
)


def started(version: int, attempt: int, seconds: float) -> RecordedEvent:
    lease_expires_at = at(seconds + 30).isoformat()
    payload = {"attempt": attempt, "lease_owner": "w1", "lease_expires_at": lease_expires_at}
    return RecordedEvent(E.TASK_STARTED, version, payload, at(seconds))


def attempt_failed(version: int, seconds: float) -> RecordedEvent:
    payload = {"attempt": 1, "error_type": "TimeoutError", "error": "slow", "transient": True}
    return RecordedEvent(E.ATTEMPT_FAILED, version, payload, at(seconds))


def test_fold_of_nothing_is_an_empty_row() -> None:
    assert fold([]) == {}


def test_task_scheduled_sets_every_column_of_a_fresh_row() -> None:
    row = fold([SCHEDULED])

    assert row == {
        "status": "scheduled",
        "version": 1,
        "updated_at": at(0),
        "kind": "import_contacts",
        "org_id": "org-a",
        "user_id": "alice",
        "params": {"file_id": "f1"},
        "request_id": "req-1",
        "webhook_url": "https://hooks.example.com/x",
        "idempotency_key": "key-1",
        "request_hash": "ab" * 32,
        "max_attempts": 3,
        "attempts": 0,
        "result": None,
        "last_error": None,
        "created_at": at(0),
        "started_at": None,
        "finished_at": None,
        "run_after": at(0),
        "lease_owner": None,
        "lease_expires_at": None,
        "parent_id": None,
    }
    # With the id, that is every column of the table.
    assert set(row) | {"id"} == set(COLUMNS)


def test_task_scheduled_without_optional_fields_leaves_them_null() -> None:
    payload = {k: SCHEDULED.payload[k] for k in ("kind", "org_id", "user_id", "params")}
    event = RecordedEvent(E.TASK_SCHEDULED, 1, {**payload, "max_attempts": 5}, at(0))

    row = changes_for(event)

    assert [row[k] for k in ("request_id", "webhook_url", "idempotency_key", "request_hash")] == [
        None
    ] * 4
    assert row["max_attempts"] == 5


def test_task_started_takes_the_attempt_and_the_lease() -> None:
    changes = changes_for(started(2, 1, seconds=1))

    assert changes == {
        "status": "running",
        "version": 2,
        "updated_at": at(1),
        "attempts": 1,
        "started_at": at(1),
        "run_after": None,
        "lease_owner": "w1",
        "lease_expires_at": at(31),
    }
    assert changes["lease_expires_at"].tzinfo is not None


def test_attempt_failed_records_the_error_and_keeps_the_task_running() -> None:
    assert changes_for(attempt_failed(3, seconds=2)) == {
        "status": "running",
        "version": 3,
        "updated_at": at(2),
        "last_error": "TimeoutError: slow",
    }


def test_retry_scheduled_sets_when_to_run_and_drops_the_lease() -> None:
    event = RecordedEvent(E.RETRY_SCHEDULED, 4, {"attempt": 1, "due_at": at(7).isoformat()}, at(2))

    assert changes_for(event) == {
        "status": "retrying",
        "version": 4,
        "updated_at": at(2),
        "run_after": at(7),
        "lease_owner": None,
        "lease_expires_at": None,
    }


def test_a_retried_success_folds_into_its_final_row() -> None:
    events = [
        SCHEDULED,
        started(2, 1, seconds=1),
        attempt_failed(3, seconds=2),
        RecordedEvent(E.RETRY_SCHEDULED, 4, {"attempt": 1, "due_at": at(3).isoformat()}, at(2)),
        started(5, 2, seconds=3),
        RecordedEvent(E.TASK_SUCCEEDED, 6, {"attempt": 2, "result": {"rows": 25}}, at(4)),
    ]

    row = fold(events)

    assert row["status"] == "succeeded"
    assert (row["version"], row["attempts"]) == (6, 2)
    assert row["result"] == {"rows": 25}
    assert (row["started_at"], row["finished_at"], row["updated_at"]) == (at(3), at(4), at(4))
    assert (row["run_after"], row["lease_owner"], row["lease_expires_at"]) == (None, None, None)
    assert row["created_at"] == at(0)
    # A success clears the failed attempt's error; the log keeps it (attempt_failed).
    assert row["last_error"] is None


def test_task_succeeded_clears_last_error() -> None:
    event = RecordedEvent(E.TASK_SUCCEEDED, 4, {"attempt": 2, "result": {}}, at(3))

    assert changes_for(event)["last_error"] is None


def test_a_permanent_failure_folds_into_a_failed_row() -> None:
    failed = {"attempt": 1, "error_type": "PermanentError", "error": "no such file"}
    events = [
        SCHEDULED,
        started(2, 1, seconds=1),
        attempt_failed(3, seconds=2),
        RecordedEvent(E.TASK_FAILED, 4, failed, at(2)),
    ]

    row = fold(events)

    assert (row["status"], row["version"], row["attempts"]) == ("failed", 4, 1)
    assert row["last_error"] == "PermanentError: no such file"
    assert row["finished_at"] == at(2)
    assert row["result"] is None
    assert (row["lease_owner"], row["lease_expires_at"]) == (None, None)


def test_changes_for_depends_on_the_event_alone() -> None:
    event = started(2, 1, seconds=1)

    assert changes_for(event) == changes_for(event)
    assert fold([SCHEDULED, event]) == {**fold([SCHEDULED]), **changes_for(event)}


# The live projection against the log, after a realistic run ---------------------------


async def flaky_notification(ctx: TaskContext) -> dict[str, Any]:
    """The real handler, except that some messages meet a transient error."""
    message: str = ctx.params["message"]
    if message.startswith("flaky") and ctx.attempt == 1:
        raise TransientError("smtp server busy")
    if message.startswith("doomed"):
        raise TransientError("smtp server down")
    return await send_notification(ctx)


MIXED_HANDLERS: dict[str, Handler] = {**HANDLERS, "send_notification": flaky_notification}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, task_max_attempts=MAX_ATTEMPTS)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The real app, with a notification handler that can fail transiently."""
    app = create_app(settings, handlers=MIXED_HANDLERS)
    async with app.router.lifespan_context(app):
        yield app


async def run_realistic_mix(client: httpx.AsyncClient) -> dict[str, str]:
    """Successes, permanent and transient failures, retries, inline runs and a replayed key.

    Returns each accepted task's final status by task id. ``client`` must serve
    an app built with ``MIXED_HANDLERS``.
    """
    notify = "/send-notification"
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/import-contacts", {"file_id": "contacts-1"}, {}),
        ("/import-contacts", {"file_id": "contacts-2"}, {}),
        ("/import-contacts", {"file_id": "missing-1"}, {}),
        ("/import-contacts", {"file_id": "missing-2"}, {}),
        (notify, {"email": "a@example.com", "message": "hello"}, {}),
        (notify, {"email": "b@example.com", "message": "flaky once"}, {}),
        (notify, {"email": "c@example.com", "message": "flaky again"}, {}),
        (notify, {"email": "d@example.com", "message": "doomed"}, {}),
        ("/process-data", {"data": {"a": 1}, "io_ms": 0}, {}),
        ("/process-data?mode=inline", {"data": {"b": 2}, "io_ms": 0}, {}),
        (notify, {"email": "e@example.com", "message": "once"}, {"Idempotency-Key": "k-1"}),
        (notify, {"email": "e@example.com", "message": "once"}, {"Idempotency-Key": "k-1"}),
    ]
    async with asyncio.timeout(30):
        responses = await asyncio.gather(
            *(client.post(path, json=body, headers=headers) for path, body, headers in requests)
        )
    for response in responses:
        assert response.status_code in (200, 202), response.text
    task_ids = {response.json()["task_id"] for response in responses}
    assert len(task_ids) == len(requests) - 1, "the replayed key makes no second task"
    finals = [await wait_for_status(client, t, "succeeded", "failed") for t in sorted(task_ids)]
    by_id = {body["task_id"]: body["status"] for body in finals}
    return by_id | await _operator_actions(client, by_id)


async def _operator_actions(client: httpx.AsyncClient, finals: dict[str, str]) -> dict[str, str]:
    """Then what an operator does: cancel a delayed task and a running one, and re-drive a
    failed import (its file is still missing, so it fails again)."""
    delayed = await client.post("/process-data", json={"data": {"c": 1}, "delay_seconds": 3600})
    delayed_id = delayed.json()["task_id"]
    assert (await client.post(f"/tasks/{delayed_id}/cancel")).status_code == 200
    # Over ASGI the POST returns once its background task ends: send it, find it running.
    posting = asyncio.create_task(
        client.post("/process-data", json={"data": {"r": 1}, "io_ms": 5000})
    )
    async with asyncio.timeout(15):
        while True:
            running = (await client.get("/tasks?status=running")).json()["items"]
            if running:
                break
            await asyncio.sleep(0.02)
    running_id = running[0]["task_id"]
    assert (await client.post(f"/tasks/{running_id}/cancel")).status_code == 202
    await asyncio.wait_for(posting, 15)
    failed = [t for t, status in sorted(finals.items()) if status == "failed"]
    kinds = {t: (await client.get(f"/tasks/{t}")).json()["kind"] for t in failed}
    failed_import = next(t for t in failed if kinds[t] == "import_contacts")
    assert (await client.post(f"/tasks/{failed_import}/retry")).status_code == 202
    ids = [delayed_id, running_id, failed_import]
    ended = [await wait_for_status(client, t, "failed", "cancelled") for t in ids]
    return {body["task_id"]: body["status"] for body in ended}


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in OPERATIONAL_COLUMNS}


async def live_rows(sessions: SessionFactory) -> dict[uuid.UUID, dict[str, Any]]:
    async with session_scope(sessions) as session:
        tasks = await session.scalars(select(Task))
        return {t.id: {c: getattr(t, c) for c in COLUMNS} for t in tasks}


@pytest.fixture
async def finished_mix(client: httpx.AsyncClient) -> dict[str, str]:
    return await run_realistic_mix(client)


async def test_the_realistic_mix_reaches_every_kind_of_outcome(
    finished_mix: dict[str, str], sessions: SessionFactory
) -> None:
    rows = await live_rows(sessions)

    assert sorted(finished_mix.values()).count("failed") == 3
    assert sorted(finished_mix.values()).count("cancelled") == 2
    assert {(r["kind"], r["status"], r["attempts"]) for r in rows.values()} == {
        ("import_contacts", "succeeded", 1),
        ("import_contacts", "failed", 1),
        ("import_contacts", "failed", 2),  # re-driven, and failed again
        ("process_data", "cancelled", 0),  # while it waited
        ("process_data", "cancelled", 1),  # while it ran
        ("send_notification", "succeeded", 1),
        ("send_notification", "succeeded", 2),
        ("send_notification", "failed", MAX_ATTEMPTS),
        ("process_data", "succeeded", 1),
    }


async def test_the_fold_of_the_log_equals_the_live_projection(
    finished_mix: dict[str, str], sessions: SessionFactory
) -> None:
    live = await live_rows(sessions)
    async with session_scope(sessions) as session:
        computed = await compute_projection(session)

    assert set(computed) == set(live) == {uuid.UUID(t) for t in finished_mix}
    for task_id, row in live.items():
        assert set(computed[task_id]) == set(COLUMNS)
        assert comparable(computed[task_id]) == comparable(row), task_id


async def test_a_success_after_a_failed_attempt_shows_no_error_but_the_log_keeps_it(
    finished_mix: dict[str, str], client: httpx.AsyncClient
) -> None:
    succeeded = [t for t, status in finished_mix.items() if status == "succeeded"]
    views = [(await client.get(f"/tasks/{t}")).json() for t in succeeded]
    retried = [view for view in views if view["attempts"] == 2]
    assert len(retried) == 2  # "flaky once" and "flaky again"

    for view in retried:
        events = (await client.get(f"/tasks/{view['task_id']}/events")).json()
        failed = [e["payload"] for e in events if e["type"] == "attempt_failed"]
        assert view["last_error"] is None
        assert [(p["attempt"], p["error_type"], p["error"]) for p in failed] == [
            (1, "TransientError", "smtp server busy")
        ]


async def test_the_fold_matches_a_task_still_running_except_its_heartbeat(
    sessions: SessionFactory,
) -> None:
    task_id = uuid.uuid4()
    lease = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    async with session_scope(sessions) as session:
        await start_stream(session, task_id, NewEvent(E.TASK_SCHEDULED, dict(SCHEDULED.payload)))
        await append_events(
            session,
            task_id,
            expected_version=1,
            events=[
                NewEvent(
                    E.TASK_STARTED, {"attempt": 1, "lease_owner": "w1", "lease_expires_at": lease}
                )
            ],
        )
    renewed_until = datetime.now(UTC) + timedelta(minutes=5)
    async with session_scope(sessions) as session:
        assert await renew_lease(session, task_id, version=2, owner="w1", until=renewed_until)

    live = (await live_rows(sessions))[task_id]
    async with session_scope(sessions) as session:
        computed = (await compute_projection(session))[task_id]

    assert comparable(computed) == comparable(live)
    assert computed["lease_expires_at"] == datetime.fromisoformat(lease)
    assert live["lease_expires_at"] == renewed_until


async def test_a_rebuild_keeps_a_running_tasks_renewed_lease(sessions: SessionFactory) -> None:
    task_id = uuid.uuid4()
    lease = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    started_event = NewEvent(
        E.TASK_STARTED, {"attempt": 1, "lease_owner": "w1", "lease_expires_at": lease}
    )
    async with session_scope(sessions) as session:
        await start_stream(session, task_id, NewEvent(E.TASK_SCHEDULED, dict(SCHEDULED.payload)))
        await append_events(session, task_id, expected_version=1, events=[started_event])
    renewed_until = datetime.now(UTC) + timedelta(minutes=5)
    async with session_scope(sessions) as session:
        assert await renew_lease(session, task_id, version=2, owner="w1", until=renewed_until)
    before = await live_rows(sessions)

    async with session_scope(sessions) as session:
        assert await rebuild_projection(session) == 1

    assert await live_rows(sessions) == before


async def _delete_some(sessions: SessionFactory, victims: list[uuid.UUID]) -> None:
    async with session_scope(sessions) as session:
        await session.execute(delete(Task).where(Task.id.in_(victims)))


async def _tamper(sessions: SessionFactory, victims: list[uuid.UUID]) -> None:
    # Only to terminal states, so the running app's sweeper leaves the rows alone.
    async with session_scope(sessions) as session:
        await session.execute(
            update(Task)
            .where(Task.id.in_(victims))
            .values(status="succeeded", attempts=99, version=42, result={"forged": True})
        )


async def _delete_all(sessions: SessionFactory, victims: list[uuid.UUID]) -> None:
    async with session_scope(sessions) as session:
        await session.execute(delete(Task))


@pytest.mark.parametrize("damage", [_delete_all, _delete_some, _tamper])
async def test_rebuild_projection_restores_exactly_the_live_rows(
    finished_mix: dict[str, str], sessions: SessionFactory, damage: Any
) -> None:
    before = await live_rows(sessions)
    await damage(sessions, sorted(before)[::2])
    assert await live_rows(sessions) != before

    async with session_scope(sessions) as session:
        count = await rebuild_projection(session)

    assert count == len(before)
    assert await live_rows(sessions) == before


async def test_the_rebuild_projection_command_restores_the_live_rows(
    finished_mix: dict[str, str], sessions: SessionFactory, database_url: str
) -> None:
    before = await live_rows(sessions)
    await _delete_some(sessions, sorted(before)[1::2])
    await _tamper(sessions, sorted(before)[::2])

    command = [sys.executable, "-m", "reference_app", "--database-url", database_url]
    process = await asyncio.create_subprocess_exec(
        *command,
        "rebuild-projection",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "APP_LOG_FORMAT": "json"},
    )
    try:
        async with asyncio.timeout(45):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise

    assert process.returncode == 0, err.decode()
    assert (
        out.decode().strip() == f"rebuilt the projection of {len(before)} tasks from the event log"
    )
    assert await live_rows(sessions) == before
    # Retried successes among them: the rebuild, too, shows no error on a success.
    assert any(r["status"] == "succeeded" and r["attempts"] == 2 for r in before.values())
    assert {r["last_error"] for r in before.values() if r["status"] == "succeeded"} == {None}
