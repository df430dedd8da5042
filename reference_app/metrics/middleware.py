"""The accept timer: how long each 202 took, from the request's arrival to its status line.

Pure ASGI and outermost, so it times what the app adds, body limit and request id included.
It reads the clock twice per request and looks at one message, the response's start.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference_app.metrics.recorder import Recorder, route_template

__all__ = ["AcceptTimer"]


class AcceptTimer:
    def __init__(self, app: ASGIApp, *, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 202:
                self.recorder.accepted_in(route_template(scope), time.perf_counter() - arrived)
            await send(message)

        await self.app(scope, receive, timed_send)
