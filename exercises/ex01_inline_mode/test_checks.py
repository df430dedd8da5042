"""Checks for exercise 01. Run: make check EX=01 (EXERCISE_TARGET=solution for the reference)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType

import httpx
import pytest

from exercises._target import load_target

BODY = {"data": {"order": 42, "lines": 3}, "io_ms": 0}


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex01_inline_mode")


@pytest.fixture
async def client(target: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=target.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_inline_mode_answers_200_with_the_finished_task(client: httpx.AsyncClient) -> None:
    response = await client.post("/process-data", params={"mode": "inline"}, json=BODY)
    assert response.status_code == 200, "inline work is done when we answer: 200, not 202"
    body = response.json()
    assert body["status"] == "succeeded", "the response must carry the finished task"
    assert body["result"] is not None
    assert body["result"]["keys"] == 2


async def test_inline_mode_keeps_the_status_url(client: httpx.AsyncClient) -> None:
    response = await client.post("/process-data", params={"mode": "inline"}, json=BODY)
    assert response.status_code == 200
    task = await client.get(response.json()["status_url"])
    assert task.json()["status"] == "succeeded"


async def test_background_mode_is_unchanged(client: httpx.AsyncClient) -> None:
    response = await client.post("/process-data", json=BODY)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "scheduled"
    assert response.headers["location"] == body["status_url"]
    # ASGITransport runs the background task before it returns, so it is done by now.
    assert (await client.get(body["status_url"])).json()["status"] == "succeeded"


async def test_an_unknown_mode_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/process-data", params={"mode": "later"}, json=BODY)
    assert response.status_code == 422
