"""reference_app.testing: a real uvicorn process, its JSON log, and a stop by PID."""

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reference_app import testing
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
    # A port of its own: without one, start_server tries five ports before it gives up.
    with pytest.raises(RuntimeError, match="validation error for Settings"):
        start_server(
            env={"APP_ENV": "nonsense", "APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db"},
            port=free_port(),
        )


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other server already listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_port_another_process_listens_on_is_not_mistaken_for_ours(
    tmp_path: Path, taken_port: int
) -> None:
    # Connecting succeeds (the other server answers), but the uvicorn we started cannot bind.
    with pytest.raises(RuntimeError, match="address already in use"):
        start_server(
            env={"APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/app.db"}, port=taken_port
        )


def test_a_free_port_taken_before_uvicorn_binds_it_is_replaced(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([taken_port, free_port()])  # as when another test worker got there first
    monkeypatch.setattr(testing, "free_port", lambda: next(ports))
    env = {"APP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/app.db"}

    with live_server(env=env) as server:
        assert server.port != taken_port
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
