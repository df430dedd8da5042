"""A webhook receiver for the fan-out scenario: answers 204 after ``BENCH_RECEIVER_DELAY_MS``.

    uvicorn benchmarks._receiver:app --port 8090

A plain ASGI app (no framework), so that the receiver costs as little as
possible. GET /count tells how many deliveries arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DELAY_SECONDS = float(os.environ.get("BENCH_RECEIVER_DELAY_MS", "20")) / 1000
_received = 0


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global _received
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body
        more = (await receive()).get("more_body", False)
    if scope["method"] == "GET" and scope["path"] == "/count":
        body = json.dumps({"received": _received}).encode()
        await _answer(send, 200, body, b"application/json")
    elif scope["method"] == "POST" and scope["path"] == "/hook":
        await asyncio.sleep(DELAY_SECONDS)  # a receiver that does a little work before it answers
        _received += 1
        await _answer(send, 204, b"", None)
    else:
        await _answer(send, 404, b"", None)


async def _answer(send: Send, status: int, body: bytes, content_type: bytes | None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
