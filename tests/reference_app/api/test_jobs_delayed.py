"""Delayed work: ``run_at`` and ``delay_seconds`` on every POST, on both databases, with
the app's clock in the test's hand: the task waits ``scheduled`` until its due time, the
route does not start it, the sweeper does.

The app's own sweeper sleeps an hour here, so only the test's ``sweep_once`` passes (and
the route's hand-off, for work due at once) can start a task: what starts it is certain.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.core.clock import utcnow
from reference_app.db.engine import create_session_factory, session_scope
from reference_app.events.projection import compute_projection
from reference_app.main import create_app
from reference_app.tasks.sweeper import Sweeper
from reference_app.tasks.worker import Worker
from tests.conftest import AUTH_A, count_rows, make_settings, wait_for_status
from tests.reference_app._clock import ManualClock
from tests.reference_app._task_kit import HOUR, api_events, types_of

BODIES: dict[str, dict[str, Any]] = {
    "/import-contacts": {"file_id": "contacts-2026.csv"},
    "/send-notification": {"email": "ada@example.com", "message": "Your import is done."},
    "/process-data": {"data": {"rows": [1, 2, 3]}, "io_ms": 0},
}
JOB = BODIES["/process-data"]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def clock() -> ManualClock:
    # An hour ahead of the wall clock, which times the events: work due at once (due at its
    # task_scheduled's time) is due by this clock too, should the sweeper be the one to run it.
    return ManualClock(utcnow() + timedelta(hours=1))


@pytest.fixture
async def app(database_url: str, clock: ManualClock) -> AsyncIterator[FastAPI]:
    """The app on ``clock``, with its lifespan running and its sweeper asleep."""
    app = create_app(make_settings(database_url, sweep_interval_seconds=HOUR), clock=clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids the routes hand to ``worker.submit``. (Whether a hand-off starts its task
    depends on a free slot, which a sweep in flight may hold: so the hand-off is watched.)"""
    ids: list[str] = []
    submit = Worker.submit

    async def watched(self: Worker, *, task_id: uuid.UUID, kind: str) -> None:
        ids.append(str(task_id))
        await submit(self, task_id=task_id, kind=kind)

    monkeypatch.setattr(Worker, "submit", watched)
    return ids


@pytest.fixture
def sweeper(app: FastAPI) -> Sweeper:
    sweeper: Sweeper = app.state.sweeper
    return sweeper


async def still_scheduled(
    client: httpx.AsyncClient, sweeper: Sweeper, task_id: str
) -> dict[str, Any]:
    """The task after a sweep: asserted not started by it, nor by anything before."""
    assert await sweeper.sweep_once() == 0
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert (task["status"], task["attempts"], task["started_at"]) == ("scheduled", 0, None)
    return task


# Due later ----------------------------------------------------------------------------------


def in_an_hour(now: datetime) -> list[tuple[dict[str, Any], datetime]]:
    hour = now + timedelta(hours=1)
    tokyo = timezone(timedelta(hours=9))
    return [
        ({"delay_seconds": 3600}, hour),
        ({"run_at": hour.isoformat().replace("+00:00", "Z")}, hour),
        ({"run_at": hour.astimezone(tokyo).isoformat()}, hour),
    ]


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("form", [0, 1, 2], ids=["delay_seconds", "run_at-Z", "run_at-+09:00"])
async def test_a_delayed_task_waits_scheduled_until_its_due_time_then_the_sweeper_runs_it(
    client: httpx.AsyncClient,
    sweeper: Sweeper,
    handed: list[str],
    clock: ManualClock,
    path: str,
    form: int,
) -> None:
    delay, due = in_an_hour(clock.now)[form]
    response = await client.post(path, json={**BODIES[path], **delay})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"
    task_id = response.json()["task_id"]

    # Not handed to the worker by the route, nor swept early.
    assert handed == []
    task = await still_scheduled(client, sweeper, task_id)
    assert when(task["run_after"]) == due
    clock.set(due - timedelta(seconds=1))
    await still_scheduled(client, sweeper, task_id)
    clock.set(due)
    assert await sweeper.sweep_once() == 1
    finished = await wait_for_status(client, task_id, "succeeded", "failed")

    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] == 1
    events = await api_events(client, task_id)
    assert types_of(events) == ["task_scheduled", "task_started", "task_succeeded"]
    assert when(events[0]["payload"]["not_before"]) == due


async def test_the_log_holds_the_due_time_so_a_rebuilt_projection_has_it(
    client: httpx.AsyncClient, clock: ManualClock, engine: AsyncEngine
) -> None:
    response = await client.post("/process-data", json={**JOB, "delay_seconds": 600})
    task_id = response.json()["task_id"]
    live = (await client.get(f"/tasks/{task_id}")).json()

    async with session_scope(create_session_factory(engine)) as session:
        rebuilt = await compute_projection(session)
    (row,) = rebuilt.values()
    assert row["run_after"] == when(live["run_after"]) == clock.now + timedelta(seconds=600)


@pytest.mark.parametrize(
    "delay",
    [
        {"delay_seconds": 0},
        {"run_at": "now"},
        {"run_at": "four minutes ago"},  # within RUN_AT_PAST_SECONDS: due now
    ],
)
async def test_a_task_due_already_is_handed_to_the_worker_at_once(
    client: httpx.AsyncClient, handed: list[str], clock: ManualClock, delay: dict[str, Any]
) -> None:
    if "run_at" in delay:
        back = timedelta(minutes=4) if delay["run_at"] != "now" else timedelta(0)
        delay = {"run_at": (clock.now - back).isoformat()}
    response = await client.post("/process-data", json={**JOB, **delay})
    assert response.status_code == 202, response.text

    assert handed == [response.json()["task_id"]]
    task = await wait_for_status(client, response.json()["task_id"], "succeeded", "failed")
    assert task["status"] == "succeeded"
    events = await api_events(client, task["task_id"])
    assert "not_before" not in events[0]["payload"]  # due at once, not in the past


# Refused: 422, nothing written -------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "loc", "message"),
    [
        ({"run_at": "2026-12-04T03:00:00"}, ["body", "run_at"], "timezone"),
        ({"run_at": "tomorrow"}, ["body", "run_at"], "datetime"),
        ({"run_at": "IN_AN_HOUR", "delay_seconds": 60}, ["body"], "not both"),
        ({"delay_seconds": -1}, ["body", "delay_seconds"], "greater than or equal to 0"),
        ({"delay_seconds": 30 * 86400 + 1}, ["body", "delay_seconds"], "less than or equal"),
        ({"delay_seconds": 1.5}, ["body", "delay_seconds"], "integer"),
        ({"run_at": "31_DAYS_AHEAD"}, ["body", "run_at"], "30 days ahead"),
        ({"run_at": "TEN_MINUTES_AGO"}, ["body", "run_at"], "in the past"),
    ],
)
async def test_a_due_time_that_cannot_be_kept_is_a_422_that_says_why(
    client: httpx.AsyncClient,
    clock: ManualClock,
    engine: AsyncEngine,
    delay: dict[str, Any],
    loc: list[str],
    message: str,
) -> None:
    times = {
        "IN_AN_HOUR": clock.now + timedelta(hours=1),
        "31_DAYS_AHEAD": clock.now + timedelta(days=31),
        "TEN_MINUTES_AGO": clock.now - timedelta(minutes=10),
    }
    if delay.get("run_at") in times:
        delay = {**delay, "run_at": times[delay["run_at"]].isoformat()}
    response = await client.post("/process-data", json={**JOB, **delay})

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert message in error["msg"]
    assert await count_rows(engine) == (0, 0)


async def test_an_inline_run_cannot_be_delayed(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post(
        "/process-data", params={"mode": "inline"}, json={**JOB, "delay_seconds": 60}
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "mode"]
    assert await count_rows(engine) == (0, 0)


async def test_the_schedulers_idempotency_keys_are_reserved(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key = "schedule:example-report:2026-12-04T03:00:00Z"
    response = await client.post("/process-data", json=JOB, headers={"Idempotency-Key": key})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await count_rows(engine) == (0, 0)


# Idempotency -------------------------------------------------------------------------------


async def test_a_replay_must_ask_for_the_same_time_as_the_first_request(
    client: httpx.AsyncClient, clock: ManualClock, engine: AsyncEngine
) -> None:
    def post(key: str, **delay: Any) -> Any:
        return client.post("/process-data", json={**JOB, **delay}, headers={"Idempotency-Key": key})

    first = await post("k-1", delay_seconds=60)
    clock.advance(5)
    replay = await post("k-1", delay_seconds=60)  # 5 s later: the same request
    other_delay = await post("k-1", delay_seconds=61)
    as_run_at = await post("k-1", run_at=(clock.now + timedelta(seconds=55)).isoformat())
    undelayed = await post("k-1")
    ran = await post("k-2")
    await wait_for_status(client, ran.json()["task_id"], "succeeded")
    delayed_later = await post("k-2", delay_seconds=60)

    assert first.status_code == replay.status_code == 202
    assert replay.json()["task_id"] == first.json()["task_id"]
    assert [r.status_code for r in (other_delay, as_run_at, undelayed, delayed_later)] == [409] * 4
    task = (await client.get(f"/tasks/{first.json()['task_id']}")).json()
    assert when(task["run_after"]) == clock.now - timedelta(seconds=5) + timedelta(seconds=60)
    assert await count_rows(engine) == (2, 1 + 3)  # k-1 waits; k-2 ran


# How late, with the wall clock ---------------------------------------------------------------


async def test_a_delayed_task_starts_within_a_sweep_interval_of_its_due_time(
    database_url: str,
) -> None:
    interval = 0.2
    app: FastAPI = create_app(make_settings(database_url, sweep_interval_seconds=interval))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH_A
        ) as client:
            due = utcnow() + timedelta(seconds=0.5)
            response = await client.post("/process-data", json={**JOB, "run_at": due.isoformat()})
            task = await wait_for_status(client, response.json()["task_id"], "succeeded")
            events = await api_events(client, task["task_id"])

    started = when(events[1]["at"])
    assert started >= due  # never early
    # The sweeper looks every `interval`; the rest is one sweep's and one claim's time.
    assert (started - due).total_seconds() < interval + 0.5, started - due
    assert when(events[0]["payload"]["not_before"]).astimezone(UTC) == due
