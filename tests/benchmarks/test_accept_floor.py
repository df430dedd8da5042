"""benchmarks._accept_floor: the floor is the reference app itself, with a store that keeps
nothing: the same route objects, the same answer, and nothing in the database."""

from __future__ import annotations

import importlib
import inspect
import uuid
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.api.deps import get_store
from reference_app.api.routes import controls, health, jobs, tasks
from reference_app.api.routes import schedules as schedule_routes
from reference_app.core.config import Settings
from reference_app.main import create_app
from reference_app.store import Submission, TaskStore
from tests.conftest import AUTH_A, count_rows

POSTS = {
    "/import-contacts": {"file_id": "contacts.csv"},
    "/send-notification": {"email": "ada@example.com", "message": "hi"},
    "/process-data": {"data": {"n": 1}, "io_ms": 0},
}


@pytest.fixture(scope="module")
def floor_module() -> ModuleType:
    """The module uvicorn imports (``benchmarks._accept_floor:app``)."""
    return importlib.import_module("benchmarks._accept_floor")


@pytest.fixture(params=["create_floor_app", "create_state_floor_app"])
async def floor(
    floor_module: ModuleType, settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    """The floor on this test's database, its lifespan (the reference app's) running: the
    store swapped through ``dependency_overrides``, or on ``app.state``."""
    app: FastAPI = getattr(floor_module, request.param)(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def floor_client(floor: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=floor)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _routers(app: FastAPI) -> list[APIRouter]:
    """The routers ``include_router`` added (FastAPI keeps each as the router itself)."""
    return [route.original_router for route in app.routes if hasattr(route, "original_router")]


def _endpoints(app: FastAPI) -> dict[tuple[str, frozenset[str]], Any]:
    """Every endpoint of the app's included routers, by path and methods."""
    return {
        (route.path, frozenset(route.methods or ())): route.endpoint
        for router in _routers(app)
        for route in router.routes
        if isinstance(route, APIRoute)
    }


# The same app -------------------------------------------------------------------------


def test_the_state_floor_swaps_the_store_without_an_override(floor_module: ModuleType) -> None:
    assert floor_module.state_app.dependency_overrides == {}


def test_the_module_level_app_is_the_floor(floor_module: ModuleType) -> None:
    app = floor_module.app

    assert isinstance(app, FastAPI)
    assert list(app.dependency_overrides) == [get_store]


def test_the_floor_serves_the_reference_apps_own_routes_and_swaps_only_the_store(
    floor_module: ModuleType, settings: Settings
) -> None:
    floor: FastAPI = floor_module.create_floor_app(settings)
    reference = create_app(settings)

    # The very router objects of reference_app.api.routes, so the very endpoint functions:
    # nothing copied, nothing to drift.
    assert _routers(floor) == _routers(reference)
    assert _routers(reference) == [
        health.router,
        jobs.router,
        tasks.router,
        controls.router,
        schedule_routes.router,
    ]
    endpoints = _endpoints(floor)
    assert endpoints == _endpoints(reference)
    assert endpoints["/process-data", frozenset({"POST"})] is jobs.process_data
    assert endpoints["/import-contacts", frozenset({"POST"})] is jobs.import_contacts
    assert endpoints["/send-notification", frozenset({"POST"})] is jobs.send_notification
    assert floor.openapi() == reference.openapi()
    assert [m.cls for m in floor.user_middleware] == [m.cls for m in reference.user_middleware]
    assert floor.exception_handlers.keys() == reference.exception_handlers.keys()
    # The one difference: get_store, by an async dependency (no threadpool hop per request).
    assert reference.dependency_overrides == {}
    assert list(floor.dependency_overrides) == [get_store]
    assert inspect.iscoroutinefunction(floor.dependency_overrides[get_store])


def test_the_noop_store_has_the_task_stores_public_methods(floor_module: ModuleType) -> None:
    def methods(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    assert methods(floor_module.NoopStore) == methods(TaskStore)


async def test_the_noop_store_accepts_without_creating_and_runs_nothing(
    floor_module: ModuleType,
) -> None:
    store = floor_module.NoopStore()
    submission = Submission(org_id="org-a", user_id="alice", kind="process_data", params={})

    first, second = await store.accept(submission), await store.accept(submission)

    assert (first.status, first.created) == ("scheduled", False)
    assert first.task_id != second.task_id
    assert await store.find_task("org-a", first.task_id) is None
    assert await store.events_of("org-a", first.task_id) is None
    with pytest.raises(NotImplementedError):
        await store.claim(first.task_id, object())


# The same answer, nothing written ---------------------------------------------------


@pytest.mark.parametrize("path", list(POSTS))
async def test_a_post_gets_the_reference_apps_202_and_writes_and_starts_nothing(
    floor: FastAPI,
    floor_client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    handed: list[Any] = []
    monkeypatch.setattr(floor.state.worker, "submit", lambda *a, **kw: handed.append((a, kw)))

    response = await floor_client.post(
        path, json=POSTS[path], headers={**AUTH_A, "Idempotency-Key": "k-1"}
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["status_url"] == f"http://testserver/tasks/{body['task_id']}"
    assert response.headers["location"] == body["status_url"]
    assert response.headers["x-request-id"]  # the reference app's middleware ran
    assert handed == []  # no task handed to BackgroundTasks
    assert floor.state.worker.free_slots == settings.max_concurrent_tasks
    assert await count_rows(engine) == (0, 0)
    # Its Location names no task: the floor has none.
    assert (await floor_client.get(body["status_url"], headers=AUTH_A)).status_code == 404

    # The reference app, on the same database, answers with the same shape (and commits).
    reference = create_app(settings)
    async with (
        reference.router.lifespan_context(reference),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=reference), base_url="http://testserver"
        ) as client,
    ):
        real = await client.post(path, json=POSTS[path], headers=AUTH_A)
    assert real.status_code == 202, real.text
    assert real.json().keys() == body.keys()
    assert uuid.UUID(real.json()["task_id"]) != uuid.UUID(body["task_id"])
    assert (await count_rows(engine))[0] == 1


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({"content-type": "application/json"}, b'{"data": {"n": 1}}', 401),  # no API key
        ({"content-type": "text/plain", **AUTH_A}, b'{"data": {"n": 1}}', 415),  # not JSON
        ({"content-type": "application/json", **AUTH_A}, b'{"data": {}}', 422),  # ProcessDataIn
        ({"content-type": "application/json", **AUTH_A}, b"x" * (1024 * 1024 + 1), 413),
    ],
)
async def test_it_refuses_what_the_reference_app_refuses(
    floor_client: httpx.AsyncClient, headers: dict[str, str], content: bytes, status: int
) -> None:
    response = await floor_client.post("/process-data", content=content, headers=headers)

    assert response.status_code == status, response.text
