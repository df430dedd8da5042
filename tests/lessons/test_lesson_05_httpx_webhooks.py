"""Lesson 05: asyncio.run with a client per call against one shared client, timeouts,
Standard Webhooks signatures, and the SSRF guard, against a real receiver on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import importlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reference_app.core.config import DEMO_WEBHOOK_SECRET, get_settings
from reference_app.testing import LiveServer, live_server
from reference_app.webhooks.ssrf import UnsafeURL, check_url

ROOT = Path(__file__).resolve().parents[2]
LESSON = "lessons.lesson_05_httpx_webhooks"
ENV = {"APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "INFO"}
DELIVERIES = 12
SLOW_SECONDS = 2.0  # the receiver's delay in the slow tests
READ_TIMEOUT = "0.5"  # the shared client's read timeout in the live tests: below SLOW_SECONDS
PREVIOUS_SECRET = "whsec_" + base64.b64encode(b"lesson-05-previous-key-32-bytes!").decode()

# What the guide's check lets through, and why check_url refuses each one.
INTERNAL_URLS = [
    pytest.param("http://169.254.169.254/latest/meta-data/", "link-local", id="cloud-metadata"),
    pytest.param("http://127.1/admin", "non-standard spelling", id="short-loopback"),
    pytest.param("http://[::ffff:10.0.0.1]/", "IPv6 form of 10.0.0.1", id="ipv6-mapped-private"),
]


def step(name: str) -> ModuleType:
    return importlib.import_module(f"{LESSON}.{name}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[LiveServer]:
    with live_server(f"{LESSON}.receiver:app", env=ENV, cwd=ROOT) as server:
        yield server


@pytest.fixture(scope="module")
def per_call_server() -> Iterator[LiveServer]:
    with live_server(f"{LESSON}.step_01_asyncio_run:app", env=ENV, cwd=ROOT) as server:
        yield server


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LiveServer]:
    env = {**ENV, "APP_WEBHOOK_READ_TIMEOUT_SECONDS": READ_TIMEOUT}
    with live_server(f"{LESSON}.step_02_shared_client:app", env=env, cwd=ROOT) as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set ``APP_*`` variables for in-process apps, which read ``get_settings()`` at startup."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"APP_{name.upper()}", value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()  # monkeypatch restores the environment after this


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` in-process with its lifespan running. Background tasks finish before a response."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c,
    ):
        yield c


def hook(receiver: LiveServer, name: str, host: str = "127.0.0.1", query: str = "") -> str:
    return f"http://{host}:{receiver.port}/hooks/{name}{query}"


def seen(receiver: LiveServer, name: str) -> dict[str, Any]:
    response = httpx.get(f"{receiver.url}/hooks/{name}", timeout=5)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def logged(server: LiveServer, event: str) -> list[dict[str, Any]]:
    return [record for record in server.logs() if record.get("event") == event]


def wait_for_logged(server: LiveServer, event: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(logged(server, event)) < count:
        assert time.monotonic() < deadline, f"{event} not logged {count} times"
        time.sleep(0.01)
    return logged(server, event)


def wait_for_requests(receiver: LiveServer, name: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while seen(receiver, name)["requests"] < count:
        assert time.monotonic() < deadline, f"{name} did not get {count} requests"
        time.sleep(0.01)
    return seen(receiver, name)


def deliver_one_by_one(server: LiveServer, url: str, count: int) -> list[dict[str, Any]]:
    """``count`` deliveries, each sent once the one before is logged; their ``webhook_sent``."""
    before = len(logged(server, "webhook_sent"))
    for n in range(1, count + 1):
        response = httpx.post(f"{server.url}/notify", json={"webhook_url": url, "message": str(n)})
        assert response.status_code == 202
        wait_for_logged(server, "webhook_sent", before + n)
    return logged(server, "webhook_sent")[before:]


# The guide's URL check against the SSRF guard ---------------------------------------------


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
def test_the_guides_check_accepts_internal_addresses(url: str, reason: str) -> None:
    assert step("step_01_asyncio_run").guide_url_is_valid(url) is True


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
def test_check_url_refuses_them_and_says_why(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url)


async def test_the_guides_check_lets_a_request_reach_a_loopback_service(
    receiver: LiveServer,
) -> None:
    name = f"internal-{uuid.uuid4().hex[:8]}"
    async with serving(step("step_01_asyncio_run").app) as client:
        url = hook(receiver, name, host="127.1")  # loopback, spelled so a naive check misses it
        response = await client.post("/notify", json={"webhook_url": url, "message": "hi"})

    assert response.status_code == 202
    assert seen(receiver, name)["requests"] == 1  # the "internal service" got the request


@pytest.mark.parametrize(("url", "reason"), INTERNAL_URLS)
async def test_step_04_refuses_them_with_a_422_that_says_why(
    env: Callable[..., None], url: str, reason: str
) -> None:
    env(webhook_allow="127.0.0.1")  # even with the demo receiver's address allowed
    async with serving(step("step_04_ssrf_guard").app) as client:
        response = await client.post("/notify", json={"webhook_url": url, "message": "hi"})

    assert response.status_code == 422
    assert reason in response.json()["detail"]


async def test_step_04_refuses_the_short_loopback_spelling_of_an_allowed_receiver(
    env: Callable[..., None], receiver: LiveServer
) -> None:
    env(webhook_allow="127.0.0.1")
    name = f"internal-{uuid.uuid4().hex[:8]}"
    async with serving(step("step_04_ssrf_guard").app) as client:
        url = hook(receiver, name, host="127.1")
        response = await client.post("/notify", json={"webhook_url": url, "message": "hi"})

    assert response.status_code == 422
    assert "non-standard spelling of the IPv4 address 127.0.0.1" in response.json()["detail"]
    assert seen(receiver, name)["requests"] == 0


async def test_step_04_sends_a_signed_message_to_the_checked_address_of_an_allowed_receiver(
    env: Callable[..., None], receiver: LiveServer
) -> None:
    env(webhook_allow="127.0.0.1")
    name = f"allowed-{uuid.uuid4().hex[:8]}"
    async with serving(step("step_04_ssrf_guard").app) as client:
        response = await client.post(
            "/notify", json={"webhook_url": hook(receiver, name), "message": "hi"}
        )

    assert response.status_code == 202
    (delivery,) = seen(receiver, name)["received"]
    assert delivery["verified"] is True
    assert delivery["host_header"] == f"127.0.0.1:{receiver.port}"


# Signatures ------------------------------------------------------------------------------


async def test_step_03_signatures_verify_with_the_standardwebhooks_package(
    env: Callable[..., None], receiver: LiveServer
) -> None:
    env(webhook_previous_secret=PREVIOUS_SECRET)  # a key rotation: signed with both keys
    name = f"signed-{uuid.uuid4().hex[:8]}"
    async with serving(step("step_03_signed").app) as client:
        response = await client.post(
            "/notify", json={"webhook_url": hook(receiver, name), "message": "hello"}
        )

    assert response.status_code == 202
    (delivery,) = seen(receiver, name)["received"]
    headers, body = delivery["webhook_headers"], delivery["body"].encode()
    assert headers["webhook-id"].startswith("msg_")
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (DEMO_WEBHOOK_SECRET, PREVIOUS_SECRET):  # a receiver with either key accepts
        payload = Webhook(secret).verify(body, headers)
        assert payload == {"type": "notification.sent", "data": {"message": "hello"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(DEMO_WEBHOOK_SECRET).verify(body.replace(b"hello", b"HELLO"), headers)


async def test_the_guides_unsigned_delivery_does_not_verify(receiver: LiveServer) -> None:
    name = f"unsigned-{uuid.uuid4().hex[:8]}"
    async with serving(step("step_02_shared_client").app) as client:
        await client.post("/notify", json={"webhook_url": hook(receiver, name), "message": "hi"})

    (delivery,) = seen(receiver, name)["received"]
    assert delivery["webhook_headers"] == {}
    assert delivery["verified"] is False


# The shared client -----------------------------------------------------------------------


async def test_the_shared_client_has_explicit_timeouts_and_is_closed_at_shutdown(
    env: Callable[..., None],
) -> None:
    env(
        webhook_connect_timeout_seconds="1.5",
        webhook_read_timeout_seconds="2.5",
        webhook_write_timeout_seconds="3.5",
        webhook_pool_timeout_seconds="4.5",
    )
    app = step("step_02_shared_client").app
    async with serving(app):
        client: httpx.AsyncClient = app.state.http_client
        assert client.timeout == httpx.Timeout(connect=1.5, read=2.5, write=3.5, pool=4.5)
        assert client.follow_redirects is False
        assert not client.is_closed

    assert client.is_closed


@pytest.mark.live
def test_a_client_per_call_opens_a_connection_per_delivery_and_the_shared_one_reuses_it(
    receiver: LiveServer, per_call_server: LiveServer, shared_server: LiveServer
) -> None:
    per_call_name, shared_name = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("per", "shared"))

    per_call = deliver_one_by_one(per_call_server, hook(receiver, per_call_name), DELIVERIES)
    shared = deliver_one_by_one(shared_server, hook(receiver, shared_name), DELIVERIES)

    per_call_seen, shared_seen = seen(receiver, per_call_name), seen(receiver, shared_name)
    assert per_call_seen["requests"] == shared_seen["requests"] == DELIVERIES
    assert per_call_seen["connections"] == DELIVERIES  # a new TCP connection every time
    assert shared_seen["connections"] < DELIVERIES  # kept alive and reused
    assert {e["thread"] for e in per_call} == {"AnyIO worker thread"}  # a threadpool thread
    assert {e["thread"] for e in shared} == {"MainThread"}  # the app's event loop
    per_call_ms = statistics.median(e["duration_ms"] for e in per_call)
    shared_ms = statistics.median(e["duration_ms"] for e in shared)
    print(f"median per delivery: per call {per_call_ms} ms, shared {shared_ms} ms")
    assert per_call_ms > shared_ms  # same run, same receiver: an ordering, not a threshold


@pytest.mark.live
def test_while_the_receiver_hangs_a_sync_task_holds_a_thread_and_the_read_timeout_ends_an_async_one(
    receiver: LiveServer, per_call_server: LiveServer, shared_server: LiveServer
) -> None:
    timeouts_before = len(logged(shared_server, "webhook_failed"))
    borrowed: dict[str, int] = {}
    for server in (per_call_server, shared_server):
        name = f"slow-{uuid.uuid4().hex[:8]}"
        url = hook(receiver, name, query=f"?delay={SLOW_SECONDS}")
        response = httpx.post(f"{server.url}/notify", json={"webhook_url": url, "message": "x"})
        assert response.status_code == 202
        wait_for_requests(receiver, name, 1)
        borrowed[server.url] = httpx.get(f"{server.url}/threadpool").json()["borrowed"]

    assert borrowed[per_call_server.url] >= 1  # a thread blocked in asyncio.run, for the whole wait
    assert borrowed[shared_server.url] == 0  # an await on the event loop holds no thread
    failed = wait_for_logged(shared_server, "webhook_failed", timeouts_before + 1)
    assert failed[timeouts_before]["error_type"] == "ReadTimeout"
