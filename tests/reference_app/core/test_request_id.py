"""Request ids: a safe X-Request-ID is kept, anything else replaced, and both reach the task."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from reference_app.core.request_id import REQUEST_ID_HEADER, RequestIdMiddleware, valid_request_id
from tests.conftest import wait_for_status

GENERATED = re.compile(r"[0-9a-f]{32}")
VALID = ["a", "req-123", "01J8Z6:span.7_retry", "A" * 128]
INVALID = [
    "",
    "A" * 129,
    "has space",
    "<script>alert(1)</script>",
    "-starts-with-a-dash",
    ".hidden",
    "path/like",
    'quote"d',
    "tab\there",
    "ünïcode",
]


async def _echo_context(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "bound": structlog.contextvars.get_contextvars().get("request_id"),
            "state": request.state.request_id,
        }
    )


@pytest.fixture
async def echo() -> AsyncIterator[httpx.AsyncClient]:
    """A bare app behind the middleware that reports the request id it sees."""
    app = Starlette(
        routes=[Route("/", _echo_context)], middleware=[Middleware(RequestIdMiddleware)]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("value", VALID)
def test_a_safe_id_is_valid(value: str) -> None:
    assert valid_request_id(value) == value


@pytest.mark.parametrize("value", [*INVALID, None])
def test_an_unsafe_or_missing_id_is_not(value: str | None) -> None:
    assert valid_request_id(value) is None


@pytest.mark.parametrize("value", VALID)
async def test_a_valid_id_is_echoed_and_bound(echo: httpx.AsyncClient, value: str) -> None:
    response = await echo.get("/", headers={REQUEST_ID_HEADER: value})

    assert response.headers[REQUEST_ID_HEADER] == value
    assert response.json() == {"bound": value, "state": value}


@pytest.mark.parametrize("value", [v for v in INVALID if v.isascii()])
async def test_an_invalid_id_is_replaced_by_a_generated_one(
    echo: httpx.AsyncClient, value: str
) -> None:
    response = await echo.get("/", headers={REQUEST_ID_HEADER: value})

    echoed = response.headers[REQUEST_ID_HEADER]
    assert GENERATED.fullmatch(echoed)
    assert response.json() == {"bound": echoed, "state": echoed}


async def test_a_non_ascii_id_is_replaced_by_a_generated_one(echo: httpx.AsyncClient) -> None:
    raw = [(REQUEST_ID_HEADER.encode(), "ünïcode".encode())]
    response = await echo.get("/", headers=raw)

    assert GENERATED.fullmatch(response.headers[REQUEST_ID_HEADER])


async def test_every_request_without_an_id_gets_its_own(echo: httpx.AsyncClient) -> None:
    first = await echo.get("/", headers={REQUEST_ID_HEADER: "first-request"})
    second = await echo.get("/")
    third = await echo.get("/")

    ids = [r.headers[REQUEST_ID_HEADER] for r in (first, second, third)]
    assert ids[0] == "first-request"
    assert GENERATED.fullmatch(ids[1])
    assert GENERATED.fullmatch(ids[2])
    assert len(set(ids)) == 3
    assert second.json()["bound"] == ids[1]


async def test_error_responses_carry_the_id_too(client: httpx.AsyncClient) -> None:
    unauthenticated = await client.get(
        "/tasks/whatever", headers={"Authorization": "", REQUEST_ID_HEADER: "req-401"}
    )
    not_found = await client.get("/tasks/whatever", headers={REQUEST_ID_HEADER: "req-404"})

    assert (unauthenticated.status_code, unauthenticated.headers[REQUEST_ID_HEADER]) == (
        401,
        "req-401",
    )
    assert (not_found.status_code, not_found.headers[REQUEST_ID_HEADER]) == (404, "req-404")


@pytest.mark.parametrize("sent", ["req-into-task-9", "bad id with spaces", None])
async def test_the_id_of_the_request_is_in_its_tasks_log_context_and_stored(
    client: httpx.AsyncClient, sent: str | None
) -> None:
    headers = {} if sent is None else {REQUEST_ID_HEADER: sent}
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await client.post(
            "/send-notification",
            json={"email": "ann@example.com", "message": "hello"},
            headers=headers,
        )
        task_id = response.json()["task_id"]
        await wait_for_status(client, task_id, "succeeded")

    request_id = response.headers[REQUEST_ID_HEADER]
    assert request_id == sent if sent == "req-into-task-9" else GENERATED.fullmatch(request_id)
    task_logs = [e for e in logs if e.get("task_id") == task_id]
    assert [e["event"] for e in task_logs] == ["task_started", "task_succeeded"]
    assert {e["request_id"] for e in task_logs} == {request_id}
    events = (await client.get(f"/tasks/{task_id}/events")).json()
    assert events[0]["payload"]["request_id"] == request_id
