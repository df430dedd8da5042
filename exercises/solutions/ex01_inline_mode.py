"""Exercise 01, a reference solution: ``?mode=inline`` awaits the work and answers 200."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import BackgroundTasks, FastAPI, Request, Response

from lessons.lesson_01_background_tasks.step_03_status_url import (
    TASKS,
    ProcessDataIn,
    get_task,
    process_data,
)

app = FastAPI(title="Exercise 01: ?mode=inline")
app.get("/tasks/{task_id}", name="get_task")(get_task)  # lesson 01's status URL, unchanged


@app.post("/process-data", status_code=202)
async def accept_process_data(
    body: ProcessDataIn,
    background_tasks: BackgroundTasks,
    request: Request,
    response: Response,
    mode: Literal["background", "inline"] = "background",
) -> dict[str, Any]:
    task_id = str(uuid.uuid4())
    TASKS[task_id] = {"task_id": task_id, "status": "scheduled", "result": None}
    status_url = str(request.url_for("get_task", task_id=task_id))
    response.headers["Location"] = status_url
    if mode == "inline":
        await process_data(task_id=task_id, body=body)  # the client waits for the work
        response.status_code = 200  # done, not merely accepted
        return {**TASKS[task_id], "status_url": status_url}
    background_tasks.add_task(process_data, task_id=task_id, body=body)
    return {"task_id": task_id, "status": "scheduled", "status_url": status_url}
