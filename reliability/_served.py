"""The reference app under real uvicorn on 127.0.0.1: its settings, its keys, its start and stop.

Every scenario runs the app this way. The input, attack and soak scenarios use
``SERVED_SETTINGS`` through ``serve``; the fault scenarios use ``FAST_SETTINGS`` through
``start_app``, since they kill and restart servers themselves.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from reference_app.testing import LiveServer, start_server

__all__ = [
    "AUTH_A",
    "AUTH_B",
    "FAST_SETTINGS",
    "ORG_A_KEY",
    "ORG_B_KEY",
    "ROOT",
    "SERVED_SETTINGS",
    "app_env",
    "assert_up",
    "backend_of",
    "serve",
    "start_app",
    "stop_all",
]

ROOT = Path(__file__).resolve().parents[1]
APP = "reference_app.main:app"
ORG_A_KEY = "demo-key-org-a"
ORG_B_KEY = "demo-key-org-b"
AUTH_A = {"Authorization": f"Bearer {ORG_A_KEY}"}
AUTH_B = {"Authorization": f"Bearer {ORG_B_KEY}"}

# Settings by their field names (``lease_seconds``), without the ``APP_`` prefix.
SERVED_SETTINGS: dict[str, str] = {
    "log_format": "json",
    "migrate_on_startup": "false",  # fresh_database has migrated it
    "sweep_interval_seconds": "0.2",
}
# Fast sweeps, short leases, quick retries: a fault heals in seconds, not in minutes.
# The webhook SSRF guard refuses 127.0.0.1 unless allowed: the receiver lives there.
FAST_SETTINGS: dict[str, str] = {
    "env": "test",
    "log_format": "json",
    "log_level": "INFO",
    "sweep_interval_seconds": "0.2",
    "lease_seconds": "2",
    "shutdown_grace_seconds": "2",
    "task_retry_base_seconds": "0.05",
    "task_retry_cap_seconds": "0.2",
    "webhook_allow": "127.0.0.1",
    "webhook_max_attempts": "3",
    "webhook_retry_base_seconds": "0.05",
    "webhook_retry_cap_seconds": "0.5",
}


def backend_of(database_url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``, as the report names them."""
    return str(make_url(database_url).get_backend_name())


def app_env(database_url: str, settings: Mapping[str, str]) -> dict[str, str | None]:
    """The app's ``APP_`` variables: the database and ``settings``, and none from the caller's
    shell (a None value removes it)."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("APP_")}
    env["APP_DATABASE_URL"] = database_url
    env.update({f"APP_{name.upper()}": value for name, value in settings.items()})
    return env


def start_app(
    database_url: str,
    settings: Mapping[str, str] = SERVED_SETTINGS,
    *,
    args: Sequence[str] = (),
    log_path: Path | None = None,
) -> LiveServer:
    """The reference app on a free port of 127.0.0.1, once it accepts connections.

    The caller stops it (``stop_all``, or ``kill()`` for a crash).
    """
    env = app_env(database_url, settings)
    return start_server(APP, env=env, args=args, log_path=log_path, startup_timeout=60.0, cwd=ROOT)


def stop_all(servers: Iterable[LiveServer]) -> None:
    """Stop every server still running, by PID (SIGTERM, then SIGKILL)."""
    for server in servers:
        server.stop(timeout=10.0)


@contextlib.contextmanager
def serve(
    database_url: str,
    settings: Mapping[str, str] = SERVED_SETTINGS,
    *,
    args: Sequence[str] = ("--timeout-graceful-shutdown", "5"),
    log_path: Path | None = None,
) -> Iterator[LiveServer]:
    """``start_app`` once ``GET /health`` answers; stopped by PID on exit."""
    server = start_app(database_url, settings, args=args, log_path=log_path)
    try:
        assert_up(server.url)
        yield server
    finally:
        server.stop()


def assert_up(url: str, seconds: float = 10.0) -> None:
    """Raise unless ``GET /health`` answers 200 within ``seconds``."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
        except httpx.HTTPError as exc:
            last = repr(exc)
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        time.sleep(0.05)
    raise AssertionError(f"the server at {url} is not healthy: {last}")
