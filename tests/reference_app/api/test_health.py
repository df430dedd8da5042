"""Liveness, readiness, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

ENDPOINTS = {
    ("post", "/import-contacts"),
    ("post", "/send-notification"),
    ("post", "/process-data"),
    ("get", "/tasks/{task_id}"),
    ("get", "/tasks/{task_id}/events"),
    ("get", "/health"),
    ("get", "/ready"),
}
AUTHENTICATED = {
    ("post", "/import-contacts"),
    ("post", "/send-notification"),
    ("post", "/process-data"),
    ("get", "/tasks/{task_id}"),
    ("get", "/tasks/{task_id}/events"),
}


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_health_answers_without_an_api_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_ignores_a_bad_api_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health", headers={"Authorization": "Bearer wrong"})

    assert response.status_code == 200


async def test_ready_reports_the_database_as_ok(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok"}


async def test_every_response_carries_a_request_id(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health", headers={"X-Request-ID": "probe-1"})

    assert response.headers["X-Request-ID"] == "probe-1"


@pytest.fixture
async def openapi(anonymous: httpx.AsyncClient) -> dict[str, Any]:
    response = await anonymous.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_openapi_lists_every_endpoint(openapi: dict[str, Any]) -> None:
    listed = {(method, path) for path, item in openapi["paths"].items() for method in item}

    assert listed == ENDPOINTS


async def test_openapi_declares_the_bearer_scheme_on_every_authenticated_endpoint(
    openapi: dict[str, Any],
) -> None:
    schemes = openapi["components"]["securitySchemes"]
    bearer = [
        name for name, s in schemes.items() if (s["type"], s.get("scheme")) == ("http", "bearer")
    ]
    assert len(bearer) == 1, schemes

    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            security = operation.get("security", [])
            if (method, path) in AUTHENTICATED:
                assert {bearer[0]: []} in security, (method, path)
            else:
                assert security == [], (method, path)


async def test_openapi_documents_the_job_responses(openapi: dict[str, Any]) -> None:
    for path in ("/import-contacts", "/send-notification", "/process-data"):
        responses = openapi["paths"][path]["post"]["responses"]
        assert {"202", "401", "409", "413", "415", "422", "503"} <= set(responses), path
    assert "200" in openapi["paths"]["/process-data"]["post"]["responses"]
    parameters = openapi["paths"]["/process-data"]["post"]["parameters"]
    assert {p["name"] for p in parameters} >= {"Idempotency-Key", "mode"}
