"""Lesson 08, step 3: a fast 202 is not finished work; count it, and bound it.

A 202 returns as soon as the task is queued, whatever the work behind it. GET
/stats counts tasks scheduled, running and finished since start; ``backlog`` is
scheduled minus finished: accepted work not done yet. A semaphore of
``APP_LAB_MAX_CONCURRENT`` (default 8) bounds how much work runs at once. It does
not bound the backlog: the tasks waiting for it wait in this process's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, FastAPI, Query, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

configure_logging(level=get_settings().log_level, fmt=get_settings().log_format)
log = get_logger(__name__)
ACCEPTED = {"accepted": True}
WorkMs = Annotated[int, Query(ge=0, le=10_000, description="How long the task works, in ms.")]


class LabSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_LAB_")

    max_concurrent: int = Field(default=8, ge=1)


@dataclass
class Stats:
    """Counts since start; every change happens on the event loop, so no lock is needed."""

    scheduled: int = 0
    running: int = 0
    finished: int = 0

    @contextmanager
    def track(self, kind: str, work_ms: int) -> Iterator[None]:
        self.running += 1
        log.info("work_started", kind=kind, work_ms=work_ms)
        try:
            yield
        finally:
            self.running, self.finished = self.running - 1, self.finished + 1
            log.info("work_finished", kind=kind, work_ms=work_ms)

    def as_dict(self) -> dict[str, int]:
        counts = {"scheduled": self.scheduled, "running": self.running, "finished": self.finished}
        return counts | {"backlog": self.scheduled - self.finished}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.stats = Stats()
    app.state.semaphore = asyncio.Semaphore(LabSettings().max_concurrent)
    yield


app = FastAPI(title="Lesson 08, step 3: backlog and bounded concurrency", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stats")
async def stats(request: Request) -> dict[str, int]:
    counts: Stats = request.app.state.stats
    return counts.as_dict()


async def async_io(work_ms: int, stats: Stats) -> None:
    with stats.track("async-io", work_ms):
        await asyncio.sleep(work_ms / 1000)


async def bounded(work_ms: int, stats: Stats, semaphore: asyncio.Semaphore) -> None:
    async with semaphore:  # the tasks over the limit wait here, each one held in memory
        with stats.track("bounded", work_ms):
            await asyncio.sleep(work_ms / 1000)


@app.post("/work/async-io", status_code=202)
async def work_async_io(
    request: Request, tasks: BackgroundTasks, work_ms: WorkMs = 200
) -> dict[str, bool]:
    request.app.state.stats.scheduled += 1
    tasks.add_task(async_io, work_ms, request.app.state.stats)
    return ACCEPTED


@app.post("/work/bounded", status_code=202)
async def work_bounded(
    request: Request, tasks: BackgroundTasks, work_ms: WorkMs = 200
) -> dict[str, bool]:
    request.app.state.stats.scheduled += 1
    tasks.add_task(bounded, work_ms, request.app.state.stats, request.app.state.semaphore)
    return ACCEPTED
