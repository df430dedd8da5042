"""A real webhook receiver on 127.0.0.1 that counts deliveries per ``webhook-id``.

A stdlib HTTP server in a thread of the scenario's own process, so the app under test
(another process) reaches it over real TCP. The path picks the answer:

``/ok`` 204 at once, ``/slow-ok`` 204 after ``slow_ok_seconds`` (inside the app's read
timeout), ``/slow`` 204 after ``slow_seconds`` (past it), ``/error`` 500, ``/throttled``
429 with ``Retry-After``, ``/bad`` 400 (a refusal no retry changes).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Delivery", "Receiver"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST that reached the receiver, and what it answered."""

    path: str
    webhook_id: str
    status: int
    at: float


class Receiver:
    """Counts every POST by ``webhook-id``; a 2xx for an id seen before is a duplicate."""

    def __init__(
        self,
        *,
        slow_ok_seconds: float = 0.1,
        slow_seconds: float = 2.0,
        retry_after: str = "1",
    ) -> None:
        self.slow_ok_seconds = slow_ok_seconds
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.deliveries: list[Delivery] = []
        self.holding = 0
        """Requests arrived and not yet answered (on the wire, as the app sees them)."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        port: int = self.server.server_address[1]
        return f"http://127.0.0.1:{port}{path}"

    def record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def accepted_by_id(self) -> Counter[str]:
        """How many times each ``webhook-id`` was answered with a 2xx."""
        return Counter(d.webhook_id for d in self.snapshot() if 200 <= d.status < 300)

    def duplicates(self) -> int:
        """Side effects done twice: 2xx answers for a ``webhook-id`` beyond its first."""
        return sum(count - 1 for count in self.accepted_by_id().values())

    def hold(self, seconds: float) -> None:
        """Keep a request unanswered for ``seconds`` (less if the receiver stops)."""
        with self._lock:
            self.holding += 1
        try:
            self._stopping.wait(seconds)
        finally:
            with self._lock:
                self.holding -= 1

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            status, delay, headers = _answer_for(receiver, self.path)
            # Recorded on arrival: a slow receiver has the side effect even if the app gives up.
            webhook_id = self.headers.get("webhook-id", "")
            receiver.record(Delivery(self.path, webhook_id, status, time.monotonic()))
            if delay:
                receiver.hold(delay)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _answer_for(receiver: Receiver, path: str) -> tuple[int, float, dict[str, str]]:
    """(status, seconds to wait before answering, extra headers) for ``path``."""
    match path:
        case "/ok":
            return 204, 0.0, {}
        case "/slow-ok":
            return 204, receiver.slow_ok_seconds, {}
        case "/slow":
            return 204, receiver.slow_seconds, {}
        case "/error":
            return 500, 0.0, {}
        case "/throttled":
            return 429, 0.0, {"Retry-After": receiver.retry_after}
        case "/bad":
            return 400, 0.0, {}
        case _:
            return 404, 0.0, {}
