"""Measure the durable accept path of the reference app under a real uvicorn, per database.

    .venv/bin/python scripts/bench_accept.py [--database sqlite|postgres|both]
        [--seconds N] [--connections N] [--json PATH]

First, once:

  f  the floor: the same POST, back to back at C connections, against
     benchmarks/_accept_floor.py, the reference app itself with its store swapped
     (``dependency_overrides``) for one that commits nothing and starts no task.
     What the request path alone costs here, the ceiling of run a.

Then for each database it starts ``uvicorn reference_app.main:app`` (one worker,
access log off, on a free 127.0.0.1 port) against a fresh database, warms it
up, and runs, each for ``--seconds``:

  c  GET /health alone at C connections: the baseline, run first on an idle server;
  a  durable accept: C connections POST /process-data (background, io_ms=0) back
     to back, while a separate probe sends GET /health every 20 ms;
  r  durable accept at a fixed rate (``--accept-rate``, open model, timed from each
     POST's intended send time), with the probe: the 202's p95 against the probe's
     p95 under the same load, at a load the server can sustain;
  b  health under background work: POSTs at a fixed rate that schedule I/O-bound
     work, CPU-bound work, and a backlog over the concurrency cap, with the probe.

Every run also reports the server's CPU time per response, so a run's cost can
be compared with the floor's and with the budget a target rate leaves
(1 s / 1,500 = 667 us of one core per accepted task).

After each task-producing run it waits for the backlog to drain and reads the
event log: how many tasks had finished when the load stopped, and how long the
rest took. This is a measurement, not a gate: it exits 0 unless the server
failed to start or the run crashed. It is the interim tool of issue 2; ``make bench``
(its accept group, benchmarks/_accept.py) measures the same loads side by side with a
plain FastAPI route, and prints the targets. The load generator, the request and the
floor live in benchmarks/ (``_loadgen``, ``_accept_loads``, ``_accept_floor``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: benchmarks/ is importable from the root
    sys.path.insert(0, str(ROOT))

from benchmarks._accept_loads import HEALTH, fixed_rate_connections, process_data  # noqa: E402
from benchmarks._accept_loads import split as _split  # noqa: E402
from benchmarks._loadgen import (  # noqa: E402
    LoadResult,
    RequestSpec,
    Stream,
    run_load,
    uvloop_available,
)

# sqlalchemy, asyncpg and reference_app are imported inside the functions that use them:
# the spawned load workers re-import this module and need none of them.

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PROBE_INTERVAL_MS = 20
SERVER_START_SECONDS = 60.0
SERVER_STOP_SECONDS = 30.0
GRACEFUL_SHUTDOWN_SECONDS = 10
DRAIN_POLL_SECONDS = 0.5

RUNS = "fcarb"
DEFAULT_ACCEPT_RATE = 300.0
# The target, 1,500 accepted tasks/s on one worker: the server CPU it leaves per task.
TARGET_PER_S = 1500
APP = "reference_app.main:app"
FLOOR_APP = "benchmarks._accept_floor:app"  # uvicorn imports it from the repo root (cwd)


@dataclass(frozen=True, slots=True)
class BackgroundRun:
    key: str
    label: str
    io_ms: int
    cpu_ms: int


BACKGROUND_RUNS = (
    BackgroundRun("io_bound", "b1 I/O-bound work", io_ms=300, cpu_ms=0),
    BackgroundRun("cpu_bound", "b2 CPU-bound work", io_ms=0, cpu_ms=50),
    BackgroundRun("backlog", "b3 backlog over the cap", io_ms=2000, cpu_ms=0),
)
ACCEPT_AT_RATE = BackgroundRun("accept_rate", "r  POST accept at a fixed rate", io_ms=0, cpu_ms=0)


@dataclass(frozen=True, slots=True)
class Plan:
    seconds: float
    connections: int
    rate: float
    workers: int
    warmup: float
    drain_timeout: float
    accept_io_ms: int = 0
    accept_rate: float = DEFAULT_ACCEPT_RATE
    # Which runs: "f" (floor), "c" (health alone), "a" (durable accept), "r" (accept at
    # a fixed rate), "b" (background work).
    only: frozenset[str] = frozenset(RUNS)
    # Which of the b runs, by key (see BACKGROUND_RUNS).
    background: tuple[str, ...] = tuple(run.key for run in BACKGROUND_RUNS)


class ServerFailed(RuntimeError):
    """The app under test did not start."""


# Databases ---------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """This environment without APP_* variables, so the app runs on its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("APP_")}


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of an empty database: a temp SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'app.db'}"  # migrated by the app on startup
        return
    from sqlalchemy.engine import make_url

    server = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = f"bench_accept_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    asyncio.run(_postgres_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        migrate = subprocess.run(
            [sys.executable, "-m", "reference_app", "--database-url", url, "migrate"],
            timeout=120,
            env=_clean_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate exited with {migrate.returncode}:\n{migrate.stderr}")
        yield url
    finally:
        asyncio.run(_postgres_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _postgres_admin(dsn: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


class TaskLog:
    """Read-only queries on the database under test, on a loop of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._runner = asyncio.Runner()
        self._engine: Any = None

    def close(self) -> None:
        if self._engine is not None:
            self._runner.run(self._engine.dispose())
        self._runner.close()

    def _run(self, query: Any) -> list[Any]:
        async def execute() -> list[Any]:
            from sqlalchemy.ext.asyncio import create_async_engine
            from sqlalchemy.pool import NullPool

            if self._engine is None:
                self._engine = create_async_engine(self._url, poolclass=NullPool)
            async with self._engine.connect() as connection:
                return list((await connection.execute(query)).all())

        return self._runner.run(execute())

    def postgres_sessions(self) -> int | None:
        """Connections ever opened to this PostgreSQL database (one of them this query's)."""
        if not self._url.startswith("postgresql"):
            return None
        from sqlalchemy import text

        query = text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(self._run(query)[0][0])

    def tasks(self) -> int:
        from sqlalchemy import func, select

        from reference_app.db.models import Task

        return int(self._run(select(func.count()).select_from(Task))[0][0])

    def unfinished(self) -> int:
        from sqlalchemy import func, select

        from reference_app.db.models import Task

        query = select(func.count()).where(Task.status.not_in(["succeeded", "failed"]))
        return int(self._run(query)[0][0])

    def statuses_since(self, start: datetime) -> dict[str, int]:
        from sqlalchemy import func, select

        from reference_app.db.models import Task

        query = (
            select(Task.status, func.count()).where(Task.created_at >= start).group_by(Task.status)
        )
        return {status: int(count) for status, count in self._run(query)}

    def finished_between(self, start: datetime, stop: datetime) -> int:
        """Tasks accepted since ``start`` whose terminal event is dated at or before ``stop``."""
        from sqlalchemy import func, select

        from reference_app.db.models import Task, TaskEvent

        query = (
            select(func.count())
            .select_from(TaskEvent)
            .join(Task, Task.id == TaskEvent.task_id)
            .where(
                TaskEvent.stream_id == TaskEvent.task_id,
                TaskEvent.type.in_(["task_succeeded", "task_failed"]),
                Task.created_at >= start,
                TaskEvent.at <= stop,
            )
        )
        return int(self._run(query)[0][0])

    def wait_for_drain(self, timeout: float) -> tuple[float | None, int]:
        """Seconds until no task is unfinished (None on timeout), and how many are left."""
        started = time.monotonic()
        while (left := self.unfinished()) and time.monotonic() - started < timeout:
            time.sleep(DRAIN_POLL_SECONDS)
        return (None if left else time.monotonic() - started), left


# The server --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    port: int
    pid: int
    command: list[str]
    log_path: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_server(url: str, workdir: Path, *, floor: bool = False) -> Iterator[Server]:
    """uvicorn with one worker on a free 127.0.0.1 port; stopped by PID on the way out.

    ``floor``: serve benchmarks/_accept_floor.py instead of the reference app."""
    port = _free_port()
    app = [FLOOR_APP if floor else APP]
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        *app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        str(GRACEFUL_SHUTDOWN_SECONDS),
    ]
    env = _clean_env() | {
        "APP_DATABASE_URL": url,
        "APP_LOG_FORMAT": "json",
        "APP_LOG_LEVEL": "WARNING",
    }
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(port):
            if process.poll() is not None:
                raise ServerFailed(f"uvicorn exited with {process.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"no answer on /health after {SERVER_START_SECONDS:.0f} s:\n{_tail(log_path)}"
                )
            time.sleep(0.1)
        yield Server(port, process.pid, command, log_path)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SERVER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"uvicorn (pid {process.pid}) ignored SIGTERM; killing it", file=sys.stderr)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def server_log_summary(path: Path) -> dict[str, int]:
    """Counts of the server's log lines at warning and above, by level and event."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            counts["unparsed_line"] += 1
            continue
        if isinstance(entry, dict) and entry.get("level") in {"warning", "error", "critical"}:
            counts[f"{entry['level']}:{entry.get('event')}"] += 1
    return dict(counts)


# Scenarios -----------------------------------------------------------------------


def _closed_loop(name: str, request: RequestSpec, connections: int, workers: int) -> list[Stream]:
    return [Stream(name, request, n) for n in _split(connections, workers) if n]


def _probe() -> tuple[Stream, ...]:
    # In a process of its own, so a busy load worker cannot delay its timing.
    return (Stream("probe", HEALTH, 1, rate=1000 / PROBE_INTERVAL_MS, from_intended=False),)


def _measure(
    server: Server, log: TaskLog, workers: list[tuple[Stream, ...]], seconds: float
) -> tuple[LoadResult, dict[str, Any], datetime]:
    """Run the load; return what the workers recorded, what the run cost, and a time before
    its first request (the workers may send before ``started_at`` is taken)."""
    sessions_before = log.postgres_sessions()
    since = datetime.now(UTC)
    result = run_load(server.port, workers, duration=seconds, watch_pid=server.pid)
    sessions_after = log.postgres_sessions()
    costs = _costs(result)
    if sessions_before is not None and sessions_after is not None:
        # Minus the one our own query opened: what the app's pool opened during the run.
        costs["db_connections_opened"] = sessions_after - sessions_before - 1
    return result, costs, since


def _costs(result: LoadResult) -> dict[str, Any]:
    window = result.window_seconds
    responses = sum(1 for samples in result.samples.values() for status in samples.status if status)
    return {
        # Every response of the run, probe included; CPU over the whole wall time of the run.
        "server_cpu_us_per_response": (
            None
            if result.watched_cpu is None or not responses
            else round(result.watched_cpu / responses * 1e6)
        ),
        "loadgen_cpu_seconds": round(result.children_cpu, 2),
        "loadgen_cpu_share": round(result.children_cpu / window, 3),
        "loadgen_cpu_share_in_window": round(result.workers_cpu_in_window / window, 3),
        "server_cpu_share": (
            None
            if result.watched_cpu is None
            else round(result.watched_cpu / result.wall_seconds, 3)
        ),
    }


def _tasks_after(log: TaskLog, since: datetime, result: LoadResult, plan: Plan) -> dict[str, Any]:
    """The run's tasks: those created since ``since``, a time taken before its first request
    (no other run makes tasks meanwhile), so none is missed however the clocks start."""
    drain, left = log.wait_for_drain(plan.drain_timeout)
    statuses = log.statuses_since(since)
    return {
        "accepted_in_db": sum(statuses.values()),
        "finished_at_stop": log.finished_between(since, _window_end(result)),
        "drain_seconds_after_stop": None if drain is None else round(drain, 1),
        "unfinished_after_drain_timeout": left,
        "statuses_after_drain": statuses,
    }


def _window_end(result: LoadResult) -> datetime:
    """The end of the load window on the wall clock, to compare with the event log's."""
    return datetime.fromtimestamp(result.started_at, UTC) + timedelta(seconds=result.window_seconds)


def health_baseline(server: Server, log: TaskLog, plan: Plan) -> dict[str, Any]:
    streams = _closed_loop("health", HEALTH, plan.connections, plan.workers)
    result, costs, _ = _measure(server, log, [(s,) for s in streams], plan.seconds)
    return {
        "duration_s": plan.seconds,
        "connections": plan.connections,
        "health": result.samples["health"].summary(plan.seconds),
        **costs,
    }


def durable_accept(server: Server, log: TaskLog, plan: Plan) -> dict[str, Any]:
    post = process_data(io_ms=plan.accept_io_ms)
    streams = _closed_loop("post", post, plan.connections, plan.workers)
    result, costs, since = _measure(server, log, [(s,) for s in streams] + [_probe()], plan.seconds)
    posts, probe = result.samples["post"], result.samples["probe"]
    latency, health = posts.summary(plan.seconds), probe.summary(plan.seconds)
    ratio = _ratio(latency["p95_ms"], health["p95_ms"])
    return {
        "duration_s": plan.seconds,
        "connections": plan.connections,
        "io_ms": plan.accept_io_ms,
        "accepted": posts.count(202),
        # 202s completed inside the window, so in-flight stragglers do not inflate the rate.
        "accepted_per_s": round(posts.count(202, completed_within=plan.seconds) / plan.seconds, 1),
        "non_202_statuses": {k: v for k, v in latency["statuses"].items() if k != "202"},
        "post": latency,
        "probe": health,
        "post_p95_over_health_p95": ratio,
        "tasks": _tasks_after(log, since, result, plan),
        **costs,
    }


def fixed_rate(
    server: Server, log: TaskLog, plan: Plan, run: BackgroundRun, rate: float
) -> dict[str, Any]:
    """POSTs of ``run``'s work at ``rate`` per second, timed from their intended send times,
    with the probe; used by run r (the accept at a sustainable load) and the b runs."""
    connections = fixed_rate_connections(rate)
    post = Stream("post", process_data(io_ms=run.io_ms, cpu_ms=run.cpu_ms), connections, rate)
    result, costs, since = _measure(server, log, [(post,), _probe()], plan.seconds)
    posts = result.samples["post"]
    latency, probe = posts.summary(plan.seconds), result.samples["probe"].summary(plan.seconds)
    return {
        "duration_s": plan.seconds,
        "rate_per_s": rate,
        "connections": connections,
        "io_ms": run.io_ms,
        "cpu_ms": run.cpu_ms,
        "accepted": posts.count(202),
        "post_from_intended_start": latency,
        "probe": probe,
        "post_p95_over_health_p95": _ratio(latency["p95_ms"], probe["p95_ms"]),
        "tasks": _tasks_after(log, since, result, plan),
        **costs,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def floor(plan: Plan) -> dict[str, Any]:
    """Run f: the closed-loop POST of run a against benchmarks/_accept_floor.py (no commit)."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        # The floor's lifespan is the reference app's: it migrates this file and its idle
        # sweeper looks at it every few seconds, but no POST reads or writes it.
        url = f"sqlite+aiosqlite:///{tmp}/floor.db"
        with running_server(url, Path(tmp), floor=True) as server:
            return _floor_run(server, url, plan)


def _floor_run(server: Server, url: str, plan: Plan) -> dict[str, Any]:
    _say("floor", f"server pid {server.pid} on 127.0.0.1:{server.port}; warming up")
    post = process_data(io_ms=0)
    warm = _closed_loop("post", post, plan.connections, plan.workers)
    run_load(server.port, [(s,) for s in warm], duration=plan.warmup)
    _say("floor", "f  the same POST, nothing committed and no task")
    streams = _closed_loop("post", post, plan.connections, plan.workers)
    workers = [(s,) for s in streams] + [_probe()]
    result = run_load(server.port, workers, duration=plan.seconds, watch_pid=server.pid)
    posts, probe = result.samples["post"], result.samples["probe"]
    latency, health = posts.summary(plan.seconds), probe.summary(plan.seconds)
    return {
        "server_command": server.command,
        "duration_s": plan.seconds,
        "connections": plan.connections,
        "accepted": posts.count(202),
        "accepted_per_s": round(posts.count(202, completed_within=plan.seconds) / plan.seconds, 1),
        "post": latency,
        "probe": health,
        "post_p95_over_health_p95": _ratio(latency["p95_ms"], health["p95_ms"]),
        # 0, or the floor committed what it must not and its figures are not a floor.
        "tasks_in_db": _task_count(url),
        **_costs(result),
    }


def _task_count(url: str) -> int:
    log = TaskLog(url)
    try:
        return log.tasks()
    finally:
        log.close()


def bench_database(kind: str, plan: Plan) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-accept-") as tmp,
        fresh_database(kind, Path(tmp)) as url,
        running_server(url, Path(tmp)) as server,
    ):
        log = TaskLog(url)
        try:
            _say(kind, f"server pid {server.pid} on 127.0.0.1:{server.port}; warming up")
            warm = _closed_loop("post", process_data(io_ms=0), plan.connections, plan.workers)
            run_load(server.port, [(s,) for s in warm], duration=plan.warmup)
            log.wait_for_drain(plan.drain_timeout)
            scenarios: dict[str, Any] = {}
            if "c" in plan.only:
                _say(kind, "c  GET /health alone")
                scenarios["health_baseline"] = health_baseline(server, log, plan)
            if "a" in plan.only:
                _say(kind, "a  durable accept")
                scenarios["accept"] = durable_accept(server, log, plan)
            if "r" in plan.only:
                _say(kind, f"r  durable accept at {plan.accept_rate:g}/s")
                run = dataclasses.replace(ACCEPT_AT_RATE, io_ms=plan.accept_io_ms)
                scenarios["accept_rate"] = fixed_rate(server, log, plan, run, plan.accept_rate)
            for run in BACKGROUND_RUNS if "b" in plan.only else ():
                if run.key not in plan.background:
                    continue
                _say(kind, run.label)
                scenarios[run.key] = fixed_rate(server, log, plan, run, plan.rate)
            if {"a", "c"} <= plan.only:
                baseline = scenarios["health_baseline"]["health"]["p95_ms"]
                post = scenarios["accept"]["post"]["p95_ms"]
                scenarios["accept"]["post_p95_over_baseline_health_p95"] = (
                    round(post / baseline, 2) if post and baseline else None
                )
        finally:
            log.close()
        from sqlalchemy.engine import make_url

        return {
            "database_url": make_url(url).render_as_string(hide_password=True),
            "server_command": server.command,
            "server_log_warnings": server_log_summary(server.log_path),
            "scenarios": scenarios,
        }


def _say(kind: str, message: str) -> None:
    print(f"[{kind}] {message}", file=sys.stderr, flush=True)


# Report --------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


_HEADER = (
    f"{'scenario':<38}{'load':>10}{'req/s':>9}{'p50':>8}{'p95':>8}{'p99':>8}"
    f" | {'health p50':>10}{'p95':>7}{'p99':>7} | {'gen CPU':>7}{'srv CPU':>8}{'us/resp':>8}"
)


def row(label: str, load: str, rate: float, lat: dict[str, Any], probe: Any, r: Any) -> str:
    """One line of a table: latencies, the probe's, and what the run cost."""
    health = (
        f"{_f(probe['p50_ms'], 2):>10}{_f(probe['p95_ms'], 2):>7}{_f(probe['p99_ms'], 2):>7}"
        if probe
        else f"{'':>24}"
    )
    us = r.get("server_cpu_us_per_response")
    return (
        f"{label:<38}{load:>10}{_f(rate):>9}{_f(lat['p50_ms'], 2):>8}"
        f"{_f(lat['p95_ms'], 2):>8}{_f(lat['p99_ms'], 2):>8} | {health} |"
        f"{_f(r['loadgen_cpu_share'], 2):>7}{_f(r['server_cpu_share'], 2):>8}"
        f"{'-' if us is None else us:>8}"
    )


def format_floor(f: dict[str, Any], meta: dict[str, Any]) -> str:
    budget = round(1e6 / TARGET_PER_S)
    return "\n".join(
        [
            "== Floor: the reference request path with no database write and no task"
            " (benchmarks/_accept_floor.py)",
            f"   uvicorn, 1 worker, access log OFF, loop={meta['server_loop']};"
            f" {meta['seconds']:g} s",
            "",
            _HEADER,
            row(
                "f  POST 202, nothing committed",
                f"{meta['connections']} conn",
                f["accepted_per_s"],
                f["post"],
                f["probe"],
                f,
            ),
            "",
            f"us/resp = server CPU per response (probe included). The target of {TARGET_PER_S:,}"
            f" accepted tasks/s on one worker leaves {budget} us of one core per task, for the",
            "request, its commit and the task's own run; the floor is the request alone.",
        ]
    )


def format_table(kind: str, result: dict[str, Any], meta: dict[str, Any]) -> str:
    s = result["scenarios"]
    title = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[kind]
    out = [
        f"== {title}: {result['database_url']}",
        f"   uvicorn, 1 worker, access log OFF, APP_LOG_LEVEL=WARNING, loop={meta['server_loop']};"
        f" {meta['seconds']:g} s per run; max_concurrent_tasks={meta['max_concurrent_tasks']}",
        "",
        _HEADER,
    ]
    conns = f"{meta['connections']} conn"
    if c := s.get("health_baseline"):
        out.append(
            row("c  GET /health alone", conns, c["health"]["per_second"], c["health"], None, c)
        )
    if a := s.get("accept"):
        out.append(
            row(
                f"a  POST accept (202/s), io_ms={a['io_ms']}",
                conns,
                a["accepted_per_s"],
                a["post"],
                a["probe"],
                a,
            )
        )
    for run in (ACCEPT_AT_RATE, *BACKGROUND_RUNS):
        if run.key not in s:
            continue
        b = s[run.key]
        label = f"{run.label} ({b['io_ms']}/{b['cpu_ms']} ms)"
        rate = b["post_from_intended_start"]["per_second"]
        out.append(
            row(label, f"{b['rate_per_s']:g}/s", rate, b["post_from_intended_start"], b["probe"], b)
        )
    out += [
        "",
        "Latencies in ms. Rows r and b time each POST from its intended send time (fixed"
        " arrival rate).",
        "CPU in cores: gen = load generator processes (start-up included), srv = uvicorn process;"
        " us/resp = server CPU per response.",
        "",
        "req/s: c = responses, a = 202s completed in the window, r and b = POSTs sent.",
        f"a: POST p95 / health-probe p95 in the same window ="
        f" {_f(a['post_p95_over_health_p95'], 2) if a else '-'}; / run c's p95 ="
        f" {_f(a.get('post_p95_over_baseline_health_p95'), 2) if a else '-'}",
        f"r: POST p95 / health-probe p95 in the same window ="
        f" {_f(r['post_p95_over_health_p95'], 2) if (r := s.get('accept_rate')) else '-'}",
        f"Unexpected statuses and client errors, all runs: {_anomalies(s) or 'none'}",
        "",
        f"{'tasks':<38}{'202s':>8}{'in db':>8}{'done@stop':>11}{'drain s':>9}"
        "  statuses after drain",
    ]
    for key, label in [
        ("accept", "a  durable accept"),
        *((run.key, run.label) for run in (ACCEPT_AT_RATE, *BACKGROUND_RUNS)),
    ]:
        if key not in s:
            continue
        t = s[key]["tasks"]
        drain = t["drain_seconds_after_stop"]
        out.append(
            f"{label:<38}{s[key]['accepted']:>8}{t['accepted_in_db']:>8}{t['finished_at_stop']:>11}"
            f"{(_f(drain) if drain is not None else 'timeout'):>9}  {t['statuses_after_drain']}"
        )
    opened = {k: v["db_connections_opened"] for k, v in s.items() if "db_connections_opened" in v}
    if opened:
        out += ["", f"database connections the app opened during each run: {opened}"]
    if result["server_log_warnings"]:
        out += ["", f"server warnings: {result['server_log_warnings']}"]
    return "\n".join(out)


def _git_revision() -> str | None:
    """The commit under test, with ``+dirty`` when reference_app/ has local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True
        )
        changes = subprocess.run(
            ["git", "status", "--porcelain", "reference_app"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.decode().strip() + ("+dirty" if changes.stdout.strip() else "")


def _anomalies(scenarios: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, scenario in scenarios.items():
        for name in ("post", "post_from_intended_start", "probe", "health"):
            if name not in scenario:
                continue
            expected = "202" if name.startswith("post") else "200"
            odd = {k: v for k, v in scenario[name]["statuses"].items() if k != expected}
            if odd or scenario[name]["errors"]:
                found[f"{key}.{name}"] = {**odd, **scenario[name]["errors"]}
    return found


def _metadata(plan: Plan) -> dict[str, Any]:
    from reference_app.core.config import Settings

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": _git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "seconds": plan.seconds,
        "connections": plan.connections,
        "rate_per_s": plan.rate,
        "accept_rate_per_s": plan.accept_rate,
        "loadgen_workers": plan.workers,
        "warmup_s": plan.warmup,
        "probe_interval_ms": PROBE_INTERVAL_MS,
        "access_log": False,
        "server_loop": "uvloop" if uvloop_available() else "asyncio",
        "loadgen_loop": "uvloop" if uvloop_available() else "asyncio",
        "max_concurrent_tasks": Settings.model_fields["max_concurrent_tasks"].default,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--connections", type=int, default=50, help="C, for runs a and c")
    parser.add_argument("--rate", type=float, default=100.0, help="POSTs per second in runs b")
    parser.add_argument("--workers", type=int, default=1, help="load generator processes")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up (default: min(3, N))")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="max wait per drain")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument(
        "--accept-io-ms",
        type=int,
        default=0,
        help="io_ms of the tasks in run a (0: every task also runs at once, in the same process)",
    )
    parser.add_argument(
        "--accept-rate",
        type=float,
        default=DEFAULT_ACCEPT_RATE,
        help="POSTs per second in run r (a load the server should sustain)",
    )
    parser.add_argument(
        "--only",
        default=RUNS,
        help=(
            "the runs to do, in their order: any of f (floor, nothing committed), c (health alone),"
            " a (accept), r (accept at --accept-rate), b (background)"
        ),
    )
    parser.add_argument(
        "--background",
        default=",".join(run.key for run in BACKGROUND_RUNS),
        help="the b runs to do, comma-separated: io_bound, cpu_bound, backlog",
    )
    args = parser.parse_args(argv)
    keys = {run.key for run in BACKGROUND_RUNS}
    args.background = tuple(k.strip() for k in args.background.split(",") if k.strip())
    if not args.background or set(args.background) - keys:
        parser.error(f"--background takes keys from {sorted(keys)}")
    if (
        args.seconds <= 0
        or args.connections < 1
        or args.rate <= 0
        or args.accept_rate <= 0
        or args.workers < 1
    ):
        parser.error(
            "--seconds, --connections, --rate, --accept-rate and --workers must be positive"
        )
    if not args.only or set(args.only) - set(RUNS):
        parser.error(f"--only takes letters from '{RUNS}'")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(
        seconds=args.seconds,
        connections=args.connections,
        rate=args.rate,
        workers=args.workers,
        warmup=min(3.0, args.seconds) if args.warmup is None else args.warmup,
        drain_timeout=args.drain_timeout,
        accept_io_ms=args.accept_io_ms,
        accept_rate=args.accept_rate,
        only=frozenset(args.only),
        background=args.background,
    )
    meta = _metadata(plan)
    cap = meta["max_concurrent_tasks"]
    if plan.rate * 2 <= cap:
        print(f"note: --rate {plan.rate:g} does not exceed the cap ({cap}) / 2 s", file=sys.stderr)
    report: dict[str, Any] = {"meta": meta, "databases": {}}
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    exit_code = 0
    if "f" in plan.only:
        try:
            report["floor"] = floor(plan)
        except Exception as exc:
            traceback.print_exc()
            report["floor"] = {"error": f"{type(exc).__name__}: {exc}"}
            exit_code = 1
        else:
            print(format_floor(report["floor"], meta), end="\n\n", flush=True)
    for kind in kinds:
        try:
            result = bench_database(kind, plan)
        except Exception as exc:
            traceback.print_exc()
            report["databases"][kind] = {"error": f"{type(exc).__name__}: {exc}"}
            exit_code = 1
            continue
        report["databases"][kind] = result
        print(format_table(kind, result, meta), end="\n\n", flush=True)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(
        f"revision {meta['revision']}; {meta['cpu_count']} CPUs; load average at start"
        f" {meta['loadavg_start']}, at end {meta['loadavg_end']}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
