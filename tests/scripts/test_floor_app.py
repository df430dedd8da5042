"""scripts/_floor_app.py: the request path the floor measures is the reference app's own."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from tests.conftest import AUTH_A

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def floor_app() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("_floor_app", SCRIPTS / "_floor_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_floor_app"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["_floor_app"]


@pytest.fixture
def client(floor_app: ModuleType) -> Iterator[TestClient]:
    with TestClient(floor_app.app) as client:
        yield client


def test_a_valid_post_gets_the_reference_apps_202(client: TestClient) -> None:
    response = client.post(
        "/process-data?mode=background", json={"data": {"n": 1}, "io_ms": 0}, headers=AUTH_A
    )

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"task_id", "status", "status_url"}
    assert body["status"] == "scheduled"
    assert response.headers["location"] == body["status_url"]
    assert response.headers["x-request-id"]  # the reference app's middleware ran


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({"content-type": "application/json"}, b'{"data": {"n": 1}}', 401),  # CurrentUser
        ({"content-type": "text/plain", **AUTH_A}, b'{"data": {"n": 1}}', 415),  # require_json
        ({"content-type": "application/json", **AUTH_A}, b'{"data": {}}', 422),  # ProcessDataIn
        ({"content-type": "application/json", **AUTH_A}, b"x" * (1024 * 1024 + 1), 413),
    ],
)
def test_it_refuses_what_the_reference_app_refuses(
    client: TestClient, headers: dict[str, str], content: bytes, status: int
) -> None:
    response = client.post("/process-data", content=content, headers=headers)

    assert response.status_code == status, response.text
