"""Lesson 08, step 1: where a background task runs decides what it blocks.

The same work, scheduled five ways. ``async def`` tasks run on the event loop
that serves every request; ``def`` tasks run in the threadpool. Two endpoints
are ANTI-PATTERNS, kept so you can watch them freeze the server: a blocking
``time.sleep`` and a CPU loop inside ``async def``. While either runs, not even
GET /health is answered.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

from fastapi import BackgroundTasks, FastAPI, Query, Request

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.tasks.work import burn_cpu

configure_logging(level=get_settings().log_level, fmt=get_settings().log_format)
log = get_logger(__name__)
ACCEPTED = {"accepted": True}
WorkMs = Annotated[int, Query(ge=0, le=10_000, description="How long the task works, in ms.")]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # spawn, not fork: forking a process that runs an event loop is unsafe.
    spawn = multiprocessing.get_context("spawn")
    app.state.cpu_pool = ProcessPoolExecutor(get_settings().cpu_workers, mp_context=spawn)
    yield
    app.state.cpu_pool.shutdown(wait=False, cancel_futures=True)


app = FastAPI(title="Lesson 08, step 1: the event loop", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@contextmanager
def logged(kind: str, work_ms: int) -> Iterator[None]:
    log.info("work_started", kind=kind, work_ms=work_ms)
    yield
    log.info("work_finished", kind=kind, work_ms=work_ms)


async def async_io(work_ms: int) -> None:
    with logged("async-io", work_ms):
        await asyncio.sleep(work_ms / 1000)  # awaiting hands the loop to other requests


def sync_io(work_ms: int) -> None:
    with logged("sync-io", work_ms):
        time.sleep(work_ms / 1000)  # a def task: Starlette runs it in the threadpool


async def blocking_in_async(work_ms: int) -> None:
    """ANTI-PATTERN: a blocking call inside async def holds the event loop."""
    with logged("blocking-in-async", work_ms):
        time.sleep(work_ms / 1000)  # noqa: ASYNC251 - the point of this endpoint


async def cpu_in_async(work_ms: int) -> None:
    """ANTI-PATTERN: CPU work inside async def holds the event loop just the same."""
    with logged("cpu-in-async", work_ms):
        burn_cpu(work_ms, b"lesson-08")


async def cpu_offloaded(work_ms: int, pool: ProcessPoolExecutor) -> None:
    with logged("cpu-offloaded", work_ms):
        # Another process, so another GIL: the loop only awaits the result.
        await asyncio.get_running_loop().run_in_executor(pool, burn_cpu, work_ms, b"lesson-08")


@app.post("/work/async-io", status_code=202)
async def work_async_io(tasks: BackgroundTasks, work_ms: WorkMs = 200) -> dict[str, bool]:
    tasks.add_task(async_io, work_ms)
    return ACCEPTED


@app.post("/work/sync-io", status_code=202)
async def work_sync_io(tasks: BackgroundTasks, work_ms: WorkMs = 200) -> dict[str, bool]:
    tasks.add_task(sync_io, work_ms)
    return ACCEPTED


@app.post("/work/blocking-in-async", status_code=202)
async def work_blocking_in_async(tasks: BackgroundTasks, work_ms: WorkMs = 200) -> dict[str, bool]:
    tasks.add_task(blocking_in_async, work_ms)  # ANTI-PATTERN
    return ACCEPTED


@app.post("/work/cpu-in-async", status_code=202)
async def work_cpu_in_async(tasks: BackgroundTasks, work_ms: WorkMs = 200) -> dict[str, bool]:
    tasks.add_task(cpu_in_async, work_ms)  # ANTI-PATTERN
    return ACCEPTED


@app.post("/work/cpu-offloaded", status_code=202)
async def work_cpu_offloaded(
    request: Request, tasks: BackgroundTasks, work_ms: WorkMs = 200
) -> dict[str, bool]:
    tasks.add_task(cpu_offloaded, work_ms, request.app.state.cpu_pool)
    return ACCEPTED
