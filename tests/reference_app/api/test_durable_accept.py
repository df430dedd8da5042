"""Every 202 has exactly one committed ``task_scheduled`` before the response is sent.

The check runs inside the ASGI ``send`` of the response body: at that moment
a second engine, on its own connection, must already see the committed event.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference_app.db.models import Task, TaskEvent
from tests.conftest import AUTH_A, AUTH_B

REQUESTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "/import-contacts": lambda n: {"file_id": f"contacts-{n}.csv"},
    "/send-notification": lambda n: {"email": f"user{n}@example.com", "message": f"hello {n}"},
    "/process-data": lambda n: {"data": {"n": n}, "io_ms": 0},
}
PER_ENDPOINT = 24
CONCURRENCY = 8
# A task the sweeper or the request's own background task already picked up.
ACCEPTED_STATUSES = {"scheduled", "running", "retrying", "succeeded", "failed"}


@dataclass(frozen=True)
class Observation:
    """What the database held at the moment a 202 body was about to be sent."""

    task_id: uuid.UUID
    scheduled_events: int
    first_event: str | None
    task_status: str | None


class CheckBeforeSend:
    """Wraps the app; on each 202 body, reads the database before passing the body on."""

    def __init__(self, app: ASGIApp, engine: AsyncEngine) -> None:
        self.app = app
        self.engine = engine
        self.observations: list[Observation] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status: int | None = None
        body = b""

        async def checking_send(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 202:
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    task_id = uuid.UUID(json.loads(body)["task_id"])
                    self.observations.append(await self._observe(task_id))
            await send(message)

        await self.app(scope, receive, checking_send)

    async def _observe(self, task_id: uuid.UUID) -> Observation:
        async with self.engine.connect() as connection:
            scheduled = await connection.scalar(
                select(func.count())
                .select_from(TaskEvent)
                .where(TaskEvent.task_id == task_id, TaskEvent.type == "task_scheduled")
            )
            first = await connection.scalar(
                select(TaskEvent.type).where(TaskEvent.task_id == task_id, TaskEvent.version == 1)
            )
            task_status = await connection.scalar(select(Task.status).where(Task.id == task_id))
        return Observation(task_id, int(scheduled or 0), first, task_status)


@pytest.fixture
def checked(app: FastAPI, engine: AsyncEngine) -> CheckBeforeSend:
    return CheckBeforeSend(app, engine)


@pytest.fixture
async def checked_client(checked: CheckBeforeSend) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=checked)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _post_many(
    client: httpx.AsyncClient, path: str, bodies: list[dict[str, Any]], **kwargs: Any
) -> list[httpx.Response]:
    responses: list[httpx.Response] = []
    for start in range(0, len(bodies), CONCURRENCY):
        batch = bodies[start : start + CONCURRENCY]
        responses += await asyncio.gather(*(client.post(path, json=b, **kwargs) for b in batch))
    return responses


def _assert_durable(observations: list[Observation], responses: list[httpx.Response]) -> None:
    accepted = [uuid.UUID(r.json()["task_id"]) for r in responses if r.status_code == 202]
    assert len(accepted) == len(responses), [r.text for r in responses if r.status_code != 202]
    # The check ran once per 202, for exactly the tasks the clients were given.
    assert sorted(o.task_id for o in observations) == sorted(accepted)
    for seen in observations:
        assert seen.scheduled_events == 1, seen
        assert seen.first_event == "task_scheduled", seen
        assert seen.task_status in ACCEPTED_STATUSES, seen


@pytest.mark.parametrize("path", list(REQUESTS))
async def test_every_202_has_one_committed_task_scheduled_before_its_body_is_sent(
    checked: CheckBeforeSend, checked_client: httpx.AsyncClient, path: str
) -> None:
    bodies = [REQUESTS[path](n) for n in range(PER_ENDPOINT)]

    responses = await _post_many(checked_client, path, bodies, headers=AUTH_A)

    _assert_durable(checked.observations, responses)
    assert len({r.json()["task_id"] for r in responses}) == PER_ENDPOINT


async def test_the_invariant_holds_across_endpoints_and_orgs_posting_at_once(
    checked: CheckBeforeSend, checked_client: httpx.AsyncClient
) -> None:
    calls = [
        checked_client.post(path, json=make(n), headers=auth)
        for n in range(6)
        for path, make in REQUESTS.items()
        for auth in (AUTH_A, AUTH_B)
    ]

    responses = list(await asyncio.gather(*calls))

    _assert_durable(checked.observations, responses)
    assert len(checked.observations) == 36


async def test_an_idempotent_replay_still_points_at_one_committed_task_scheduled(
    checked: CheckBeforeSend, checked_client: httpx.AsyncClient
) -> None:
    body = REQUESTS["/process-data"](1)
    headers = {**AUTH_A, "Idempotency-Key": "replayed"}

    responses = await _post_many(checked_client, "/process-data", [body] * 6, headers=headers)

    _assert_durable(checked.observations, responses)
    assert len({o.task_id for o in checked.observations}) == 1


async def test_the_check_sees_nothing_for_a_refused_request(
    checked: CheckBeforeSend, checked_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # The wrapper only inspects 202s; a 422 reaches the client untouched and writes nothing.
    response = await checked_client.post("/process-data", json={"data": {}}, headers=AUTH_A)

    assert response.status_code == 422
    assert checked.observations == []
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(TaskEvent)) == 0


async def test_the_check_catches_a_202_sent_before_its_task_is_committed(
    engine: AsyncEngine,
) -> None:
    async def premature_app(scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps({"task_id": str(uuid.uuid4()), "status": "scheduled"}).encode()
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": body})

    checked = CheckBeforeSend(premature_app, engine)
    transport = httpx.ASGITransport(app=checked)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/process-data", json={})

    assert response.status_code == 202
    with pytest.raises(AssertionError):
        _assert_durable(checked.observations, [response])
    assert checked.observations[0].scheduled_events == 0
