"""Request ids: accepted from ``X-Request-ID`` when safe, generated otherwise, echoed back."""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware", "valid_request_id"]

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it is a safe request id (1-128 chars of ``[A-Za-z0-9._:-]``), else None."""
    if value is not None and _SAFE.fullmatch(value):
        return value
    return None


class RequestIdMiddleware:
    """Bind a request id into the log context of the request and of the tasks it schedules.

    Pure ASGI, so the contextvars it sets are visible to the endpoint and to the
    background tasks Starlette runs after the response, in the same asyncio task.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = valid_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        structlog.contextvars.clear_contextvars()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_request_id)
