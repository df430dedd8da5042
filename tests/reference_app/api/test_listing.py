"""GET /tasks: the caller's org's tasks, newest first, filtered, a page at a time; every bad
filter, limit or cursor a 422 that says what to send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from reference_app.events.lifecycle import TaskStatus
from tests.conftest import AUTH_B, wait_for_status
from tests.reference_app._task_kit import insert_rows, task_row

T0 = datetime(2026, 12, 1, tzinfo=UTC)


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any], **kw: Any) -> str:
    response = await client.post(path, json=body, **kw)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def _pages(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every page, following ``next``."""
    pages = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/tasks", params=query)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next"]
        if cursor is None:
            return pages
        assert len(pages) < 100


def _ids(pages: list[dict[str, Any]]) -> list[str]:
    return [item["task_id"] for page in pages for item in page["items"]]


async def test_the_list_shows_the_orgs_tasks_newest_first_as_get_task_shows_them(
    client: httpx.AsyncClient,
) -> None:
    job = {"data": {"a": 1}, "io_ms": 0}
    hooked = await _post(
        client, "/process-data", {**job, "webhook_url": "https://hooks.example.com/x"}
    )
    failed = await _post(client, "/import-contacts", {"file_id": "missing-1"})
    plain = await _post(client, "/process-data", job)
    await _post(client, "/process-data", job, headers=AUTH_B)
    for task_id, status in ((hooked, "succeeded"), (failed, "failed"), (plain, "succeeded")):
        await wait_for_status(client, task_id, status)

    response = await client.get("/tasks")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next"}
    assert body["next"] is None
    # The delivery of the hooked task's webhook is no task of the list: it is its `webhook`.
    assert [item["task_id"] for item in body["items"]] == [plain, failed, hooked]
    for item in body["items"]:
        single = (await client.get(f"/tasks/{item['task_id']}")).json()
        assert {k: v for k, v in item.items() if k != "webhook"} == {
            k: v for k, v in single.items() if k != "webhook"
        }
    webhook = body["items"][2]["webhook"]
    delivery = (await client.get(f"/tasks/{hooked}")).json()["webhook"]
    assert webhook is not None
    assert webhook["delivery_id"] == delivery["delivery_id"]
    assert [item["webhook"] for item in body["items"][:2]] == [None, None]


async def test_filters_pick_by_status_and_kind(client: httpx.AsyncClient) -> None:
    failed = await _post(client, "/import-contacts", {"file_id": "missing-1"})
    imported = await _post(client, "/import-contacts", {"file_id": "contacts-1"})
    processed = await _post(client, "/process-data", {"data": {"a": 1}, "io_ms": 0})
    await wait_for_status(client, failed, "failed")
    await wait_for_status(client, imported, "succeeded")
    await wait_for_status(client, processed, "succeeded")

    assert _ids(await _pages(client, status="failed")) == [failed]
    assert _ids(await _pages(client, status="succeeded")) == [processed, imported]
    assert _ids(await _pages(client, kind="import_contacts")) == [imported, failed]
    assert _ids(await _pages(client, kind="import_contacts", status="succeeded")) == [imported]
    assert _ids(await _pages(client, kind="send_notification")) == []
    assert _ids(await _pages(client, status="running")) == []


async def test_pages_follow_next_to_the_end_through_ties_and_a_time_window(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    rows = [task_row(T0 + timedelta(minutes=i // 10)) for i in range(100)]  # 10 per minute
    await insert_rows(app.state.sessions, rows)
    newest_first = [
        str(r["id"]) for r in sorted(rows, key=lambda r: (r["created_at"], r["id"].hex))[::-1]
    ]

    pages = await _pages(client, limit=7)
    window = await _pages(
        client, limit=4, created_after="2026-12-01T00:02:00Z", created_before="2026-12-01T00:05:00Z"
    )

    assert _ids(pages) == newest_first
    assert [len(page["items"]) for page in pages] == [7] * 14 + [2]
    assert _ids(window) == newest_first[50:80]  # minutes 2, 3 and 4; 5 is left out


async def test_the_limit_defaults_to_50_and_goes_up_to_200(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await insert_rows(app.state.sessions, [task_row(T0 + timedelta(seconds=i)) for i in range(205)])

    default = (await client.get("/tasks")).json()
    widest = (await client.get("/tasks", params={"limit": 200})).json()
    rest = (await client.get("/tasks", params={"limit": 200, "cursor": widest["next"]})).json()

    assert len(default["items"]) == 50
    assert default["next"] is not None
    assert len(widest["items"]) == 200
    assert len(rest["items"]) == 5
    assert rest["next"] is None


async def test_another_orgs_cursor_pages_through_the_callers_own_tasks_only(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    mine = [task_row(T0 + timedelta(seconds=i)) for i in range(0, 10, 2)]
    theirs = [task_row(T0 + timedelta(seconds=i), org_id="org-b") for i in range(1, 10, 2)]
    await insert_rows(app.state.sessions, mine + theirs)
    their_cursor = (await client.get("/tasks", params={"limit": 1}, headers=AUTH_B)).json()["next"]

    response = await client.get("/tasks", params={"cursor": their_cursor})

    # A cursor is a position, not a permission: org B's says "older than 9 s", and org A
    # gets its own tasks older than that.
    assert _ids([response.json()]) == [str(r["id"]) for r in mine[::-1]]


ENUM_STATUSES = [status.value for status in TaskStatus]

BAD_QUERIES = [
    pytest.param({"status": "done"}, "Input should be", id="unknown-status"),
    pytest.param({"status": "FAILED"}, "Input should be", id="status-case"),
    pytest.param({"kind": ""}, "at least 1 character", id="empty-kind"),
    pytest.param({"kind": "a\x00b"}, "NUL", id="nul-in-kind"),  # PostgreSQL refuses it: not a 500
    pytest.param({"created_after": "2026-12-01T00:00:00"}, "timezone", id="naive-after"),
    pytest.param({"created_before": "2026-12-01"}, "timezone", id="date-only"),
    pytest.param({"created_after": "yesterday"}, "datetime", id="not-a-time"),
    pytest.param(
        {"created_after": "2026-12-02T00:00:00Z", "created_before": "2026-12-01T00:00:00Z"},
        "created_after must be earlier than created_before",
        id="inverted-window",
    ),
    pytest.param({"limit": 0}, "greater than or equal to 1", id="limit-0"),
    pytest.param({"limit": 201}, "less than or equal to 200", id="limit-201"),
    pytest.param({"limit": "ten"}, "valid integer", id="limit-text"),
    pytest.param({"cursor": "bm90IGEgY3Vyc29y"}, "pass the `next`", id="cursor-not-ours"),
    pytest.param({"cursor": "%%%"}, "pass the `next`", id="cursor-garbage"),
    pytest.param({"cursor": "A" * 201}, "at most 200 characters", id="cursor-too-long"),
    pytest.param({"state": "failed"}, "Extra inputs are not permitted", id="misspelt-filter"),
]


@pytest.mark.parametrize(("params", "message"), BAD_QUERIES)
async def test_a_bad_query_is_a_422_that_says_what_is_wrong(
    client: httpx.AsyncClient, params: dict[str, Any], message: str
) -> None:
    response = await client.get("/tasks", params=params)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(message in error["msg"] for error in errors), errors
    assert all(error["loc"][0] == "query" for error in errors), errors


async def test_an_unknown_status_lists_every_valid_one_from_the_enum(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/tasks", params={"status": "done"})

    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "status"]
    assert all(f"'{status}'" in error["msg"] for status in ENUM_STATUSES), error["msg"]


async def test_an_edited_cursor_is_a_422_on_the_cursor(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks", params={"cursor": "X" + "W" * 40})

    (error,) = response.json()["detail"]
    assert response.status_code == 422
    assert error["loc"] == ["query", "cursor"]
    assert "pass the `next` of the previous page unchanged" in error["msg"]


async def test_listing_needs_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks", headers={"Authorization": "Bearer wrong"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_the_list_and_a_task_both_route(client: httpx.AsyncClient) -> None:
    task_id = await _post(client, "/process-data", {"data": {"a": 1}, "io_ms": 0})

    assert (await client.get("/tasks")).status_code == 200
    assert (await client.get(f"/tasks/{task_id}")).json()["task_id"] == task_id
    assert (await client.get("/tasks/")).status_code in (307, 404)  # never the list, never a 500
