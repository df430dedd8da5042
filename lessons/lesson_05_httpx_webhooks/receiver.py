"""Lesson 05's webhook receiver: a stand-in for a customer's endpoint, or an internal service.

Run: .venv/bin/uvicorn lessons.lesson_05_httpx_webhooks.receiver:app --port 9100

``POST /hooks/{name}`` records the request and answers 200 (after ``?delay=`` seconds, at
most 30). ``GET /hooks/{name}`` tells what arrived under that name: how many requests, over
how many TCP connections (distinct client ports: a reused keep-alive connection keeps its
port), and whether each one's Standard Webhooks signature verifies with ``APP_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reference_app.core.config import get_settings

app = FastAPI(title="Lesson 05: a webhook receiver")
verifier = Webhook(get_settings().webhook_secret.get_secret_value())
RECEIVED: dict[str, list[dict[str, Any]]] = {}


def _verifies(body: bytes, headers: dict[str, str]) -> bool:
    try:
        verifier.verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@app.post("/hooks/{name}")
async def receive(name: str, request: Request, delay: float = 0.0) -> dict[str, bool]:
    body = await request.body()  # verify the raw bytes, before any JSON parsing
    headers = dict(request.headers)
    client_port = request.client.port if request.client else None
    RECEIVED.setdefault(name, []).append(
        {
            "client_port": client_port,
            "host_header": headers.get("host"),
            "webhook_headers": {k: v for k, v in headers.items() if k.startswith("webhook-")},
            "body": body.decode(errors="replace"),
            "verified": _verifies(body, headers),
        }
    )
    await asyncio.sleep(min(delay, 30.0))
    return {"ok": True}


@app.get("/hooks/{name}")
async def seen(name: str) -> dict[str, Any]:
    requests = RECEIVED.get(name, [])
    return {
        "requests": len(requests),
        "connections": len({r["client_port"] for r in requests}),
        "verified": sum(r["verified"] for r in requests),
        "received": requests,
    }
