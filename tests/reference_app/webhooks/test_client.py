"""The app's one HTTP client: explicit timeouts and limits, no redirects, no proxies from env."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from reference_app.webhooks.client import USER_AGENT, create_http_client
from tests.reference_app.webhooks.conftest import (
    METADATA_URL,
    Receiver,
    ScriptedReceiver,
    build_app,
    free_port,
    running,
    submit,
    wait_for_delivery,
    webhook_settings,
)

HOOK = "http://127.0.0.1:9/hook"


def _pool(client: httpx.AsyncClient) -> Any:
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    return transport._pool


async def test_every_timeout_is_explicit() -> None:
    async with create_http_client() as client:
        assert client.timeout == httpx.Timeout(connect=3.0, read=10.0, write=10.0, pool=5.0)


async def test_timeouts_and_limits_come_from_the_arguments() -> None:
    async with create_http_client(
        connect_timeout=0.5,
        read_timeout=1.5,
        write_timeout=2.5,
        pool_timeout=3.5,
        max_connections=7,
        max_keepalive_connections=3,
    ) as client:
        pool = _pool(client)

        assert client.timeout == httpx.Timeout(connect=0.5, read=1.5, write=2.5, pool=3.5)
        assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)


async def test_connection_limits_are_set_by_default() -> None:
    async with create_http_client() as client:
        pool = _pool(client)

        assert (pool._max_connections, pool._max_keepalive_connections) == (100, 20)


async def test_redirects_are_not_followed() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(301, headers={"Location": METADATA_URL})

    async with create_http_client(transport=httpx.MockTransport(handler)) as client:
        response = await client.post("https://hooks.example.com/x", content=b"{}")

    assert client.follow_redirects is False
    assert response.status_code == 301
    assert seen == [httpx.URL("https://hooks.example.com/x")]


async def test_the_given_transport_carries_the_requests_with_our_user_agent() -> None:
    network = ScriptedReceiver()

    async with create_http_client(transport=network.transport) as client:
        response = await client.post("https://hooks.example.com/x", content=b'{"a":1}')

    assert response.status_code == 200
    assert [(s.url, s.body) for s in network.sent] == [
        (httpx.URL("https://hooks.example.com/x"), b'{"a":1}')
    ]
    assert network.sent[0].headers["user-agent"] == USER_AGENT


async def test_proxies_from_the_environment_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would connect on our behalf, to an address the SSRF guard never checked.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)

    async with httpx.AsyncClient(trust_env=True) as trusting:
        # The control: a client that trusts the environment dials the dead proxy instead.
        with pytest.raises(httpx.ConnectError):
            await trusting.post(receiver.url("/ok"), content=b"{}")
    assert receiver.seen("/ok") == []
    async with create_http_client() as client:
        response = await client.post(receiver.url("/ok"), content=b"{}")

    assert client.trust_env is False
    assert response.status_code == 200
    assert len(receiver.seen("/ok")) == 1


# One client for the app's life ----------------------------------------------------------

SendMethod = Callable[..., Awaitable[httpx.Response]]


async def test_every_delivery_goes_through_the_one_client_of_the_app(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = ScriptedReceiver()
    senders: list[tuple[httpx.AsyncClient, httpx.URL]] = []
    real_send: SendMethod = httpx.AsyncClient.send

    async def spying_send(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        senders.append((self, request.url))
        return await real_send(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", spying_send)
    app: FastAPI = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        shared = app.state.http_client
        task_ids = [await submit(client, f"{HOOK}/{n}") for n in range(4)]
        for task_id in task_ids:
            task = await wait_for_delivery(client, task_id)
            assert task["webhook"]["status"] == "delivered"
        assert app.state.http_client is shared
        assert not shared.is_closed

    webhook_senders = [c for c, url in senders if url.host == "127.0.0.1"]
    assert len(network.sent) == 4
    assert sorted(s.url.path for s in network.sent) == [f"/hook/{n}" for n in range(4)]
    assert len(webhook_senders) == 4
    assert all(c is shared for c in webhook_senders)
    # Closed at shutdown, after the tasks that use it drained.
    assert shared.is_closed


async def test_each_app_gets_its_own_client(database_url: str) -> None:
    first, second = (
        build_app(webhook_settings(database_url)),
        build_app(webhook_settings(database_url)),
    )

    async with running(first), running(second):
        assert first.state.http_client is not second.state.http_client
        assert first.state.http_client.timeout == httpx.Timeout(
            connect=3.0, read=10.0, write=10.0, pool=5.0
        )


async def test_the_client_takes_its_timeouts_and_limits_from_settings(database_url: str) -> None:
    settings = webhook_settings(
        database_url,
        webhook_connect_timeout_seconds=0.4,
        webhook_read_timeout_seconds=0.3,
        webhook_write_timeout_seconds=0.2,
        webhook_pool_timeout_seconds=0.1,
        webhook_max_connections=9,
    )
    app = build_app(settings)

    async with running(app):
        client = app.state.http_client
        assert client.timeout == httpx.Timeout(connect=0.4, read=0.3, write=0.2, pool=0.1)
        assert _pool(client)._max_connections == 9
        assert client.follow_redirects is False
        assert client.trust_env is False
