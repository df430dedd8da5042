"""The three POST endpoints: accept durably, refuse bad input before writing anything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.db.models import Task, TaskEvent
from reference_app.main import create_app
from tests.conftest import AUTH_A, AUTH_B, ORG_A_KEY, make_settings, wait_for_status

BODIES: dict[str, dict[str, Any]] = {
    "/import-contacts": {"file_id": "contacts-2026.csv"},
    "/send-notification": {"email": "ada@example.com", "message": "Your import is done."},
    "/process-data": {"data": {"rows": [1, 2, 3]}, "io_ms": 0},
}
KINDS = {
    "/import-contacts": "import_contacts",
    "/send-notification": "send_notification",
    "/process-data": "process_data",
}
ENDPOINTS = list(BODIES)


async def count_rows(engine: AsyncEngine) -> tuple[int, int]:
    """(tasks, task_events), read through an engine that is not the app's."""
    async with engine.connect() as connection:
        tasks = await connection.scalar(select(func.count()).select_from(Task))
        events = await connection.scalar(select(func.count()).select_from(TaskEvent))
    return int(tasks or 0), int(events or 0)


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no Authorization header unless told to."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# Accepting work -------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_post_is_accepted_with_a_status_url_and_the_task_then_succeeds(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    response = await client.post(path, json=BODIES[path])

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"task_id", "status", "status_url"}
    assert body["status"] == "scheduled"
    assert body["status_url"] == f"http://testserver/tasks/{body['task_id']}"
    assert response.headers["Location"] == body["status_url"]

    task = await wait_for_status(client, body["task_id"], "succeeded", "failed")
    assert task["status"] == "succeeded", task
    assert task["kind"] == KINDS[path]
    assert task["attempts"] == 1
    assert task["result"]
    assert await count_rows(engine) == (1, 3)


async def test_process_data_inline_returns_the_finished_task_and_records_its_run(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/process-data", params={"mode": "inline"}, json={"data": {"a": 1, "b": 2}, "io_ms": 0}
    )

    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "succeeded"
    assert task["kind"] == "process_data"
    assert task["attempts"] == 1
    assert task["result"]["keys"] == 2
    assert task["result"]["io_ms"] == 0
    assert len(task["result"]["digest"]) == 64
    assert "Location" not in response.headers

    events = (await client.get(f"/tasks/{task['task_id']}/events")).json()
    assert [e["type"] for e in events] == ["task_scheduled", "task_started", "task_succeeded"]
    assert events[-1]["payload"]["result"] == task["result"]


async def test_every_inline_run_returns_its_finished_task_even_while_the_sweeper_polls(
    database_url: str,
) -> None:
    # A sweeper that polls all the time must not take an inline task away from its request.
    app = create_app(make_settings(database_url, sweep_interval_seconds=0.001))
    statuses: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH_A
        ) as client:
            for batch in range(3):
                responses = await asyncio.gather(
                    *(
                        client.post(
                            "/process-data",
                            params={"mode": "inline"},
                            json={"data": {"batch": batch, "n": n}, "io_ms": 50},
                        )
                        for n in range(10)
                    )
                )
                assert [r.status_code for r in responses] == [200] * 10
                statuses += [r.json()["status"] for r in responses]

    assert statuses == ["succeeded"] * 30


async def test_process_data_background_mode_is_the_default_and_can_be_named(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/process-data", params={"mode": "background"}, json=BODIES["/process-data"]
    )

    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"


async def test_an_unknown_mode_is_a_422_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post(
        "/process-data", params={"mode": "sideways"}, json=BODIES["/process-data"]
    )

    assert response.status_code == 422
    assert await count_rows(engine) == (0, 0)


# Schema errors: 422 ---------------------------------------------------------

INVALID_BODIES = [
    pytest.param("/import-contacts", {}, "file_id", id="import-missing-file_id"),
    pytest.param("/import-contacts", {"file_id": ""}, "file_id", id="import-empty-file_id"),
    pytest.param(
        "/import-contacts", {"file_id": "../etc/passwd"}, "file_id", id="import-path-file_id"
    ),
    pytest.param(
        "/import-contacts", {"file_id": "a.csv", "owner": "me"}, "owner", id="import-extra-field"
    ),
    pytest.param(
        "/import-contacts",
        {"file_id": "a.csv", "webhook_url": "not a url"},
        "webhook_url",
        id="import-bad-webhook",
    ),
    pytest.param(
        "/send-notification",
        {"email": "not-an-email", "message": "hi"},
        "email",
        id="notify-bad-email",
    ),
    pytest.param(
        "/send-notification", {"email": "ada@example.com"}, "message", id="notify-missing-message"
    ),
    pytest.param(
        "/send-notification",
        {"email": "ada@example.com", "message": "hi", "cc": "bob@example.com"},
        "cc",
        id="notify-extra-field",
    ),
    pytest.param("/process-data", {}, "data", id="process-missing-data"),
    pytest.param("/process-data", {"data": {}}, "data", id="process-empty-data"),
    pytest.param("/process-data", {"data": [1, 2]}, "data", id="process-data-not-object"),
    pytest.param(
        "/process-data", {"data": {"a": 1}, "io_ms": 5001}, "io_ms", id="process-io_ms-too-big"
    ),
    pytest.param(
        "/process-data", {"data": {"a": 1}, "io_ms": -1}, "io_ms", id="process-io_ms-negative"
    ),
    pytest.param(
        "/process-data", {"data": {"a": 1}, "cpu_ms": 1001}, "cpu_ms", id="process-cpu_ms-too-big"
    ),
    pytest.param(
        "/process-data", {"data": {"a": 1}, "priority": 9}, "priority", id="process-extra-field"
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), INVALID_BODIES)
async def test_a_schema_error_is_a_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(path, json=body)

    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(loc[:2] == ["body", field] for loc in locations), locations
    assert await count_rows(engine) == (0, 0)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_malformed_json_is_a_422_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    response = await client.post(
        path, content=b'{"file_id": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert await count_rows(engine) == (0, 0)


# Content type: 415 ----------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_a_body_that_is_not_declared_json_is_a_415_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(path, content=json.dumps(BODIES[path]).encode(), headers=headers)

    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["detail"]
    assert await count_rows(engine) == (0, 0)


async def test_a_json_content_type_with_parameters_or_a_json_suffix_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    content = json.dumps(BODIES["/process-data"]).encode()
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await client.post(
            "/process-data", content=content, headers={"Content-Type": content_type}
        )
        assert response.status_code == 202, (content_type, response.text)


# Body size: 413 -------------------------------------------------------------


def oversized_body(app: FastAPI, path: str) -> bytes:
    """A valid JSON body just over the app's limit."""
    limit: int = app.state.settings.max_body_bytes
    body = dict(BODIES[path])
    body["padding"] = "x" * limit
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_body_over_the_limit_with_its_content_length_is_a_json_413(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    content = oversized_body(app, path)

    response = await client.post(
        path, content=content, headers={"Content-Type": "application/json"}
    )

    assert response.request.headers["Content-Length"] == str(len(content))
    assert response.status_code == 413, response.text
    assert str(app.state.settings.max_body_bytes) in response.json()["detail"]
    assert await count_rows(engine) == (0, 0)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_streamed_body_over_the_limit_without_content_length_is_a_json_413(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    content = oversized_body(app, path)
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for start in range(0, len(content), 64 * 1024):
            chunks_sent += 1
            yield content[start : start + 64 * 1024]

    response = await client.post(
        path, content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert chunks_sent > 1
    assert response.status_code == 413, response.text
    assert str(app.state.settings.max_body_bytes) in response.json()["detail"]
    assert await count_rows(engine) == (0, 0)


async def test_a_streamed_body_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    content = json.dumps(BODIES["/process-data"]).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for byte in range(len(content)):
            yield content[byte : byte + 1]

    response = await client.post(
        "/process-data", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 202, response.text


# Authentication: 401 --------------------------------------------------------

BAD_AUTHORIZATION = [
    pytest.param(None, id="missing"),
    pytest.param("Bearer not-a-key", id="wrong-key"),
    pytest.param(f"Bearer {ORG_A_KEY}x", id="key-with-suffix"),
    pytest.param("Bearer ", id="empty-bearer"),
    pytest.param(f"Basic {ORG_A_KEY}", id="basic-scheme"),
    pytest.param(f"Token {ORG_A_KEY}", id="token-scheme"),
    pytest.param(ORG_A_KEY, id="no-scheme"),
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION)
async def test_a_missing_or_bad_api_key_is_a_401_asking_for_bearer_and_writes_nothing(
    anonymous: httpx.AsyncClient, engine: AsyncEngine, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = await anonymous.post(path, json=BODIES[path], headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "API key" in response.json()["detail"]
    assert await count_rows(engine) == (0, 0)


# Idempotency-Key ------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_the_same_idempotency_key_and_body_return_the_same_task(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    headers = {"Idempotency-Key": "order-42"}

    first = await client.post(path, json=BODIES[path], headers=headers)
    second = await client.post(path, json=BODIES[path], headers=headers)

    assert first.status_code == second.status_code == 202, second.text
    assert first.json()["task_id"] == second.json()["task_id"]
    assert second.headers["Location"] == first.headers["Location"]
    tasks, _ = await count_rows(engine)
    assert tasks == 1
    task = await wait_for_status(client, first.json()["task_id"], "succeeded", "failed")
    assert task["attempts"] == 1  # the replay did not run the work again


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_the_same_idempotency_key_with_another_body_is_a_409(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post(path, json=BODIES[path], headers=headers)
    changed = {**BODIES[path], "webhook_url": "https://hooks.example.com/done"}

    second = await client.post(path, json=changed, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 409, second.text
    assert "Idempotency-Key" in second.json()["detail"]
    tasks, _ = await count_rows(engine)
    assert tasks == 1


async def test_the_same_idempotency_key_on_another_endpoint_is_a_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    first = await client.post(
        "/send-notification", json=BODIES["/send-notification"], headers=headers
    )

    second = await client.post("/process-data", json=BODIES["/process-data"], headers=headers)

    assert first.status_code == 202
    assert second.status_code == 409
    assert (await count_rows(engine))[0] == 1


async def test_idempotency_keys_belong_to_one_org(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    body = BODIES["/process-data"]

    from_a = await client.post("/process-data", json=body, headers=headers)
    from_b = await client.post("/process-data", json=body, headers={**headers, **AUTH_B})

    assert from_a.status_code == from_b.status_code == 202
    assert from_a.json()["task_id"] != from_b.json()["task_id"]
    assert (await count_rows(engine))[0] == 2
    # Each org sees its own task and not the other's.
    a_id, b_id = from_a.json()["task_id"], from_b.json()["task_id"]
    assert (await client.get(f"/tasks/{a_id}")).status_code == 200
    assert (await client.get(f"/tasks/{b_id}")).status_code == 404
    assert (await client.get(f"/tasks/{b_id}", headers=AUTH_B)).status_code == 200


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_concurrent_requests_with_one_idempotency_key_create_exactly_one_task(
    client: httpx.AsyncClient, engine: AsyncEngine, path: str
) -> None:
    headers = {"Idempotency-Key": f"burst-{path.strip('/')}"}

    responses = await asyncio.gather(
        *(client.post(path, json=BODIES[path], headers=headers) for _ in range(8))
    )

    assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
    assert len({r.json()["task_id"] for r in responses}) == 1
    async with engine.connect() as connection:
        scheduled = await connection.scalar(
            select(func.count()).select_from(TaskEvent).where(TaskEvent.type == "task_scheduled")
        )
    assert (await count_rows(engine))[0] == 1
    assert scheduled == 1


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 300, id="300-chars"),
        pytest.param("has space", id="space"),
        pytest.param("", id="empty"),
        pytest.param("tab\there", id="tab"),
    ],
)
async def test_an_invalid_idempotency_key_is_a_422_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, key: str
) -> None:
    response = await client.post(
        "/process-data", json=BODIES["/process-data"], headers={"Idempotency-Key": key}
    )

    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert ["header", "Idempotency-Key"] in locations
    assert await count_rows(engine) == (0, 0)


async def test_an_idempotency_key_of_255_printable_characters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/process-data", json=BODIES["/process-data"], headers={"Idempotency-Key": "k" * 255}
    )

    assert response.status_code == 202, response.text
