"""Liveness, readiness, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy.engine import Connection

from reference_app.db.engine import create_engine
from reference_app.db.migrate import alembic_config, upgrade_database
from reference_app.db.schema import MIGRATE_COMMAND

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

ENDPOINTS = {
    ("post", "/import-contacts"),
    ("post", "/send-notification"),
    ("post", "/process-data"),
    ("get", "/tasks"),
    ("get", "/tasks/{task_id}"),
    ("get", "/tasks/{task_id}/events"),
    ("post", "/tasks/{task_id}/cancel"),
    ("post", "/tasks/{task_id}/retry"),
    ("get", "/schedules"),
    ("get", "/health"),
    ("get", "/ready"),
}
AUTHENTICATED = {
    ("post", "/import-contacts"),
    ("post", "/send-notification"),
    ("post", "/process-data"),
    ("get", "/tasks"),
    ("get", "/tasks/{task_id}"),
    ("get", "/tasks/{task_id}/events"),
    ("post", "/tasks/{task_id}/cancel"),
    ("post", "/tasks/{task_id}/retry"),
    ("get", "/schedules"),
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


async def test_ready_reports_the_database_as_ok_and_its_schema(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "schema": HEAD}


async def _migrate(database_url: str, revision: str) -> None:
    """Up or down to ``revision``, on an engine that is not the running app's."""

    def _downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    engine = create_engine(database_url)
    try:
        if revision == "head":
            await upgrade_database(engine)
        else:
            async with engine.begin() as connection:
                await connection.run_sync(_downgrade)
    finally:
        await engine.dispose()


async def test_ready_is_a_503_with_the_command_while_the_schema_is_behind(
    anonymous: httpx.AsyncClient, database_url: str
) -> None:
    await _migrate(database_url, "0001")  # beneath the running app: a pending deploy, say
    behind = await anonymous.get("/ready")
    await _migrate(database_url, "head")
    again = await anonymous.get("/ready")

    assert behind.status_code == 503
    assert behind.json() == {
        "status": "not_ready",
        "database": "ok",
        "schema": "0001",
        "expected_schema": HEAD,
        "detail": f"the database's schema is at revision 0001, behind this code's {HEAD}: "
        f"run `{MIGRATE_COMMAND}`",
    }
    assert again.status_code == 200
    assert again.json()["schema"] == HEAD


async def test_ready_is_a_503_when_the_schema_is_gone(
    anonymous: httpx.AsyncClient, database_url: str
) -> None:
    await _migrate(database_url, "base")  # every table dropped, alembic_version empty

    response = await anonymous.get("/ready")

    assert response.status_code == 503
    assert response.json()["schema"] is None
    assert MIGRATE_COMMAND in response.json()["detail"]


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


async def test_openapi_documents_both_answers_of_ready(openapi: dict[str, Any]) -> None:
    responses = openapi["paths"]["/ready"]["get"]["responses"]

    assert set(responses) == {"200", "503"}
    assert '"schema"' in responses["200"]["description"]
    assert "unreachable" in responses["503"]["description"]
    assert "schema" in responses["503"]["description"]


async def test_openapi_documents_the_job_responses(openapi: dict[str, Any]) -> None:
    for path in ("/import-contacts", "/send-notification", "/process-data"):
        responses = openapi["paths"][path]["post"]["responses"]
        assert {"202", "401", "409", "413", "415", "422", "503"} <= set(responses), path
    assert "200" in openapi["paths"]["/process-data"]["post"]["responses"]
    parameters = openapi["paths"]["/process-data"]["post"]["parameters"]
    assert {p["name"] for p in parameters} >= {"Idempotency-Key", "mode"}
