"""A request body limit, enforced by pure ASGI middleware before anything parses the body."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "too_large_detail"]


def too_large_detail(limit: int) -> str:
    return f"Request body is larger than the {limit}-byte limit; send a smaller body."


class BodyLimitMiddleware:
    """413 for bodies over ``max_body_bytes``.

    A declared ``Content-Length`` over the limit is refused before the app runs.
    A body without one (chunked) is counted as it streams in; the first byte
    over the limit raises ``HTTPException(413)``, which the app's handler turns
    into the same JSON answer. Starlette's own middleware does the counting too,
    but answers a declared oversize in plain text.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            response = JSONResponse(
                {"detail": too_large_detail(self.max_body_bytes)}, status_code=413
            )
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, too_large_detail(self.max_body_bytes))
            return message

        await self.app(scope, receive_within_limit, send)
