"""reference_app.testing: a real uvicorn process, its JSON log, and a stop by PID."""

import os
import signal
from pathlib import Path

import httpx
import pytest

from reference_app.testing import free_port, live_server, start_server

pytestmark = pytest.mark.live


def test_live_server_serves_logs_and_stops(tmp_path: Path) -> None:
    env = {"APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/app.db", "APP_LOG_FORMAT": "json"}
    with live_server(env=env, log_path=tmp_path / "server.log") as server:
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        pid = server.pid
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "app_started" in {record.get("event") for record in server.logs()}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # really gone


def test_none_in_env_removes_a_variable_and_kill_is_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "not-a-valid-env")  # would stop the app from starting
    server = start_server(
        env={"APP_ENV": None, "APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/app.db"}
    )
    try:
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        assert server.kill() == -signal.SIGKILL


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="validation error for Settings"):
        start_server(
            env={"APP_ENV": "nonsense", "APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db"}
        )


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
