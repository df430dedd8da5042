"""Step 4: the SSRF guard. A webhook URL is user input that makes the server send requests.

Checked twice. At submission: ``check_url`` refuses loopback, private, link-local (cloud
metadata) and other internal addresses in every spelling, with a 422 that says why. At send
time: ``resolve_checked`` resolves the host and checks every address, and the request goes to
the address that was checked, so DNS that changes its answer in between cannot redirect it.
``APP_WEBHOOK_ALLOW=127.0.0.1`` lets the local demo receiver through.

Run: APP_WEBHOOK_ALLOW=127.0.0.1 \
    .venv/bin/uvicorn lessons.lesson_05_httpx_webhooks.step_04_ssrf_guard:app --port 8000
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, SecretStr

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.webhooks.client import create_http_client
from reference_app.webhooks.signing import signature_headers
from reference_app.webhooks.ssrf import AllowList, UnsafeURL, check_url, resolve_checked

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


app = FastAPI(title="Lesson 05, step 4: the SSRF guard", lifespan=lifespan)


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http_client  # the lifespan's, for every task
    return client


HttpClient = Annotated[httpx.AsyncClient, Depends(get_http_client)]


class NotifyIn(BaseModel):
    webhook_url: str
    message: str


def checked_url(url: str) -> str:
    """The submission check: a 422 that tells the user what is wrong with the URL."""
    try:
        return check_url(url, AllowList.from_setting(get_settings().webhook_allow))
    except UnsafeURL as exc:
        raise HTTPException(status_code=422, detail=f"webhook_url is not allowed: {exc}") from None


async def deliver(
    client: httpx.AsyncClient, url: str, msg_id: str, body: bytes, secrets: list[SecretStr]
) -> None:
    """Sign the exact bytes we send, with every configured key (two during a key rotation)."""
    target = httpx.URL(url)
    try:
        port = target.port or (443 if target.scheme == "https" else 80)
        allow = AllowList.from_setting(get_settings().webhook_allow)
        addresses = await resolve_checked(target.host, port, allow)
    except UnsafeURL as exc:
        log.warning("webhook_blocked", reason=str(exc))
        return
    headers = signature_headers(secrets, msg_id=msg_id, timestamp=int(time.time()), body=body)
    headers.update({"content-type": "application/json", "host": target.netloc.decode()})
    try:
        # Connect to the address just checked, keeping the name for the Host header and TLS.
        response = await client.post(
            target.copy_with(host=str(addresses[0])),
            content=body,
            headers=headers,
            extensions={"sni_hostname": target.host},
        )
    except httpx.HTTPError as exc:
        log.warning("webhook_failed", error_type=type(exc).__name__)
        return
    log.info("webhook_sent", msg_id=msg_id, status_code=response.status_code)


@app.post("/notify", status_code=202)
async def notify(
    body: NotifyIn, background_tasks: BackgroundTasks, client: HttpClient
) -> dict[str, str]:
    url = checked_url(body.webhook_url)
    payload = {"type": "notification.sent", "data": {"message": body.message}}
    content = json.dumps(payload, separators=(",", ":")).encode()  # the exact bytes signed
    msg_id = f"msg_{uuid.uuid4().hex}"  # one id per message, the same on every retry
    secrets = get_settings().webhook_secrets  # the current key, and the old one while rotating
    background_tasks.add_task(deliver, client, url, msg_id, content, secrets)
    return {"status": "accepted"}
