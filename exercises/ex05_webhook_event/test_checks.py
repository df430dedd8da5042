"""Checks for exercise 05. Run: make check EX=05 (EXERCISE_TARGET=solution for the reference).

The app runs with its lifespan; its shared client is then swapped for one whose transport is an
in-process receiver (``httpx.MockTransport``), so a delivery that does not go through the app's
client never arrives. Signatures are verified with the ``standardwebhooks`` reference library.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from types import ModuleType

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from exercises._target import load_target
from reference_app.core.config import get_settings

RECEIVER = "http://127.0.0.1:9/hooks/cancelled"  # allowed below; nothing listens there


@pytest.fixture(autouse=True)
def allow_the_local_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("APP_WEBHOOK_ALLOW", "127.0.0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex05_webhook_event")


class Receiver:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def client(target: ModuleType, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = target.app
    async with app.router.lifespan_context(app):
        shared = app.state.http_client
        async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as mock:
            app.state.http_client = mock  # the app's one client, now ending at our receiver
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c
        app.state.http_client = shared


async def cancel(client: httpx.AsyncClient, url: str = RECEIVER) -> httpx.Response:
    body = {"webhook_url": url, "reason": "sent by mistake"}
    return await client.post("/notifications/n-42/cancel", json=body)


async def test_the_cancel_is_accepted_and_delivered_once(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    response = await cancel(client)
    assert response.status_code == 202
    assert len(receiver.requests) == 1, (
        "expected one delivery through the app's shared client (app.state.http_client)"
    )
    sent = receiver.requests[0]
    assert sent.method == "POST"
    assert sent.headers["host"] == "127.0.0.1:9"
    assert sent.headers["content-type"] == "application/json"


async def test_the_event_has_its_type_timestamp_and_data(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await cancel(client)
    assert receiver.requests, "nothing was delivered"
    event = json.loads(receiver.requests[0].content)
    assert event["type"] == "notification.cancelled"
    assert event["data"] == {"notification_id": "n-42", "reason": "sent by mistake"}
    timestamp = datetime.fromisoformat(event["timestamp"])
    assert timestamp.utcoffset() is not None, "an aware UTC timestamp, never a naive one"


async def test_the_delivery_is_signed_with_standard_webhooks(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await cancel(client)
    assert receiver.requests, "nothing was delivered"
    sent = receiver.requests[0]
    assert sent.headers["webhook-id"].startswith("msg_")
    secret = get_settings().webhook_secret.get_secret_value()
    Webhook(secret).verify(sent.content, dict(sent.headers))  # raises if the signature is wrong


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.7/hook", "ftp://x.test/"]
)
async def test_an_unsafe_url_is_refused_at_submission(
    client: httpx.AsyncClient, receiver: Receiver, url: str
) -> None:
    response = await cancel(client, url)
    assert response.status_code == 422, "check the webhook URL before accepting (SSRF guard)"
    assert receiver.requests == []
