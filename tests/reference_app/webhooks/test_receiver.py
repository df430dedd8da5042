"""Deliveries to a real HTTP receiver on 127.0.0.1, one fault mode per path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.reference_app.webhooks.conftest import (
    WAIT,
    Receiver,
    build_app,
    delivery_events,
    events_of,
    free_port,
    running,
    submit,
    verify,
    wait_for_delivery,
    webhook_settings,
)

MAX_ATTEMPTS = 3  # webhook_settings' webhook_max_attempts
CAP = 0.2  # webhook_settings' webhook_retry_cap_seconds


def expected_stream(failures: int, delivered: bool) -> list[str]:
    """The event types of a delivery that failed ``failures`` attempts, then ended."""
    types = ["task_scheduled"]
    for attempt in range(1, failures + 1):
        gave_up = not delivered and attempt == failures
        decision = "task_failed" if gave_up else "retry_scheduled"
        types += ["task_started", "attempt_failed", decision]
    if delivered:
        types += ["task_started", "task_succeeded"]
    return types


def failed_attempts(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"] for e in stream if e["type"] == "attempt_failed"]


async def eventually(check: Callable[[], bool], seconds: float = WAIT) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("path", "statuses", "final"),
    [
        pytest.param("/ok", [200], "delivered", id="200"),
        pytest.param("/error", [500, 500, 500], "failed", id="500"),
        pytest.param("/busy", [503, 503, 503], "failed", id="503-retry-after"),
        pytest.param("/throttled", [429, 429, 429], "failed", id="429"),
        pytest.param("/flaky", [503, 503, 200], "delivered", id="503-then-200"),
        pytest.param("/gone", [410], "failed", id="410"),
    ],
)
async def test_the_receiver_sees_signed_retries_under_one_id_until_the_final_state(
    database_url: str, receiver: Receiver, path: str, statuses: list[int], final: str
) -> None:
    app = build_app(webhook_settings(database_url))

    async with running(app) as client:
        task_id = await submit(client, receiver.url(path))
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    seen = receiver.seen(path)
    assert len(seen) == len(statuses)
    assert len(receiver.received) == len(statuses)  # nothing went anywhere else
    assert {r.headers["webhook-id"] for r in seen} == {seen[0].headers["webhook-id"]}
    for request in seen:
        payload = verify(request.headers, request.body)
        assert payload["type"] == "task.succeeded"
        assert payload["data"]["task_id"] == task_id
    assert task["webhook"]["status"] == final
    assert task["webhook"]["attempts"] == len(statuses)
    delivered = final == "delivered"
    failures = len(statuses) - 1 if delivered else len(statuses)
    assert [e["type"] for e in stream] == expected_stream(failures, delivered)
    assert [a["status_code"] for a in failed_attempts(stream)] == statuses[:failures]
    assert [a["attempt"] for a in failed_attempts(stream)] == list(range(1, failures + 1))
    if delivered:
        assert stream[-1]["payload"]["result"] == {"status_code": 200}


async def test_retry_after_from_the_receiver_is_clamped_to_the_cap(
    database_url: str, receiver: Receiver
) -> None:
    app = build_app(webhook_settings(database_url))

    async with running(app) as client:
        task_id = await submit(client, receiver.url("/busy"))  # Retry-After: 1
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    retries = [e["payload"] for e in stream if e["type"] == "retry_scheduled"]
    assert [r["delay_seconds"] for r in retries] == [CAP, CAP]
    first, second, third = receiver.seen("/busy")
    assert (second.at - first.at).total_seconds() >= CAP
    assert (third.at - second.at).total_seconds() >= CAP


async def test_after_a_410_the_receiver_gets_no_more_deliveries_at_that_url(
    database_url: str, receiver: Receiver
) -> None:
    app = build_app(webhook_settings(database_url))

    async with running(app) as client:
        first = await wait_for_delivery(client, await submit(client, receiver.url("/gone")))
        second = await wait_for_delivery(client, await submit(client, receiver.url("/gone")))

    assert len(receiver.seen("/gone")) == 1
    assert first["webhook"]["status"] == second["webhook"]["status"] == "failed"
    assert second["webhook"]["attempts"] == 1
    assert "410 Gone before" in second["webhook"]["last_error"]


async def test_a_receiver_slower_than_the_read_timeout_is_retried_and_the_app_stays_responsive(
    database_url: str, receiver: Receiver
) -> None:
    app = build_app(webhook_settings(database_url, webhook_read_timeout_seconds=0.3))

    async with running(app) as client:
        task_id = await submit(client, receiver.url("/slow"))
        await eventually(lambda: receiver.hanging >= 1)
        health = await client.get("/health")
        hanging_after_health = receiver.hanging
        other = await wait_for_delivery(client, await submit(client, receiver.url("/ok")))
        task = await wait_for_delivery(client, task_id)
        hanging_at_the_end = receiver.hanging
        stream = delivery_events(task, await events_of(client, task_id))

    # The receiver was still holding a request when the app answered.
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert hanging_after_health >= 1
    assert other["webhook"]["status"] == "delivered"
    seen = receiver.seen("/slow")
    assert len(seen) == MAX_ATTEMPTS
    assert {r.headers["webhook-id"] for r in seen} == {seen[0].headers["webhook-id"]}
    assert task["webhook"]["status"] == "failed"
    assert [e["type"] for e in stream] == expected_stream(MAX_ATTEMPTS, delivered=False)
    attempts = failed_attempts(stream)
    assert [a["error_type"] for a in attempts] == ["ReadTimeout"] * MAX_ATTEMPTS
    assert all("status_code" not in a for a in attempts)
    assert all(a["transient"] for a in attempts)
    # Each attempt gave up at the read timeout: the receiver still held all three requests.
    assert hanging_at_the_end == MAX_ATTEMPTS


async def test_a_refused_connection_is_retried_then_fails(database_url: str) -> None:
    app = build_app(webhook_settings(database_url))
    url = f"http://127.0.0.1:{free_port()}/hook"

    async with running(app) as client:
        task_id = await submit(client, url)
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert task["webhook"]["status"] == "failed"
    assert task["webhook"]["attempts"] == MAX_ATTEMPTS
    assert [e["type"] for e in stream] == expected_stream(MAX_ATTEMPTS, delivered=False)
    attempts = failed_attempts(stream)
    assert [a["error_type"] for a in attempts] == ["ConnectError"] * MAX_ATTEMPTS
    assert all("status_code" not in a for a in attempts)
    assert task["webhook"]["last_error"].startswith("ConnectError:")


@pytest.mark.parametrize("path", ["/redirect", "/redirect-self"])
async def test_a_redirect_is_a_failed_delivery_and_its_target_gets_nothing(
    database_url: str, receiver: Receiver, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every request the app's client puts on the wire, followed redirects included.
    wire: list[httpx.URL] = []
    real = httpx.AsyncHTTPTransport.handle_async_request

    async def recording(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        wire.append(request.url)
        return await real(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", recording)
    app = build_app(webhook_settings(database_url))

    async with running(app) as client:
        task_id = await submit(client, receiver.url(path))
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert wire == [httpx.URL(receiver.url(path))]
    assert [r.path for r in receiver.received] == [path]  # /ok never hit, for /redirect-self
    assert task["webhook"]["status"] == "failed"
    assert task["webhook"]["attempts"] == 1
    assert "not followed" in task["webhook"]["last_error"]
    [attempt] = failed_attempts(stream)
    assert attempt["status_code"] == 301
    assert attempt["transient"] is False
