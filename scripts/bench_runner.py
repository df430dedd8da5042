"""What the durable work behind one task costs, without HTTP: CPU per accept and per run.

    .venv/bin/python scripts/bench_runner.py [--tasks N] [--concurrency C] [--database-url URL]

In one process, on one event loop (uvloop when installed), with the reference
app's lifespan (engine, group-committing task store, worker; the sweeper stopped):

  accept  ``TaskStore.accept`` for N tasks, 50 at a time: what the 202 commits;
  run     ``Worker.submit`` for the same N tasks (``process_data``, io_ms=0 and
          cpu_ms=0), C at a time, what a route hands to ``BackgroundTasks``: the
          slot, the claim, the body and the outcome.

It prints tasks per second of wall time and microseconds of process CPU per task
(``time.process_time``: every thread, aiosqlite's included). bench_accept.py
measures the same work behind a real uvicorn; this one leaves FastAPI out, to
show what the database side costs on its own. The default database is a fresh
SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

ACCEPT_GROUP = 50


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    tasks: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.tasks / self.wall_seconds

    @property
    def cpu_us_per_task(self) -> float:
        return self.cpu_seconds / self.tasks * 1e6


async def _timed(name: str, tasks: int, work: Callable[[], Awaitable[None]]) -> Phase:
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    return Phase(name, tasks, time.perf_counter() - wall, time.process_time() - cpu)


async def measure(database_url: str, tasks: int, concurrency: int) -> list[Phase]:
    from sqlalchemy import func, select

    from reference_app.core.config import Settings
    from reference_app.db.engine import session_scope
    from reference_app.db.models import Task
    from reference_app.main import create_app
    from reference_app.store import Submission, TaskStore
    from reference_app.tasks.worker import Worker

    settings = Settings(
        database_url=database_url,
        log_level="WARNING",
        log_format="json",
        max_concurrent_tasks=concurrency,
    )
    app = create_app(settings)
    ids: list[uuid.UUID] = []
    async with app.router.lifespan_context(app):
        # This script hands every task to the worker itself: no sweep may take one, or hold
        # the free slots while it looks for due work.
        await app.state.sweeper.stop()
        store: TaskStore = app.state.store
        worker: Worker = app.state.worker

        def submission(n: int) -> Submission:
            params = {"data": {"n": n}, "io_ms": 0, "cpu_ms": 0}
            return Submission(org_id="org-a", user_id="bench", kind="process_data", params=params)

        async def accept() -> None:
            for start in range(0, tasks, ACCEPT_GROUP):
                group = range(start, min(start + ACCEPT_GROUP, tasks))
                accepted = await asyncio.gather(*(store.accept(submission(n)) for n in group))
                ids.extend(a.task_id for a in accepted)

        slots = asyncio.Semaphore(concurrency)

        async def run_one(task_id: uuid.UUID) -> None:
            async with slots:
                # submit() takes the slot before its first await; without one it would
                # leave the task to the (stopped) sweeper and the run would prove nothing.
                if worker.free_slots < 1:
                    raise RuntimeError("no free slot: something else is running tasks")
                await worker.submit(task_id=task_id, kind="process_data")

        async def run() -> None:
            await asyncio.gather(*(run_one(task_id) for task_id in ids))

        phases = [await _timed("accept", tasks, accept), await _timed("run", tasks, run)]
        async with session_scope(app.state.sessions) as session:
            rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
            statuses = {status: count for status, count in rows.all()}
    if statuses != {"succeeded": tasks}:
        raise RuntimeError(f"not every task succeeded, so the figures mean nothing: {statuses}")
    return phases


def _run(work: Coroutine[None, None, list[Phase]]) -> list[Phase]:
    """On uvloop, as uvicorn runs the app, when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000, help="N, tasks to accept and run")
    parser.add_argument("--concurrency", type=int, default=32, help="C, runs at once")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.concurrency < 1:
        parser.error("--tasks and --concurrency must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'app.db'}"
        phases = _run(measure(url, args.tasks, args.concurrency))
    print(f"{url.split(':', 1)[0]}: {args.tasks} tasks, {args.concurrency} runs at once")
    for phase in phases:
        print(
            f"  {phase.name:<7}{phase.per_second:>9.0f} tasks/s (wall)"
            f"{phase.cpu_us_per_task:>9.0f} us CPU per task"
        )
    print(f"  load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
