"""Lesson 08, step 4: the load lab, every kind of background work side by side.

The target of the lesson 08 scenarios in ``locust -f benchmarks``. Each POST
/work/<kind> schedules one background task of ``work_ms`` (default 200) and
answers 202 ``{"accepted": true}``; GET /stats counts the work since start, and
GET /health (async) and GET /health-sync (def, needs a thread token) are the
probes. Two endpoints are ANTI-PATTERNS on purpose: /work/blocking-in-async and
/work/cpu-in-async freeze the event loop, and every request with it, while they run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, ParamSpec

from fastapi import BackgroundTasks, Depends, FastAPI, Query, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.tasks.work import burn_cpu

configure_logging(level=get_settings().log_level, fmt=get_settings().log_format)
log = get_logger(__name__)
P = ParamSpec("P")
Accepted = dict[str, bool]
ACCEPTED: Accepted = {"accepted": True}
WorkMs = Annotated[int, Query(ge=0, le=10_000, description="How long the task works, in ms.")]


class LabSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_LAB_")

    max_concurrent: int = Field(default=8, ge=1)


@dataclass
class Stats:
    """Counts since start. sync-io changes them from worker threads, hence the lock."""

    scheduled: int = 0
    running: int = 0
    finished: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def track(self, kind: str, work_ms: int) -> Iterator[None]:
        with self.lock:
            self.running += 1
        log.info("work_started", kind=kind, work_ms=work_ms)
        try:
            yield
        finally:
            with self.lock:
                self.running, self.finished = self.running - 1, self.finished + 1
            log.info("work_finished", kind=kind, work_ms=work_ms)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            counts = {"scheduled": self.scheduled, "running": self.running}
            return counts | {"finished": self.finished, "backlog": self.scheduled - self.finished}


@dataclass
class Lab:
    stats: Stats
    semaphore: asyncio.Semaphore
    cpu_pool: ProcessPoolExecutor

    def schedule(
        self, tasks: BackgroundTasks, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs
    ) -> Accepted:
        with self.stats.lock:
            self.stats.scheduled += 1
        tasks.add_task(func, *args, **kwargs)
        return ACCEPTED


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    spawn = multiprocessing.get_context("spawn")  # never fork a process that runs an event loop
    cpu_pool = ProcessPoolExecutor(get_settings().cpu_workers, mp_context=spawn)
    app.state.lab = Lab(Stats(), asyncio.Semaphore(LabSettings().max_concurrent), cpu_pool)
    yield
    cpu_pool.shutdown(wait=False, cancel_futures=True)


app = FastAPI(title="Lesson 08, step 4: the load lab", lifespan=lifespan)


async def get_lab(request: Request) -> Lab:  # async: a def dependency would take a thread token
    lab: Lab = request.app.state.lab
    return lab


LabDep = Annotated[Lab, Depends(get_lab)]


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/health-sync")
def health_sync() -> dict[str, str]:
    return {"status": "ok"}  # def: needs one of the threadpool's 40 tokens to answer


@app.get("/stats")
async def stats(lab: LabDep) -> dict[str, int]:
    return lab.stats.as_dict()


async def async_io(work_ms: int, stats: Stats) -> None:
    with stats.track("async-io", work_ms):
        await asyncio.sleep(work_ms / 1000)


def sync_io(work_ms: int, stats: Stats) -> None:
    with stats.track("sync-io", work_ms):
        time.sleep(work_ms / 1000)  # a def task: one of the threadpool's 40 tokens


async def blocking_in_async(work_ms: int, stats: Stats) -> None:
    """ANTI-PATTERN: a blocking call inside async def freezes the event loop."""
    with stats.track("blocking-in-async", work_ms):
        time.sleep(work_ms / 1000)  # noqa: ASYNC251 - the point of this endpoint


async def cpu_in_async(work_ms: int, stats: Stats) -> None:
    """ANTI-PATTERN: CPU work inside async def freezes the event loop just the same."""
    with stats.track("cpu-in-async", work_ms):
        burn_cpu(work_ms, b"lesson-08")


async def cpu_offloaded(work_ms: int, stats: Stats, pool: ProcessPoolExecutor) -> None:
    with stats.track("cpu-offloaded", work_ms):
        await asyncio.get_running_loop().run_in_executor(pool, burn_cpu, work_ms, b"lesson-08")


async def bounded(work_ms: int, stats: Stats, semaphore: asyncio.Semaphore) -> None:
    async with semaphore:  # waiting tasks queue here, in memory: bounded work, unbounded backlog
        with stats.track("bounded", work_ms):
            await asyncio.sleep(work_ms / 1000)


@app.post("/work/async-io", status_code=202)
async def work_async_io(tasks: BackgroundTasks, lab: LabDep, work_ms: WorkMs = 200) -> Accepted:
    return lab.schedule(tasks, async_io, work_ms, lab.stats)


@app.post("/work/sync-io", status_code=202)
async def work_sync_io(tasks: BackgroundTasks, lab: LabDep, work_ms: WorkMs = 200) -> Accepted:
    return lab.schedule(tasks, sync_io, work_ms, lab.stats)


@app.post("/work/blocking-in-async", status_code=202)
async def work_blocking_in_async(
    tasks: BackgroundTasks, lab: LabDep, work_ms: WorkMs = 200
) -> Accepted:
    return lab.schedule(tasks, blocking_in_async, work_ms, lab.stats)  # ANTI-PATTERN


@app.post("/work/cpu-in-async", status_code=202)
async def work_cpu_in_async(tasks: BackgroundTasks, lab: LabDep, work_ms: WorkMs = 200) -> Accepted:
    return lab.schedule(tasks, cpu_in_async, work_ms, lab.stats)  # ANTI-PATTERN


@app.post("/work/cpu-offloaded", status_code=202)
async def work_cpu_offloaded(
    tasks: BackgroundTasks, lab: LabDep, work_ms: WorkMs = 200
) -> Accepted:
    return lab.schedule(tasks, cpu_offloaded, work_ms, lab.stats, lab.cpu_pool)


@app.post("/work/bounded", status_code=202)
async def work_bounded(tasks: BackgroundTasks, lab: LabDep, work_ms: WorkMs = 200) -> Accepted:
    return lab.schedule(tasks, bounded, work_ms, lab.stats, lab.semaphore)
