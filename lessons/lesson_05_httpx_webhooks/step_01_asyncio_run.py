"""Step 1: the guide's webhook. A sync task calls ``asyncio.run()`` with a new client per call.

Kept as written in the guide, to measure it against step 2. Every delivery starts an event
loop in a threadpool thread, builds and throws away an ``AsyncClient`` (its connection pool
and TLS context), and opens a new TCP connection. The URL check accepts any scheme and host.

Run: .venv/bin/uvicorn lessons.lesson_05_httpx_webhooks.step_01_asyncio_run:app --port 8000
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from urllib.parse import urlparse

import anyio.to_thread
import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException
from pydantic import BaseModel

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)

app = FastAPI(title="Lesson 05, step 1: asyncio.run and a client per call")


class NotifyIn(BaseModel):
    webhook_url: str
    message: str


def guide_url_is_valid(url: str) -> bool:
    """The guide's check: a scheme and a host. It never asks where the host points."""
    parsed = urlparse(url)
    return bool(parsed.scheme and parsed.netloc)


async def send_webhook(url: str, payload: dict[str, Any]) -> int:
    async with httpx.AsyncClient(timeout=10.0) as client:  # a new pool, TLS context, connection
        response = await client.post(url, json=payload)
        return response.status_code


def deliver(url: str, payload: dict[str, Any]) -> None:
    """A sync ``def``: Starlette runs it in the threadpool, where it blocks one thread."""
    started = time.perf_counter()
    try:
        status_code = asyncio.run(send_webhook(url, payload))  # a new event loop per call
    except httpx.HTTPError as exc:
        log.warning("webhook_failed", error_type=type(exc).__name__)
        return
    log.info(
        "webhook_sent",
        status_code=status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        thread=threading.current_thread().name,
    )


@app.post("/notify", status_code=202)
async def notify(body: NotifyIn, background_tasks: BackgroundTasks) -> dict[str, str]:
    if not guide_url_is_valid(body.webhook_url):
        raise HTTPException(status_code=422, detail="invalid webhook URL")
    background_tasks.add_task(deliver, body.webhook_url, {"message": body.message})
    return {"status": "accepted"}


@app.get("/threadpool")
async def threadpool() -> dict[str, int]:
    """How many of the threadpool's tokens (40 by default) running sync code holds right now."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    return {"borrowed": limiter.borrowed_tokens, "total": int(limiter.total_tokens)}
