"""Deliberately slow apps for the Locust smoke tests, served by uvicorn from the repo root."""

import asyncio
import time

from fastapi import FastAPI

SLOW_SECONDS = 0.25
FROZEN_SECONDS = 0.1

slow = FastAPI()
frozen = FastAPI()


@slow.get("/health")
async def slow_health() -> dict[str, str]:
    """Over the 200 ms budget, but concurrent: every request waits the same."""
    await asyncio.sleep(SLOW_SECONDS)
    return {"status": "ok"}


@frozen.get("/health")
async def frozen_health() -> dict[str, str]:
    """Blocks the event loop: requests are served one at a time, 10 per second at most."""
    time.sleep(FROZEN_SECONDS)  # noqa: ASYNC251 - the point of this app
    return {"status": "ok"}
