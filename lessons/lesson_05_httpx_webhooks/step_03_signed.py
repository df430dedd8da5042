"""Step 3: sign every delivery with the Standard Webhooks scheme.

The body is serialised once, and signed as bytes: ``webhook-signature`` is ``v1,`` +
base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")). ``webhook-id`` is made
once per message, so a retry carries the same id and the receiver can de-duplicate;
``webhook-timestamp`` is the time of this attempt, so the receiver can refuse replays.

Run: .venv/bin/uvicorn lessons.lesson_05_httpx_webhooks.step_03_signed:app --port 8000
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import urlparse

import httpx
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, SecretStr

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.webhooks.client import create_http_client
from reference_app.webhooks.signing import signature_headers

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


app = FastAPI(title="Lesson 05, step 3: signed deliveries", lifespan=lifespan)


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


async def deliver(
    client: httpx.AsyncClient, url: str, msg_id: str, body: bytes, secrets: list[SecretStr]
) -> None:
    """Sign the exact bytes we send, with every configured key (two during a key rotation)."""
    headers = signature_headers(secrets, msg_id=msg_id, timestamp=int(time.time()), body=body)
    try:
        response = await client.post(
            url, content=body, headers={**headers, "content-type": "application/json"}
        )
    except httpx.HTTPError as exc:
        log.warning("webhook_failed", error_type=type(exc).__name__)
        return
    log.info("webhook_sent", msg_id=msg_id, status_code=response.status_code)


@app.post("/notify", status_code=202)
async def notify(
    body: NotifyIn, background_tasks: BackgroundTasks, client: HttpClient
) -> dict[str, str]:
    if not guide_url_is_valid(body.webhook_url):
        raise HTTPException(status_code=422, detail="invalid webhook URL")
    payload = {"type": "notification.sent", "data": {"message": body.message}}
    content = json.dumps(payload, separators=(",", ":")).encode()  # the exact bytes signed
    msg_id = f"msg_{uuid.uuid4().hex}"  # one id per message, the same on every retry
    secrets = get_settings().webhook_secrets  # the current key, and the old one while rotating
    background_tasks.add_task(deliver, client, body.webhook_url, msg_id, content, secrets)
    return {"status": "accepted"}
