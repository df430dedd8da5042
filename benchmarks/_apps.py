"""The apps under test: each under uvicorn on a free 127.0.0.1 port, stopped by PID.

The reference app on a fresh SQLite file (or the PostgreSQL database it is
given, migrated first) with a webhook receiver beside it, and the lesson 08
load lab. Each comes with a way to see its finished work: the event log, or
the lab's GET /stats.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from benchmarks._eventlog import EventLog
from benchmarks._plan import BenchSettings
from reference_app.testing import LiveServer, start_server

__all__ = [
    "METRICS_TOKEN",
    "App",
    "StatsPoller",
    "floor_app",
    "lab_app",
    "lab_stats",
    "plain_app",
    "reference_app",
    "wait_for_quiet",
    "warm_up",
]

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_APP = "reference_app.main:app"
LAB_APP = "lessons.lesson_08_under_load.step_04_load_lab:app"
RECEIVER_APP = "benchmarks._receiver:app"
PLAIN_APP = "benchmarks._plain_app:app"
FLOOR_APP = "benchmarks._accept_floor:app"
FLOOR_STATE_APP = "benchmarks._accept_floor:state_app"
UVICORN_ARGS = ("--no-access-log", "--timeout-graceful-shutdown", "10")
API_KEY = "demo-key-org-a"
METRICS_TOKEN = "bench-metrics-token-0123456789"  # noqa: S105 - a local bench run's
"""The bench's reference app serves /metrics, as a production one would: its recording is in
every durable run, and the scrape runs (``_accept_scrape``) read it with this."""


@dataclass
class App:
    """One running target: its server, and how to see its finished work."""

    target: str
    server: LiveServer
    events: EventLog | None = None
    database: str | None = None
    database_url: str | None = None
    """The app's own database URL (with its password, if any): for the bench process's probes."""
    receiver: LiveServer | None = None
    commands: list[list[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


def _app_env(**values: str) -> dict[str, str | None]:
    """Only our APP_* settings: none inherited from the shell."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APP_")}
    return {**env, "APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "WARNING", **values}


@contextlib.contextmanager
def reference_app(
    target: str, settings: BenchSettings, logs: Path, *, log_name: str | None = None
) -> Iterator[App]:
    with contextlib.ExitStack() as stack:
        if target == "sqlite":
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            url = f"sqlite+aiosqlite:///{workdir / 'app.db'}"  # migrated by the app on start
        else:
            assert settings.database_url is not None
            url = settings.database_url
            print(f"  migrating {make_url(url).render_as_string(hide_password=True)}", flush=True)
            subprocess.run(  # noqa: S603 - our interpreter, our arguments
                [sys.executable, "-m", "reference_app", "--database-url", url, "migrate"],
                check=True,
                cwd=ROOT,
                capture_output=True,
                timeout=120,
            )
        receiver = stack.enter_context(
            _server(RECEIVER_APP, {"BENCH_RECEIVER_DELAY_MS": "20"}, logs / "receiver.log")
        )
        env = _app_env(
            APP_DATABASE_URL=url, APP_WEBHOOK_ALLOW="127.0.0.1", APP_METRICS_TOKEN=METRICS_TOKEN
        )
        server = stack.enter_context(
            _server(REFERENCE_APP, env, logs / (log_name or f"{target}.server.log"))
        )
        events = EventLog(url)
        stack.callback(events.close)
        database = make_url(url).render_as_string(hide_password=True)
        yield App(target, server, events, database, url, receiver,
                  [server.command, receiver.command])  # fmt: skip


@contextlib.contextmanager
def lab_app(logs: Path) -> Iterator[App]:
    with _server(LAB_APP, _app_env(), logs / "lab.server.log") as server:
        yield App("lab", server, commands=[server.command])


@contextlib.contextmanager
def plain_app(logs: Path) -> Iterator[App]:
    """The plain FastAPI route (``_plain_app``): no database, no work kept."""
    with _server(PLAIN_APP, _app_env(), logs / "plain.server.log") as server:
        yield App("plain", server, commands=[server.command])


@contextlib.contextmanager
def floor_app(logs: Path, name: str = "floor") -> Iterator[App]:
    """The reference app with a store that keeps nothing (``_accept_floor``): ``floor``
    swaps it through ``dependency_overrides``, ``floor-state`` on ``app.state``. Always on a
    SQLite file of its own: its POST never touches a database, but its idle sweeper would
    claim another run's tasks from a shared one."""
    target = {"floor": FLOOR_APP, "floor-state": FLOOR_STATE_APP}[name]
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as workdir:
        env = _app_env(APP_DATABASE_URL=f"sqlite+aiosqlite:///{Path(workdir) / 'floor.db'}")
        with _server(target, env, logs / f"{name}.server.log") as server:
            yield App(name, server, commands=[server.command])


@contextlib.contextmanager
def _server(app: str, env: dict[str, str | None], log: Path) -> Iterator[LiveServer]:
    server = start_server(app, env=env, args=UVICORN_ARGS, log_path=log, cwd=ROOT)
    try:
        yield server
    finally:
        server.stop(timeout=30)


def warm_up(app: App) -> None:
    """Open connections, fill caches, start the process pool; then wait for the work to end."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=app.url, timeout=30) as client:
        for _ in range(100):
            client.get("/health").raise_for_status()
        if app.target == "lab":
            for _ in range(50):
                client.post("/work/async-io?work_ms=0").raise_for_status()
            client.post("/work/cpu-offloaded?work_ms=1").raise_for_status()
        else:
            body = {"data": {"warm": True}, "io_ms": 0}
            for _ in range(50):
                client.post("/process-data", json=body, headers=auth).raise_for_status()
            for _ in range(10):
                client.post("/process-data?mode=inline", json=body, headers=auth)
            client.post("/process-data", json={**body, "cpu_ms": 1}, headers=auth)
    wait_for_quiet(app, since=0.0, timeout=60)


def wait_for_quiet(app: App, *, since: float, timeout: float) -> float | None:
    """Wait until the app has no unfinished work; the wall-clock time it had none, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.events is not None:
            if not app.events.unfinished(since):
                return time.time()
        elif lab_stats(app.url)["backlog"] == 0:
            return time.time()
        time.sleep(0.25)
    return None


def lab_stats(url: str) -> dict[str, int]:
    answer = httpx.get(f"{url}/stats", timeout=30)
    answer.raise_for_status()
    counts: dict[str, int] = answer.json()
    return counts


class StatsPoller:
    """Samples the lab's GET /stats in a thread: its counts over time."""

    def __init__(self, url: str, interval: float = 0.25) -> None:
        self.url, self.interval = url, interval
        self.points: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatsPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=35)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                counts = lab_stats(self.url)
                self.points.append((time.time(), counts))
            self._stop.wait(self.interval)
