"""Lesson 07, step 3: idempotency keys, so a client can retry a POST without doubling the work.

A client whose request timed out cannot tell whether the task was accepted. With
an ``Idempotency-Key`` it sends the request again: the same key and body return the
task the first request made, and nothing runs twice; the same key with another
body is a 409. ``UNIQUE(org_id, idempotency_key)`` settles two concurrent first tries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from reference_app.api.deps import CurrentUser, IdempotencyKey
from reference_app.api.schemas import EventView, TaskView
from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.migrate import upgrade_database
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent, append_events, start_stream

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.api_keys)
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.settings = get_settings()  # CurrentUser reads the API keys from here
    engine = create_engine(app.state.settings.database_url)
    await upgrade_database(engine)  # the tables, and the triggers that keep the log append-only
    app.state.sessions = create_session_factory(engine)
    yield
    await engine.dispose()


app = FastAPI(title="Lesson 07, step 3: idempotency keys", lifespan=lifespan)


class WorkIn(BaseModel):
    data: dict[str, Any] = Field(min_length=1)
    io_ms: int = Field(default=300, ge=0, le=5000)


async def append(task_id: uuid.UUID, version: int, event_type: EventType, **payload: Any) -> int:
    """Append after ``version``: the projection row moves with the event, or nothing is written."""
    async with session_scope(app.state.sessions) as session:
        events = [NewEvent(event_type, payload)]
        version = await append_events(session, task_id, expected_version=version, events=events)
    log.info(event_type, task_id=str(task_id), version=version)
    return version


async def process_data(task_id: uuid.UUID) -> None:
    async with session_scope(app.state.sessions) as session:
        task = await session.get_one(Task, task_id)
    # A lease that nothing renews or checks yet: if this process dies now, the task
    # stays "running" for good. Step 4 adds the owner's heartbeat and the sweeper.
    until = (utcnow() + timedelta(seconds=get_settings().lease_seconds)).isoformat()
    lease = {"lease_owner": "lesson-07-step-02", "lease_expires_at": until}
    version = await append(task_id, task.version, EventType.TASK_STARTED, attempt=1, **lease)
    await asyncio.sleep(task.params["io_ms"] / 1000)
    result = {"keys": len(task.params["data"])}
    await append(task_id, version, EventType.TASK_SUCCEEDED, attempt=1, result=result)


def accepted(request: Request, task_id: uuid.UUID, status: str) -> dict[str, str]:
    status_url = str(request.url_for("get_task", task_id=str(task_id)))
    return {"task_id": str(task_id), "status": status, "status_url": status_url}


async def task_for_key(org_id: str, key: str, fingerprint: str) -> Task | None:
    """The task this key already made, if any; 409 if it was made for another body."""
    async with session_scope(app.state.sessions) as session:
        task = await session.scalar(select(Task).filter_by(org_id=org_id, idempotency_key=key))
    if task is not None and task.request_hash != fingerprint:
        raise HTTPException(409, "This Idempotency-Key was already used with another body.")
    return task


@app.post("/process-data", status_code=202)
async def submit(
    body: WorkIn,
    request: Request,
    tasks: BackgroundTasks,
    user: CurrentUser,
    key: IdempotencyKey = None,
) -> dict[str, str]:
    fingerprint = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
    if key and (task := await task_for_key(user.org_id, key, fingerprint)):
        return accepted(request, task.id, task.status)  # a replay: nothing new is scheduled
    task_id = uuid.uuid4()
    scheduled = {"kind": "process_data", "params": body.model_dump(), "max_attempts": 1}
    scheduled |= {"org_id": user.org_id, "user_id": user.user_id}
    scheduled |= {"idempotency_key": key, "request_hash": fingerprint if key else None}
    try:
        async with session_scope(app.state.sessions) as session:
            await start_stream(session, task_id, NewEvent(EventType.TASK_SCHEDULED, scheduled))
    except IntegrityError:
        # A concurrent request with the same key committed between our look-up and insert.
        if not key or not (task := await task_for_key(user.org_id, key, fingerprint)):
            raise
        return accepted(request, task.id, task.status)
    log.info("task_scheduled", task_id=str(task_id), version=1, idempotency_key=key)
    tasks.add_task(process_data, task_id)
    return accepted(request, task_id, "scheduled")


async def owned_task(task_id: uuid.UUID, org_id: str) -> Task:
    async with session_scope(app.state.sessions) as session:
        task = await session.get(Task, task_id)
    if task is None or task.org_id != org_id:  # another org's task gets the same 404
        raise HTTPException(status_code=404, detail="No such task for this API key's organisation.")
    return task


@app.get("/tasks/{task_id}", name="get_task")
async def get_task(task_id: uuid.UUID, user: CurrentUser) -> TaskView:
    return TaskView.model_validate(await owned_task(task_id, user.org_id))


@app.get("/tasks/{task_id}/events")
async def get_task_events(task_id: uuid.UUID, user: CurrentUser) -> list[EventView]:
    await owned_task(task_id, user.org_id)
    async with session_scope(app.state.sessions) as session:
        query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.version)
        return [EventView.model_validate(event) for event in await session.scalars(query)]
