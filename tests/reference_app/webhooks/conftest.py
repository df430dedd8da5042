"""Webhook test kit: the app with a fake network, and a real receiver on 127.0.0.1.

Unit-ish tests hand ``create_app`` an ``httpx.MockTransport`` driven by a
:class:`ScriptedReceiver` and a :class:`FakeResolver`. Integration tests use
the :func:`receiver` fixture: a stdlib HTTP server in a thread whose fault
mode is chosen by the request path.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from reference_app.core.config import Settings
from reference_app.main import create_app
from reference_app.tasks.context import Handler
from reference_app.webhooks.ssrf import Resolver, system_resolver
from tests.conftest import AUTH_A, make_settings

__all__ = [
    "METADATA_URL",
    "PREVIOUS_SECRET",
    "SECRET",
    "WAIT",
    "FakeResolver",
    "Receiver",
    "ScriptedReceiver",
    "build_app",
    "delivery_events",
    "events_of",
    "free_port",
    "running",
    "submit",
    "verify",
    "wait_for_delivery",
    "webhook_settings",
]

WAIT = 15.0
SECRET = "whsec_" + base64.b64encode(b"webhook-tests-current-key-32-b!!").decode()
PREVIOUS_SECRET = "whsec_" + base64.b64encode(b"webhook-tests-previous-key-32-b!").decode()
METADATA_URL = "http://169.254.169.254/latest/meta-data/"
# How long the receiver's slow mode hangs at most; teardown releases it sooner.
SLOW_HANG_SECONDS = 20.0


def webhook_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings with a known secret, 127.0.0.1 allowed, and millisecond retries."""
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_allow": "127.0.0.1",
        "webhook_max_attempts": 3,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_cap_seconds": 0.2,
    }
    values.update(overrides)
    return make_settings(database_url, **values)


def build_app(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
    handlers: Mapping[str, Handler] | None = None,
) -> FastAPI:
    return create_app(settings, http_transport=transport, resolver=resolver, handlers=handlers)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan running, and an org A client over ASGI."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=AUTH_A
        ) as client,
    ):
        yield client


async def submit(
    client: httpx.AsyncClient, webhook_url: str, headers: dict[str, str] | None = None
) -> str:
    """Accept a quick ``process_data`` task that reports to ``webhook_url``; its id."""
    response = await client.post(
        "/process-data",
        json={"data": {"n": 1}, "io_ms": 0, "webhook_url": webhook_url},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def wait_for_delivery(
    client: httpx.AsyncClient,
    task_id: str,
    *statuses: str,
    seconds: float = WAIT,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll ``GET /tasks/{id}`` until its webhook delivery is in one of ``statuses``."""
    wanted = statuses or ("delivered", "failed")
    async with asyncio.timeout(seconds):
        while True:
            response = await client.get(f"/tasks/{task_id}", headers=headers)
            assert response.status_code == 200, response.text
            task: dict[str, Any] = response.json()
            if task["webhook"] is not None and task["webhook"]["status"] in wanted:
                return task
            await asyncio.sleep(0.02)


async def events_of(
    client: httpx.AsyncClient, task_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    response = await client.get(f"/tasks/{task_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def delivery_events(task: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of ``task``'s webhook delivery stream, from the parent's event list."""
    delivery_id = task["webhook"]["delivery_id"]
    return [e for e in events if e["stream_id"] == delivery_id]


def verify(headers: Any, body: bytes, secret: str = SECRET) -> dict[str, Any]:
    """The payload, once the reference implementation has checked its signature."""
    payload: dict[str, Any] = Webhook(secret).verify(body, dict(headers))
    return payload


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# A fake network for MockTransport --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A request that reached the fake network."""

    url: httpx.URL
    headers: httpx.Headers
    body: bytes
    extensions: dict[str, Any]
    at: datetime


Step = httpx.Response | Exception


@dataclass
class ScriptedReceiver:
    """A MockTransport handler that answers with ``script`` in order, the last step forever.

    A step is a response or an exception to raise (``httpx.ConnectError(...)``).
    ``gate``, when set, holds every request until the test opens it; ``arrived`` is set
    by the first request.
    """

    script: Sequence[Step] = (httpx.Response(200),)
    gate: asyncio.Event | None = None
    sent: list[Sent] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append(
            Sent(request.url, request.headers, body, dict(request.extensions), datetime.now(UTC))
        )
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        step = self.script[min(len(self.sent), len(self.script)) - 1]
        if isinstance(step, Exception):
            raise step
        return httpx.Response(step.status_code, headers=step.headers, content=b"")

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


@dataclass
class FakeResolver:
    """DNS answers by host name, and the lookups made."""

    answers: dict[str, list[str]]
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[host]


# A real receiver on 127.0.0.1 -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime


class Receiver:
    """A stdlib HTTP server in a thread; the request path picks the answer.

    ``/ok`` 200, ``/error`` 500, ``/busy`` 503 with ``Retry-After: 1``, ``/throttled``
    429, ``/gone`` 410, ``/flaky`` 503 twice then 200, ``/slow`` hangs until released,
    ``/redirect`` 301 to the cloud metadata address, ``/redirect-self`` 301 to ``/ok``.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.hanging = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def seen(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def record(self, received: Received) -> int:
        """Keep ``received``; how many requests its path has had, this one included."""
        with self._lock:
            self.received.append(received)
            return sum(r.path == received.path for r in self.received)

    @contextmanager
    def hang(self) -> Iterator[None]:
        """Count a request as hanging while the block runs."""
        with self._lock:
            self.hanging += 1
        try:
            yield
        finally:
            with self._lock:
                self.hanging -= 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _lowered(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            nth = receiver.record(
                Received(self.path, _lowered(self.headers.items()), body, datetime.now(UTC))
            )
            match self.path:
                case "/ok":
                    self._answer(200)
                case "/error":
                    self._answer(500)
                case "/busy":
                    self._answer(503, {"Retry-After": "1"})
                case "/throttled":
                    self._answer(429)
                case "/gone":
                    self._answer(410)
                case "/flaky":
                    self._answer(503 if nth <= 2 else 200)
                case "/slow":
                    with receiver.hang():
                        receiver.release.wait(SLOW_HANG_SECONDS)
                    self._answer(200)
                case "/redirect":
                    self._answer(301, {"Location": METADATA_URL})
                case "/redirect-self":
                    self._answer(301, {"Location": receiver.url("/ok")})
                case _:
                    self._answer(404)

        def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1, on a free port; stopped at teardown."""
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()
