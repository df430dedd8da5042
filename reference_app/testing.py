"""Run an app under a real uvicorn process on 127.0.0.1, for tests, lessons and benchmarks.

``TestClient`` and httpx's ``ASGITransport`` run background tasks before they
return the response, so they cannot show what a user of a real server sees.
This starts one, reads its JSON log, and stops it by PID.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LiveServer", "free_port", "live_server", "start_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A uvicorn subprocess serving one app on 127.0.0.1."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL: the process dies mid-flight, as in a crash."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        return self.process.returncode


def start_server(
    app: str = "reference_app.main:app",
    *,
    env: Mapping[str, str | None] | None = None,
    port: int | None = None,
    args: Sequence[str] = (),
    log_path: Path | None = None,
    startup_timeout: float = 30.0,
    cwd: Path | None = None,
) -> LiveServer:
    """Start ``app`` under uvicorn and return once it accepts connections.

    ``env`` is added to this process's environment (a None value removes the
    variable). The caller must stop the
    server (``stop()`` or ``kill()``); prefer the ``live_server`` context manager.
    """
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="live-server-", suffix=".log", dir=_log_dir())
        os.close(handle)
        log_path = Path(name)
    # A free port can be taken by another process between our look and uvicorn's bind (two
    # test workers do this all the time): then our uvicorn exits, and we try another port.
    for _ in range(1 if port else 5):
        server = _launch(app, port or free_port(), env, args, log_path, cwd)
        if _wait_until_listening(server, startup_timeout):
            return server
    raise RuntimeError(f"uvicorn exited with {server.process.returncode}:\n{server.log_text()}")


def _launch(
    app: str,
    port: int,
    env: Mapping[str, str | None] | None,
    args: Sequence[str],
    log_path: Path,
    cwd: Path | None,
) -> LiveServer:
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += args
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_environment(env or {}),
            cwd=cwd,
        )
    return LiveServer(f"http://127.0.0.1:{port}", port, process, log_path, command)


def _wait_until_listening(server: LiveServer, timeout: float) -> bool:
    """True once ``server`` itself listens on its port; False if it exited (port taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if _listens(server.pid, server.port):
            return True
        time.sleep(0.05)
    server.kill()
    raise TimeoutError(f"uvicorn did not listen on {server.port} within {timeout}s")


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` listens on ``port`` of 127.0.0.1.

    A connection alone can reach another process that took the port; on Linux, /proc tells
    whose socket it is. Elsewhere a connection is the best we can check.
    """
    try:
        sockets = {
            link[len("socket:[") : -1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if (link := _readlink(f"/proc/{pid}/fd/{fd}")).startswith("socket:[")
        }
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False
    listening = "0A"
    for row in table:
        fields = row.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == listening and fields[9] in sockets:
            return True
    return False


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # the descriptor closed meanwhile
        return ""


@functools.cache
def _log_dir() -> str:
    """A folder for logs nobody asked to keep, removed when this interpreter exits."""
    folder = tempfile.TemporaryDirectory(prefix="live-servers-")
    atexit.register(folder.cleanup)
    return folder.name


def _environment(changes: Mapping[str, str | None]) -> dict[str, str]:
    environment = {**os.environ}
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


@contextlib.contextmanager
def live_server(app: str = "reference_app.main:app", **options: Any) -> Iterator[LiveServer]:
    """``start_server`` as a context manager that always stops the process."""
    server = start_server(app, **options)
    try:
        yield server
    finally:
        server.stop()
