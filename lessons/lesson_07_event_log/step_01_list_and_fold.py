"""Lesson 07, step 1: a task's status is a fold over its events.

The log is a list that only grows. Nothing stores "the status": GET /tasks/{id}
replays the task's events in order. The list lives in memory, so a restart
forgets every task and every status URL a client holds; step 2 moves it into
the database.

    .venv/bin/uvicorn lessons.lesson_07_event_log.step_01_list_and_fold:app --port 8000
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

configure_logging(level=get_settings().log_level, fmt=get_settings().log_format)
log = get_logger(__name__)
app = FastAPI(title="Lesson 07, step 1: an append-only list and a fold")

LOG: list[dict[str, Any]] = []  # appended to, never changed: every other fact derives from it
STATUS_AFTER = {
    "task_scheduled": "scheduled",
    "task_started": "running",
    "task_succeeded": "succeeded",
}


class WorkIn(BaseModel):
    data: dict[str, Any] = Field(min_length=1)
    io_ms: int = Field(default=300, ge=0, le=5000)


def events_of(task_id: str) -> list[dict[str, Any]]:
    return [event for event in LOG if event["task_id"] == task_id]


def append(task_id: str, event_type: str, **payload: Any) -> None:
    version = len(events_of(task_id)) + 1
    at = utcnow().isoformat()
    LOG.append(
        {"task_id": task_id, "version": version, "type": event_type, "payload": payload, "at": at}
    )
    log.info(event_type, task_id=task_id, version=version)


def fold(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's state: start from nothing and apply each event in order."""
    state: dict[str, Any] = {}
    for event in events:
        state.update(status=STATUS_AFTER[event["type"]], version=event["version"])
        if event["type"] == "task_scheduled":
            state.update(task_id=event["task_id"], created_at=event["at"], result=None)
        elif event["type"] == "task_succeeded":
            state.update(result=event["payload"]["result"], finished_at=event["at"])
    return state


async def process_data(task_id: str) -> None:
    """Only the id crosses into the task: its inputs are in the log."""
    params = events_of(task_id)[0]["payload"]["params"]
    append(task_id, "task_started", attempt=1)
    await asyncio.sleep(params["io_ms"] / 1000)
    append(task_id, "task_succeeded", attempt=1, result={"keys": len(params["data"])})


@app.post("/process-data", status_code=202)
async def submit(body: WorkIn, request: Request, tasks: BackgroundTasks) -> dict[str, str]:
    task_id = str(uuid.uuid4())
    append(task_id, "task_scheduled", kind="process_data", params=body.model_dump())
    tasks.add_task(process_data, task_id)
    status_url = str(request.url_for("get_task", task_id=task_id))
    return {"task_id": task_id, "status": "scheduled", "status_url": status_url}


@app.get("/tasks/{task_id}", name="get_task")
async def get_task(task_id: str) -> dict[str, Any]:
    events = events_of(task_id)
    if not events:
        raise HTTPException(status_code=404, detail="No such task.")
    return fold(events)


@app.get("/tasks/{task_id}/events")
async def get_task_events(task_id: str) -> list[dict[str, Any]]:
    return events_of(task_id)
