"""benchmarks._plain_app: the plain route takes the reference app's body and answers 202."""

from __future__ import annotations

import httpx
import pytest

from benchmarks import _plain_app
from benchmarks._plain_app import app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_post_is_accepted_and_its_background_task_runs(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []

    async def record(io_ms: int) -> None:
        ran.append(io_ms)

    monkeypatch.setattr(_plain_app, "pretend_io", record)
    async with client:
        answer = await client.post("/process-data", json={"data": {"n": 1}, "io_ms": 0})
    assert answer.status_code == 202
    assert answer.json() == {"status": "scheduled"}
    assert ran == [0]  # ASGITransport runs background tasks before it returns


async def test_the_body_is_the_reference_apps_model(client: httpx.AsyncClient) -> None:
    async with client:
        empty = await client.post("/process-data", json={"data": {}})
        extra = await client.post("/process-data", json={"data": {"n": 1}, "nope": 1})
    assert (empty.status_code, extra.status_code) == (422, 422)
