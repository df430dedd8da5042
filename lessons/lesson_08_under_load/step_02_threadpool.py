"""Lesson 08, step 2: the threadpool has 40 tokens, and def endpoints need them too.

Starlette runs ``def`` background tasks and ``def`` endpoints through anyio's
default CapacityLimiter: 40 tokens per process. Forty sleeping ``def`` tasks
hold every token, and a ``def`` endpoint then waits for one, although the event
loop is free (``async def`` /health still answers). The fix gives blocking
background work a limiter of its own, so it cannot starve the endpoints.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import BackgroundTasks, FastAPI, Query, Request

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

configure_logging(level=get_settings().log_level, fmt=get_settings().log_format)
log = get_logger(__name__)
ACCEPTED = {"accepted": True}
WorkMs = Annotated[int, Query(ge=0, le=10_000, description="How long the task works, in ms.")]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Threads for blocking background work only: endpoints keep the default 40 tokens.
    app.state.work_limiter = anyio.CapacityLimiter(40)
    yield


app = FastAPI(title="Lesson 08, step 2: the threadpool's 40 tokens", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}  # async def: answered on the loop, no token needed


@app.get("/health-sync")
def health_sync() -> dict[str, str]:
    return {"status": "ok"}  # def: runs in the threadpool, so it needs a token first


@app.get("/threadpool")
async def threadpool() -> dict[str, float]:
    limiter = anyio.to_thread.current_default_thread_limiter()
    return {"total_tokens": limiter.total_tokens, "borrowed_tokens": limiter.borrowed_tokens}


@contextmanager
def logged(kind: str, work_ms: int) -> Iterator[None]:
    log.info("work_started", kind=kind, work_ms=work_ms)
    yield
    log.info("work_finished", kind=kind, work_ms=work_ms)


def sync_io(work_ms: int) -> None:
    with logged("sync-io", work_ms):
        time.sleep(work_ms / 1000)  # holds one of the 40 default tokens while it sleeps


async def sync_io_own_limiter(work_ms: int, limiter: anyio.CapacityLimiter) -> None:
    with logged("sync-io-own-limiter", work_ms):
        await anyio.to_thread.run_sync(time.sleep, work_ms / 1000, limiter=limiter)


@app.post("/work/sync-io", status_code=202)
async def work_sync_io(tasks: BackgroundTasks, work_ms: WorkMs = 200) -> dict[str, bool]:
    tasks.add_task(sync_io, work_ms)  # under load, starves every def endpoint
    return ACCEPTED


@app.post("/work/sync-io-own-limiter", status_code=202)
async def work_sync_io_own_limiter(
    request: Request, tasks: BackgroundTasks, work_ms: WorkMs = 200
) -> dict[str, bool]:
    tasks.add_task(sync_io_own_limiter, work_ms, request.app.state.work_limiter)
    return ACCEPTED
