"""Exercise 08: move blocking and CPU-bound task work off the event loop, and prove it.

Two background tasks do their work inside ``async def`` on the event loop: a report rendered by
a blocking library call, and a checksum computed in pure Python. While either runs, the server
answers nothing, not even ``GET /health`` (lesson 08, step 1). Offload each one to the right
place, so that ``/health`` answers while the work is still running.

Serve it: APP_LOG_FORMAT=json .venv/bin/uvicorn exercises.ex08_offload.exercise:app --port 8000
Check it: make check EX=08
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from typing import Annotated

from fastapi import BackgroundTasks, FastAPI, Query, Request

from lessons.lesson_08_under_load.step_01_event_loop import health, lifespan, logged
from reference_app.tasks.work import burn_cpu

WorkMs = Annotated[int, Query(ge=0, le=10_000, description="How long the task works, in ms.")]
ACCEPTED = {"accepted": True}

# Lesson 08's lifespan puts a spawn ProcessPoolExecutor in app.state.cpu_pool.
app = FastAPI(title="Exercise 08: offload the work", lifespan=lifespan)
app.get("/health")(health)


def render_report(work_ms: int) -> str:
    """A blocking PDF library: it sleeps on I/O without ever yielding to the event loop."""
    time.sleep(work_ms / 1000)
    return "report.pdf"


async def build_report(work_ms: int) -> None:
    with logged("report", work_ms):
        # TODO: a blocking call inside async def holds the event loop. Run it in a thread.
        render_report(work_ms)


async def checksum(work_ms: int, pool: ProcessPoolExecutor) -> None:
    with logged("checksum", work_ms):
        # TODO: pure-Python CPU work holds the GIL, in a thread too. Run it in the process pool.
        burn_cpu(work_ms, b"exercise-08")


@app.post("/work/report", status_code=202)
async def work_report(tasks: BackgroundTasks, work_ms: WorkMs = 200) -> dict[str, bool]:
    tasks.add_task(build_report, work_ms)
    return ACCEPTED


@app.post("/work/checksum", status_code=202)
async def work_checksum(
    request: Request, tasks: BackgroundTasks, work_ms: WorkMs = 200
) -> dict[str, bool]:
    tasks.add_task(checksum, work_ms, request.app.state.cpu_pool)
    return ACCEPTED
