"""Exercise 08, a reference solution: blocking work in a thread, CPU work in a process."""

from __future__ import annotations

import asyncio
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
        # A worker thread sleeps instead of the loop (Starlette's def tasks would do the same).
        await asyncio.to_thread(render_report, work_ms)


async def checksum(work_ms: int, pool: ProcessPoolExecutor) -> None:
    with logged("checksum", work_ms):
        # Another process, so another GIL: the loop only awaits the result.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, burn_cpu, work_ms, b"exercise-08")


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
