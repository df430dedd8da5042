"""Exercise 01: one endpoint, two behaviours. ``?mode=inline`` runs the work before answering.

Lesson 01, step 3 answers ``POST /process-data`` with 202 and runs the work afterwards. Some
clients (a script, a test) want the result in the response instead. Make ``mode=inline`` run the
work inside the request and answer 200 with the finished task; keep ``mode=background`` (the
default) exactly as it is.

Check it: make check EX=01
"""

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
    # TODO: when mode == "inline", await the work here and answer 200 with the finished task
    #       (its status and result). Leave the background path below as it is.
    background_tasks.add_task(process_data, task_id=task_id, body=body)
    status_url = str(request.url_for("get_task", task_id=task_id))
    response.headers["Location"] = status_url
    return {"task_id": task_id, "status": "scheduled", "status_url": status_url}
