"""Database trouble under load: killed connections, a restarted server, a locked file.

Clients see 202 or a 503 with ``Retry-After`` (never a 500), the app heals by
itself, and every task it answered 202 for ends terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from reference_app.db.engine import SQLITE_BUSY_TIMEOUT_MS
from reference_app.testing import LiveServer
from reliability._eventlog import OBSERVER_NAME, Snapshot, observe
from reliability._fault_harness import (
    FaultRun,
    Submissions,
    client_for,
    hold_load,
    percentile,
    post_one,
    submit_many,
    task_body,
)
from reliability._loop import run_async
from reliability._outcome import Outcome
from reliability._served import FAST_SETTINGS, backend_of, start_app, stop_all
from reliability._two_apps import overlapping_runs, run_intervals

__all__ = [
    "pg_restart",
    "pg_terminate_backends",
    "postgres_running",
    "run_pg_restart",
    "run_pg_terminate",
    "run_sqlite_locked",
    "sqlite_locked",
]

_KILL_APP_CONNECTIONS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND application_name <> $1
"""


def pg_terminate_backends(database_url: str, *, long: bool = False) -> Outcome:
    """``pg_terminate_backend`` on every app connection, twice a second, under load."""
    return run_pg_terminate(database_url, long=long).outcome


def pg_restart(database_url: str, *, long: bool = False) -> Outcome:
    """Stop the local PostgreSQL server under load, start it again: the app heals by itself."""
    return run_pg_restart(database_url, long=long).outcome


def sqlite_locked(database_url: str, *, long: bool = False) -> Outcome:
    """Another connection holds ``BEGIN EXCLUSIVE`` past the busy timeout, then lets go."""
    return run_sqlite_locked(database_url, long=long).outcome


def run_pg_terminate(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _pg_terminate(database_url, long=long))


def run_pg_restart(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _pg_restart(database_url, long=long))


def run_sqlite_locked(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _sqlite_locked(database_url, long=long))


# PostgreSQL: killed connections ----------------------------------------------------


def _plain_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def _kill_app_connections(database_url: str) -> int:
    connection = await asyncpg.connect(_plain_dsn(database_url), timeout=5)
    try:
        killed = await connection.fetchval(_KILL_APP_CONNECTIONS, OBSERVER_NAME)
    finally:
        await connection.close()
    return int(killed or 0)


async def _reads(client: httpx.AsyncClient, submitted: Submissions, until: float) -> Submissions:
    """GET /ready and the status of accepted tasks meanwhile: reads must not 500 either."""
    reads = Submissions()
    while time.monotonic() < until:
        paths = ["/ready"] + [f"/tasks/{i}" for i in submitted.task_ids[-2:]]
        for path in paths:
            started = time.perf_counter()
            try:
                response = await client.get(path)
            except httpx.HTTPError as exc:
                reads.record_error(exc)
                continue
            reads.latencies.append(time.perf_counter() - started)
            reads.statuses[str(response.status_code)] += 1
            if response.status_code not in (200, 503) or _bad_503(response):
                reads.problems.append(f"GET {path}: {response.status_code} {response.text[:200]}")
        await asyncio.sleep(0.05)
    return reads


def _bad_503(response: httpx.Response) -> bool:
    return response.status_code == 503 and "Retry-After" not in response.headers


async def _heal(client: httpx.AsyncClient, seconds: float) -> tuple[float | None, Submissions]:
    """Seconds until /ready answers and a new task is accepted; that probe submission."""
    started = time.monotonic()
    probe = Submissions()
    deadline = started + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/ready")).status_code == 200:
                attempt = Submissions()
                await post_one(client, "/process-data", task_body(-1, io_ms=0), attempt)
                probe.merge(attempt)
                if attempt.task_ids:
                    return time.monotonic() - started, probe
        await asyncio.sleep(0.1)
    return None, probe


async def _start_load(
    client: httpx.AsyncClient, stop_at: float
) -> tuple[Submissions, asyncio.Task[Submissions]]:
    """4 clients of short tasks until ``stop_at``, and a few tasks that outlive several leases
    (their renewals meet the fault too); returns what they saw so far and the load's task."""
    live = Submissions()
    load = asyncio.create_task(
        hold_load(
            client,
            lambda i: task_body(i, io_ms=50),
            until=lambda: time.monotonic() >= stop_at,
            into=live,
        )
    )
    live.merge(await submit_many(client, _outliving(lease_ms=2000)))
    return live, load


async def _pg_terminate(database_url: str, *, long: bool) -> FaultRun:
    duration = 20.0 if long else 5.0
    every = 0.5
    servers: list[LiveServer] = []
    try:
        server = await asyncio.to_thread(start_app, database_url, FAST_SETTINGS)
        servers.append(server)
        async with client_for(server, timeout=60) as client, observe(database_url) as observer:
            stop_at = time.monotonic() + duration
            live, load = await _start_load(client, stop_at)
            kills = terminations = 0
            # Let some work in before the first kill, then keep killing.
            await asyncio.sleep(every)
            reads_task = asyncio.create_task(_reads(client, live, stop_at))
            while time.monotonic() < stop_at:
                terminations += await _kill_app_connections(database_url)
                kills += 1
                await asyncio.sleep(every)
            submitted = await load
            reads = await reads_task
            heal_s, probe = await _heal(client, 60)
            accepted = submitted.task_ids + probe.task_ids
            snap, recovery = await observer.wait_settled(accepted, seconds=120 if long else 60)
    finally:
        await asyncio.to_thread(stop_all, servers)
    submitted.merge(probe)
    return _database_run(
        "PostgreSQL connections killed",
        database_url,
        f"{duration:.0f} s of 4 clients, io 50 ms; {kills} kills, {terminations} connections",
        submitted,
        reads,
        snap,
        accepted,
        recovery,
        heal_s,
        servers,
        {"kills": kills, "terminations": terminations},
    )


# PostgreSQL: the server stops and starts ----------------------------------------------


def _cluster() -> tuple[str, str]:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1], "main"


def _pg_ctl(action: str) -> None:
    version, name = _cluster()
    subprocess.run(  # noqa: S603 - fixed arguments
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],  # noqa: S607
        check=True,
        timeout=60,
        capture_output=True,
    )


def postgres_running(seconds: float = 30.0) -> bool:
    """True once ``pg_isready`` says the local server accepts connections."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-t", "2"],  # noqa: S607
            capture_output=True,
            timeout=10,
            check=False,
        )
        if ready.returncode == 0:
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def _postgres_stopped() -> Iterator[None]:
    """Stop the local PostgreSQL server for the block; always start it again."""
    try:
        _pg_ctl("stop")
        yield
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _pg_ctl("start")  # fails if it is already running: fine
        if not postgres_running():
            raise RuntimeError("PostgreSQL did not come back after the restart scenario")


async def _pg_restart(database_url: str, *, long: bool) -> FaultRun:
    before, down, after = (3.0, 10.0, 5.0) if long else (2.0, 4.0, 3.0)
    servers: list[LiveServer] = []
    try:
        server = await asyncio.to_thread(start_app, database_url, FAST_SETTINGS)
        servers.append(server)
        async with client_for(server, timeout=60) as client, observe(database_url) as observer:
            stop_at = time.monotonic() + before + down + after
            live, load = await _start_load(client, stop_at)
            reads_task = asyncio.create_task(_reads(client, live, stop_at))
            await asyncio.sleep(before)

            def outage() -> None:
                with _postgres_stopped():
                    time.sleep(down)

            await asyncio.to_thread(outage)
            submitted = await load
            reads = await reads_task
            heal_s, probe = await _heal(client, 60)
            accepted = submitted.task_ids + probe.task_ids
            snap, recovery = await observer.wait_settled(accepted, seconds=120)
    finally:
        await asyncio.to_thread(stop_all, servers)
    submitted.merge(probe)
    return _database_run(
        "PostgreSQL server restarted",
        database_url,
        f"4 clients, io 50 ms; server down {down:.0f} s",
        submitted,
        reads,
        snap,
        accepted,
        recovery,
        heal_s,
        servers,
        {"down_s": down},
    )


# SQLite: a lock held past the busy timeout -------------------------------------------


async def _sqlite_locked(database_url: str, *, long: bool) -> FaultRun:
    busy = SQLITE_BUSY_TIMEOUT_MS / 1000
    # A write waits out the busy timeout twice (its group-commit batch, then alone) before
    # it gives up; hold the lock past that so a request meets the 503.
    hold = 2 * busy + (10.0 if long else 1.5)
    # The bounded run keeps the sweeper out of the way (it shares SQLite's one pooled
    # connection, and each pass would wait out the busy timeout too); the long run does not.
    settings = FAST_SETTINGS if long else {**FAST_SETTINGS, "sweep_interval_seconds": "60"}
    path = make_url(database_url).database
    assert path, "sqlite_locked needs a file database"
    servers: list[LiveServer] = []
    try:
        server = await asyncio.to_thread(start_app, database_url, settings)
        servers.append(server)
        async with client_for(server, timeout=120) as client, observe(database_url) as observer:
            before = Submissions()
            for i in range(3):  # the app works before the lock
                await post_one(client, "/process-data", task_body(i, io_ms=0), before)
            await observer.wait_settled(before.task_ids, seconds=30)
            locker = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                locker.execute("BEGIN EXCLUSIVE")
                locked_at = time.monotonic()
                release_at = locked_at + hold
                during = Submissions()
                health = Submissions()
                posts = [
                    asyncio.create_task(
                        _post_at(client, locked_at + 0.2 + n * 1.0, 100 + n, during)
                    )
                    for n in range(4 if not long else 12)
                ]
                health_task = asyncio.create_task(_probe_health(client, release_at, health))
                await asyncio.sleep(max(0.0, release_at - time.monotonic()))
            finally:
                locker.rollback()
                locker.close()
            released = time.monotonic()
            await asyncio.gather(*posts, health_task)
            heal_s, probe = await _heal(client, 60)
            accepted = before.task_ids + during.task_ids + probe.task_ids
            snap, recovery = await observer.wait_settled(accepted, seconds=60)
    finally:
        await asyncio.to_thread(stop_all, servers)
    submitted = Submissions()
    for part in (before, during, probe):
        submitted.merge(part)
    return _database_run(
        "SQLite database locked",
        database_url,
        f"BEGIN EXCLUSIVE held {hold:.1f} s (busy timeout {busy:.0f} s); "
        f"{len(posts)} POSTs meanwhile",
        submitted,
        health,
        snap,
        accepted,
        recovery,
        heal_s,
        servers,
        {
            "hold_s": hold,
            "during": during,
            "health": health,
            "released_after_s": released - locked_at,
            "slowest_answer_s": max(during.latencies, default=0.0),
        },
    )


async def _post_at(client: httpx.AsyncClient, at: float, index: int, into: Submissions) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    await post_one(client, "/process-data", task_body(index, io_ms=0), into)


async def _probe_health(client: httpx.AsyncClient, until: float, into: Submissions) -> None:
    """GET /health every 100 ms: the event loop must keep answering while writes wait."""
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            response = await client.get("/health")
        except httpx.HTTPError as exc:
            into.record_error(exc)
        else:
            into.latencies.append(time.perf_counter() - started)
            into.statuses[str(response.status_code)] += 1
            if response.status_code != 200:
                into.problems.append(f"/health answered {response.status_code}")
        await asyncio.sleep(0.1)


# The outcome ---------------------------------------------------------------------


def _database_run(
    fault: str,
    database_url: str,
    load: str,
    submitted: Submissions,
    reads: Submissions,
    snap: Snapshot,
    accepted: list[uuid.UUID],
    recovery: float | None,
    heal_s: float | None,
    servers: list[LiveServer],
    facts: dict[str, Any],
) -> FaultRun:
    notes = (
        f"POSTs: {_statuses(submitted)}, p95 {_seconds(percentile(submitted.latencies, 95))}; "
        f"reads meanwhile: {_statuses(reads)}, p95 {_seconds(percentile(reads.latencies, 95))}; "
        f"contract breaches {len(submitted.problems) + len(reads.problems)}; "
        f"ready and accepting {_seconds(heal_s)} after the fault"
    )
    logs = [s.logs() for s in servers]
    overlaps = overlapping_runs(run_intervals(logs))
    if overlaps:
        notes += f"; {len(overlaps)} tasks ran two attempts at once (a lease outlived)"
    outcome = Outcome(
        fault=fault,
        backend=backend_of(database_url),
        load=load,
        inputs=submitted.sent,
        accepted=len(accepted),
        lost=len(snap.unfinished(accepted)),
        duplicates=0,  # no side effect outside the database in these runs
        reruns=snap.reruns(accepted),
        recovery_s=recovery,
        notes=notes,
    )
    facts = {
        **facts,
        "submitted": submitted,
        "reads": reads,
        "heal_s": heal_s,
        "overlaps": overlaps,
        "superseded": sum(r.get("event") == "attempt_superseded" for log in logs for r in log),
    }
    return FaultRun(outcome, snap, accepted, [], logs, facts)


def _outliving(*, lease_ms: int, count: int = 4) -> list[dict[str, Any]]:
    return [task_body(10_000 + n, io_ms=lease_ms * 3 // 2) for n in range(count)]


def _statuses(seen: Submissions) -> str:
    return ", ".join(f"{n} x {code}" for code, n in sorted(seen.statuses.items())) or "none"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"
