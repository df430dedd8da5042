"""One INSERT and its COMMIT at a fixed rate, with nothing else: what the durable 202 must wait for.

The p95 target compares the durable 202 with the floor's, and the floor does no I/O
at all (its p95 is a couple of milliseconds). This puts the database's own part
beside them: a small row inserted and committed on the engine the app uses
(``reference_app.db.engine.create_engine``: WAL and ``synchronous=NORMAL`` on SQLite,
the same pool on PostgreSQL), one at a time at the accept run's rate, timed from each
intended send so a slow commit cannot hide the ones queued behind it. No HTTP, no
FastAPI, no group commit and no task: if this alone is over 1.5x the floor's p95, the
target cannot be met by any request path that commits before its 202.

It writes to a table of its own in the app's database (same file, same server) and
drops it after.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import text

from benchmarks._loadgen import percentile
from reference_app.db.engine import create_engine

__all__ = ["commit_alone"]

_TABLE = "bench_commit_alone"
_ROW = "x" * 200
"""About the size of a ``task_scheduled`` event's payload."""


async def _measure(url: str, *, rate: float, count: int) -> list[int]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE IF EXISTS {_TABLE}"))
            await connection.execute(
                text(f"CREATE TABLE {_TABLE} (id VARCHAR(36) PRIMARY KEY, body TEXT NOT NULL)")
            )
        insert = text(f"INSERT INTO {_TABLE} (id, body) VALUES (:id, :body)")  # noqa: S608
        latencies: list[int] = []
        async with engine.connect() as connection:
            start = time.perf_counter_ns()
            for i in range(count):
                intended = start + int(i * 1e9 / rate)
                wait = (intended - time.perf_counter_ns()) / 1e9
                if wait > 0:
                    await asyncio.sleep(wait)
                await connection.execute(insert, {"id": str(uuid.uuid4()), "body": _ROW})
                await connection.commit()
                latencies.append(time.perf_counter_ns() - intended)
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE {_TABLE}"))
        return latencies
    finally:
        await engine.dispose()


def commit_alone(url: str, *, rate: float, seconds: float) -> dict[str, Any]:
    """p50/p95/p99 (ms) of one INSERT + COMMIT at ``rate`` per second for ``seconds``."""
    count = max(20, int(rate * seconds))
    latencies = sorted(asyncio.run(_measure(url, rate=rate, count=count)))
    return {
        "commit_alone_rate": rate,
        "commit_alone_count": count,
        **{f"commit_alone_p{q}_ms": round(percentile(latencies, q) / 1e6, 2) for q in (50, 95, 99)},
    }
