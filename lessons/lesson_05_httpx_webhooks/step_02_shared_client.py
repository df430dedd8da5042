"""Step 2: one ``AsyncClient`` for the app, made in the lifespan; the task is an ``async def``.

The task runs on the app's event loop and awaits the shared client, whose pool keeps the
connection to the receiver open between deliveries. Every timeout is explicit (connect, read,
write, pool) and comes from settings; the client is closed at shutdown, after uvicorn has
waited for the requests and their background tasks.

Run: .venv/bin/uvicorn lessons.lesson_05_httpx_webhooks.step_02_shared_client:app --port 8000
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import urlparse

import anyio.to_thread
import httpx
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.webhooks.client import create_http_client

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    s = get_settings()
    async with create_http_client(  # every timeout explicit; closed when the app stops
        connect_timeout=s.webhook_connect_timeout_seconds,
        read_timeout=s.webhook_read_timeout_seconds,
        write_timeout=s.webhook_write_timeout_seconds,
        pool_timeout=s.webhook_pool_timeout_seconds,
        max_connections=s.webhook_max_connections,
    ) as client:
        app.state.http_client = client
        yield


app = FastAPI(title="Lesson 05, step 2: one shared AsyncClient", lifespan=lifespan)


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http_client  # the lifespan's, for every task
    return client


HttpClient = Annotated[httpx.AsyncClient, Depends(get_http_client)]


class NotifyIn(BaseModel):
    webhook_url: str
    message: str


def guide_url_is_valid(url: str) -> bool:
    """The guide's check: a scheme and a host. It never asks where the host points."""
    parsed = urlparse(url)
    return bool(parsed.scheme and parsed.netloc)


async def deliver(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> None:
    """An ``async def``: it runs on the app's event loop, and waiting costs it nothing."""
    started = time.perf_counter()
    try:
        response = await client.post(url, json=payload)
    except httpx.HTTPError as exc:
        log.warning("webhook_failed", error_type=type(exc).__name__)
        return
    log.info(
        "webhook_sent",
        status_code=response.status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        thread=threading.current_thread().name,
    )


@app.post("/notify", status_code=202)
async def notify(
    body: NotifyIn, background_tasks: BackgroundTasks, client: HttpClient
) -> dict[str, str]:
    if not guide_url_is_valid(body.webhook_url):
        raise HTTPException(status_code=422, detail="invalid webhook URL")
    background_tasks.add_task(deliver, client, body.webhook_url, {"message": body.message})
    return {"status": "accepted"}


@app.get("/threadpool")
async def threadpool() -> dict[str, int]:
    """How many of the threadpool's tokens (40 by default) running sync code holds right now."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    return {"borrowed": limiter.borrowed_tokens, "total": int(limiter.total_tokens)}
