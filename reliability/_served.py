"""The reference app under real uvicorn on 127.0.0.1, for the input, attack and soak scenarios."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from reference_app.testing import LiveServer, live_server

__all__ = [
    "AUTH_A",
    "AUTH_B",
    "ORG_A_KEY",
    "ORG_B_KEY",
    "ROOT",
    "assert_up",
    "backend_name",
    "serve",
    "server_env",
]

ROOT = Path(__file__).resolve().parents[1]
ORG_A_KEY = "demo-key-org-a"
ORG_B_KEY = "demo-key-org-b"
AUTH_A = {"Authorization": f"Bearer {ORG_A_KEY}"}
AUTH_B = {"Authorization": f"Bearer {ORG_B_KEY}"}


def backend_name(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def server_env(database_url: str, **extra: str) -> dict[str, str | None]:
    """Only the ``APP_`` variables given here: none leak in from the caller's shell."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APP_")}
    env.update(
        APP_DATABASE_URL=database_url,
        APP_LOG_FORMAT="json",
        APP_MIGRATE_ON_STARTUP="false",  # fresh_database has migrated it
        APP_SWEEP_INTERVAL_SECONDS="0.2",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(
    database_url: str,
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    args: tuple[str, ...] = ("--timeout-graceful-shutdown", "5"),
) -> Iterator[LiveServer]:
    """The reference app on a free port; stopped by PID on exit."""
    with live_server(
        "reference_app.main:app",
        env=server_env(database_url, **(env or {})),
        log_path=log_path,
        cwd=ROOT,
        args=list(args),
    ) as server:
        assert_up(server.url)
        yield server


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
