"""Step 3: a status URL. The 202 says where to look (``Location``, ``status_url``) and GET answers.

Run: .venv/bin/uvicorn lessons.lesson_01_background_tasks.step_03_status_url:app --port 8000
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)

app = FastAPI(title="Lesson 01, step 3: a status URL")

# In this process's memory only: a restart forgets every task (lesson 07 keeps them in the DB).
TASKS: dict[str, dict[str, Any]] = {}


class ProcessDataIn(BaseModel):
    data: dict[str, Any] = Field(min_length=1)
    io_ms: int = Field(default=300, ge=0, le=5000, description="Simulated I/O time, in ms.")


async def process_data(task_id: str, body: ProcessDataIn) -> None:
    """The same work, now run by Starlette after the response has been sent."""
    TASKS[task_id]["status"] = "running"
    log.info("work_started", task_id=task_id, io_ms=body.io_ms)
    await asyncio.sleep(body.io_ms / 1000)
    result = {"keys": len(body.data), "finished_at": utcnow().isoformat()}
    TASKS[task_id].update(status="succeeded", result=result)
    log.info("work_finished", task_id=task_id)


@app.post("/process-data", status_code=202)
async def accept_process_data(
    body: ProcessDataIn, background_tasks: BackgroundTasks, request: Request, response: Response
) -> dict[str, Any]:
    """Record the task, queue the work, answer at once: 202 means accepted, not done."""
    task_id = str(uuid.uuid4())
    TASKS[task_id] = {"task_id": task_id, "status": "scheduled", "result": None}
    background_tasks.add_task(process_data, task_id=task_id, body=body)
    log.info("task_scheduled", task_id=task_id)
    status_url = str(request.url_for("get_task", task_id=task_id))
    response.headers["Location"] = status_url
    return {"task_id": task_id, "status": "scheduled", "status_url": status_url}


@app.get("/tasks/{task_id}", name="get_task")
async def get_task(task_id: str) -> dict[str, Any]:
    """Where the client polls: the task's status, and its result once it has one."""
    if task_id not in TASKS:
        raise HTTPException(status_code=404, detail="No such task (or the server restarted).")
    return TASKS[task_id]
