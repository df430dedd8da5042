"""Step 1: the work runs inside the request, so the client waits for all of it.

Run: .venv/bin/uvicorn lessons.lesson_01_background_tasks.step_01_inline:app --port 8000
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)

app = FastAPI(title="Lesson 01, step 1: inline work")


class ProcessDataIn(BaseModel):
    data: dict[str, Any] = Field(min_length=1)
    io_ms: int = Field(default=300, ge=0, le=5000, description="Simulated I/O time, in ms.")


async def process_data(task_id: str, body: ProcessDataIn) -> dict[str, Any]:
    """The slow unit of work: awaited I/O, such as a report query or an upstream API call."""
    log.info("work_started", task_id=task_id, io_ms=body.io_ms)
    await asyncio.sleep(body.io_ms / 1000)
    log.info("work_finished", task_id=task_id)
    return {"keys": len(body.data), "finished_at": utcnow().isoformat()}


@app.post("/process-data")
async def process_data_inline(body: ProcessDataIn) -> dict[str, Any]:
    """Do the work, then answer: the response waits for every millisecond of it."""
    task_id = str(uuid.uuid4())
    result = await process_data(task_id, body)
    return {"task_id": task_id, "status": "succeeded", "result": result}
