"""``make bench-listing``: what ``GET /tasks`` costs at 100k and 1M tasks, on each database.

For each database (SQLite; PostgreSQL too with ``BENCH_DATABASE_URL``) and each size in
``BENCH_LISTING_ROWS``: a fresh database, migrated and seeded (``_listing_seed``), the
reference app on it under uvicorn, then each case below ``BENCH_LISTING_REQUESTS`` times,
one request at a time (a latency, not a throughput), after a short warm-up. Beside each
case: the store's own time for the same page in this process (no HTTP, no JSON), and the
query plan (PostgreSQL: ``EXPLAIN ANALYZE`` with the default planner settings).

Prints the table and writes ``results/local/listing/<timestamp>/report.{json,md}``.
Informational: it gates nothing, and ``make bench`` and ``make test`` do not run it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from benchmarks._apps import API_KEY, REFERENCE_APP, ROOT, UVICORN_ARGS, _app_env
from benchmarks._listing_report import HEADER, CaseResult, line, write_report
from benchmarks._listing_seed import ORG, Seeded, fresh_database, seed_tasks
from reference_app.db.engine import (
    create_engine,
    create_read_engine,
    create_session_factory,
    session_scope,
)
from reference_app.db.explain import query_plan
from reference_app.store import Position, TaskFilters, TaskStore
from reference_app.store.listing import page_query
from reference_app.testing import start_server

__all__ = [
    "Case",
    "CaseResult",
    "ListingSettings",
    "cases_for",
    "main",
    "measure_http",
    "measure_store",
    "run",
]

DEFAULT_ROWS = (100_000, 1_000_000)
DEFAULT_REQUESTS = 200
WARM_UP = 20
STORE_CALLS = 50


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    params: dict[str, str]
    """The query string of ``GET /tasks``."""
    filters: TaskFilters
    limit: int = 50
    after: Position | None = None


def _query_value(value: object) -> str:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else str(value)


def cases_for(seeded: Seeded) -> list[Case]:
    """The pages a user of the list asks for, placed in the seeded month."""
    middle = seeded.first + (seeded.last - seeded.first) / 2
    deep = Position(middle, uuid.UUID(int=0))
    start, end = middle - timedelta(days=4), middle + timedelta(days=4)

    def case(name: str, limit: int = 50, after: Position | None = None, **filters: Any) -> Case:
        params = {k: _query_value(v) for k, v in filters.items()}
        if limit != 50:
            params["limit"] = str(limit)
        if after is not None:
            params["cursor"] = after.encode()
        return Case(name, params, TaskFilters(**filters), limit, after)

    return [
        case("first page"),
        case("deep page (cursor)", after=deep),
        case("first page, limit 200", limit=200),
        case("status=failed", status="failed"),
        case("status=failed, deep", after=deep, status="failed"),
        case("kind=send_notification", kind="send_notification"),
        case(
            "kind in an 8-day window, deep",
            after=deep,
            kind="send_notification",
            created_after=start,
            created_before=end,
        ),
        case("status and kind (0.3%)", status="failed", kind="send_notification"),
    ]


async def measure_http(
    client: httpx.AsyncClient, case: Case, requests: int, warm_up: int = WARM_UP
) -> tuple[list[float], int]:
    """Milliseconds of each request, one at a time, and the items of the last page."""
    times: list[float] = []
    items = 0
    for n in range(warm_up + requests):
        started = time.perf_counter()
        response = await client.get("/tasks", params=case.params)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if n >= warm_up:
            times.append(elapsed)
            items = len(response.json()["items"])
    return times, items


async def measure_store(store: TaskStore, case: Case, calls: int = STORE_CALLS) -> list[float]:
    """Milliseconds of the store's ``list_tasks`` for the same page, in this process."""
    times = []
    for _ in range(calls + 5):
        started = time.perf_counter()
        await store.list_tasks(ORG, case.filters, limit=case.limit, after=case.after)
        times.append((time.perf_counter() - started) * 1000)
    return times[5:]


async def _run_size(
    backend: str, url: str, tasks: int, requests: int, logs: Path
) -> list[CaseResult]:
    engine, read_engine = create_engine(url), create_read_engine(url)
    try:
        seeded = await seed_tasks(engine, tasks)
        print(
            f"  {backend}: {tasks:,} tasks (+{seeded.deliveries:,} deliveries) "
            f"seeded in {seeded.seconds:.1f} s",
            flush=True,
        )
        cases = cases_for(seeded)
        sessions = create_session_factory(engine)
        # Reads as the app makes them: on SQLite, its read-only connections beside the writer.
        reads = create_session_factory(read_engine) if read_engine else sessions
        store = TaskStore(sessions, max_attempts=5, group_commit=False, read_sessions=reads)
        plans = {}
        store_times = {}
        async with session_scope(sessions) as session:
            for case in cases:
                query = page_query(ORG, case.filters, limit=case.limit + 1, after=case.after)
                plans[case.name] = await query_plan(session, query, analyze=backend == "postgres")
        for case in cases:
            store_times[case.name] = await measure_store(store, case)
    finally:
        await engine.dispose()
        if read_engine is not None:
            await read_engine.dispose()
    env = _app_env(APP_DATABASE_URL=url, APP_MIGRATE_ON_STARTUP="false")
    server = start_server(
        REFERENCE_APP,
        env=env,
        args=UVICORN_ARGS,
        log_path=logs / f"{backend}-{tasks}.server.log",
        cwd=ROOT,
    )
    results = []
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            for case in cases:
                times, items = await measure_http(client, case, requests)
                results.append(
                    CaseResult.of(
                        backend,
                        tasks,
                        case.name,
                        str(httpx.QueryParams(case.params)),
                        times=times,
                        items=items,
                        store_times=store_times[case.name],
                        plan=plans[case.name],
                        seed_seconds=seeded.seconds,
                    )
                )
                print("  " + line(results[-1]), flush=True)
    finally:
        server.stop(timeout=30)
    return results


@dataclass(frozen=True, slots=True)
class ListingSettings:
    rows: tuple[int, ...] = DEFAULT_ROWS
    requests: int = DEFAULT_REQUESTS
    database_url: str | None = None
    results: Path = Path("results/local")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ListingSettings:
        rows = env.get("BENCH_LISTING_ROWS", "").strip()
        settings = cls(
            rows=tuple(int(x) for x in rows.split(",")) if rows else DEFAULT_ROWS,
            requests=int(env.get("BENCH_LISTING_REQUESTS") or DEFAULT_REQUESTS),
            database_url=env.get("BENCH_DATABASE_URL") or None,
            results=Path(env.get("BENCH_RESULTS") or "results/local"),
        )
        if min(settings.rows) < 1 or settings.requests < 1:
            raise ValueError("BENCH_LISTING_ROWS and BENCH_LISTING_REQUESTS must be positive")
        return settings

    @property
    def backends(self) -> tuple[str, ...]:
        return ("sqlite", "postgres") if self.database_url else ("sqlite",)


async def run(settings: ListingSettings, folder: Path) -> list[CaseResult]:
    """Every size on every database; the results, in that order."""
    results: list[CaseResult] = []
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for backend in settings.backends:
        for tasks in settings.rows:
            async with fresh_database(backend, settings.database_url) as url:
                results += await _run_size(backend, url, tasks, settings.requests, logs)
    return results


def main(argv: Sequence[str] = ()) -> int:
    settings = ListingSettings.from_env(os.environ)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = settings.results / "listing" / stamp
    if settings.database_url is None:
        print("BENCH_DATABASE_URL is unset: SQLite only", flush=True)
    else:
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        print(f"PostgreSQL: a database beside {shown}, created and dropped", flush=True)
    print(HEADER, flush=True)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results = asyncio.run(run(settings, folder))
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average": {"start": load_at_start, "end": load_at_end},
        "requests": settings.requests,
        "rows": list(settings.rows),
        "python": sys.version.split()[0],
    }
    write_report(folder, results, meta)
    print(f"\n{HEADER}\n" + "\n".join(line(r) for r in results))
    print(f"{meta['cpus']} CPUs; load average {load_at_start} at start, ", end="")
    print(f"{load_at_end} at end (the machine may be shared)")
    print(f"\nwritten: {folder}/report.json, report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
