"""``GET /schedules``: the caller's org's schedules, each with its next due slot and its
newest slot's task, from the app's own scheduler and sweeper on a clock the test holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from reference_app.core.clock import utcnow
from reference_app.main import create_app
from reference_app.tasks.schedules import Schedule
from tests.conftest import AUTH_A, AUTH_B, make_settings
from tests.reference_app._clock import ManualClock

REPORT = Schedule(
    "report",
    kind="process_data",
    every=timedelta(hours=1),
    params={"data": {"report": "hourly"}, "io_ms": 0, "cpu_ms": 0},
)
NIGHTLY = Schedule("nightly", kind="process_data", cron="0 3 * * *", catch_up="all")
DIGEST = Schedule(
    "digest",
    kind="send_notification",
    every=timedelta(minutes=5),
    org_id="org-b",
    params={"email": "ops@example.com", "message": "digest"},
)
# Ten seconds into the current hour: REPORT's and DIGEST's slots are due, on time.
SLOT = utcnow().replace(minute=0, second=0, microsecond=0)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(SLOT + timedelta(seconds=10))


@pytest.fixture
async def app(database_url: str, clock: ManualClock) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, scheduler_interval_seconds=0.05)
    app = create_app(settings, schedules=[REPORT, NIGHTLY, DIGEST], clock=clock)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


async def schedules_once(
    client: httpx.AsyncClient, done: Any = lambda body: True, seconds: float = 15.0
) -> list[dict[str, Any]]:
    """``GET /schedules`` until ``done(body)``."""
    async with asyncio.timeout(seconds):
        while True:
            response = await client.get("/schedules")
            assert response.status_code == 200, response.text
            body: list[dict[str, Any]] = response.json()
            if done(body):
                return body
            await asyncio.sleep(0.02)


def finished(name: str) -> Any:
    def check(body: list[dict[str, Any]]) -> bool:
        last = {s["name"]: s["last_task"] for s in body}[name]
        return last is not None and last["status"] == "succeeded"

    return check


async def test_each_schedule_shows_its_next_slot_and_the_task_of_its_newest_slot(
    app: FastAPI,
) -> None:
    async with client_for(app, AUTH_A) as client:
        body = await schedules_once(client, finished("report"))
        report, nightly = body

        assert [s["name"] for s in body] == ["report", "nightly"]  # org B's digest is not here
        assert report["kind"] == "process_data"
        assert (report["every_seconds"], report["cron"], report["catch_up"]) == (3600, None, "one")
        assert when(report["next_due_at"]) == SLOT + timedelta(hours=1)
        assert when(report["last_task"]["slot"]) == SLOT
        # The slot's task is an ordinary task of the org, due at its slot.
        task = (await client.get(f"/tasks/{report['last_task']['task_id']}")).json()
        assert (task["kind"], task["status"], task["attempts"]) == ("process_data", "succeeded", 1)
        events = (await client.get(f"/tasks/{task['task_id']}/events")).json()
        assert when(events[0]["payload"]["not_before"]) == SLOT

        # 03:00 passed long ago today (or is yet to come): a new schedule does not backfill.
        assert (nightly["every_seconds"], nightly["cron"], nightly["catch_up"]) == (
            None,
            "0 3 * * *",
            "all",
        )
        assert nightly["last_task"] is None
        next_three = when(nightly["next_due_at"])
        assert (next_three.hour, next_three.minute) == (3, 0)
        assert timedelta(0) < next_three - (SLOT + timedelta(seconds=10)) <= timedelta(days=1)


async def test_another_org_sees_its_own_schedules_and_none_of_the_others_tasks(
    app: FastAPI,
) -> None:
    async with client_for(app, AUTH_B) as client_b, client_for(app, AUTH_A) as client_a:
        (digest,) = await schedules_once(client_b, finished("digest"))
        assert digest["name"] == "digest"
        assert when(digest["next_due_at"]) == SLOT + timedelta(minutes=5)
        (report, _) = await schedules_once(client_a, finished("report"))

        other = await client_b.get(f"/tasks/{report['last_task']['task_id']}")
        assert other.status_code == 404


async def test_the_next_slot_makes_the_next_task_when_the_clock_reaches_it(
    app: FastAPI, clock: ManualClock
) -> None:
    async with client_for(app, AUTH_A) as client:
        (first, _) = await schedules_once(client, finished("report"))
        clock.set(SLOT + timedelta(hours=1))

        def next_slot_done(body: list[dict[str, Any]]) -> bool:
            last = body[0]["last_task"]
            return finished("report")(body) and when(last["slot"]) == SLOT + timedelta(hours=1)

        (second, _) = await schedules_once(client, next_slot_done)

    assert second["last_task"]["task_id"] != first["last_task"]["task_id"]
    assert when(second["next_due_at"]) == SLOT + timedelta(hours=2)


async def test_schedules_need_an_api_key(app: FastAPI) -> None:
    async with client_for(app, {}) as anonymous:
        response = await anonymous.get("/schedules")

    assert response.status_code == 401
    schema = app.openapi()["paths"]["/schedules"]["get"]
    assert "401" in schema["responses"]


# The example schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "org_a", "org_b"),
    [
        ({}, [], []),  # off by default: benchmarks and tests see no scheduled work
        ({"example_schedule_seconds": 3600}, ["example-report"], []),
        ({"example_schedule_seconds": 60, "schedule_org_id": "org-b"}, [], ["example-report"]),
    ],
)
async def test_the_example_schedule_is_off_unless_a_setting_turns_it_on(
    database_url: str, overrides: dict[str, Any], org_a: list[str], org_b: list[str]
) -> None:
    app = create_app(make_settings(database_url, **overrides))
    async with (
        app.router.lifespan_context(app),
        client_for(app, AUTH_A) as client_a,
        client_for(app, AUTH_B) as client_b,
    ):
        seen_a = [s["name"] for s in (await client_a.get("/schedules")).json()]
        seen_b = [s["name"] for s in (await client_b.get("/schedules")).json()]

    assert (seen_a, seen_b) == (org_a, org_b)
    every = overrides.get("example_schedule_seconds")
    if every:
        assert app.state.scheduler.schedules[0].every == timedelta(seconds=every)
