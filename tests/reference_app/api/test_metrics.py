"""GET /metrics through the app: off by default, its own token, every metric with its type and
labels, values that move with each outcome, the database gauges cached, and no org's ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from reference_app.api.deps import get_store
from reference_app.db.engine import SessionFactory
from reference_app.main import create_app
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError, TransientError
from reference_app.tasks.kinds import TaskKind
from tests.conftest import AUTH_B, ORG_A_KEY, make_settings, wait_for_status
from tests.reference_app._task_kit import (
    Gate,
    post_job,
    schedule,
    serving,
    start_attempt,
    wait_until,
)
from tests.reference_app.metrics._scrape import (
    EXPECTED,
    SCRAPE,
    TOKEN,
    families_of,
    metrics_settings,
    sample,
    scrape,
)
from tests.reference_app.webhooks.conftest import (
    ScriptedReceiver,
    build_app,
    running,
    submit,
    wait_for_delivery,
    webhook_settings,
)

KIND = "process_data"
NOTIFY = "send_notification"
DEADLINE = 0.2


class Scripted:
    """A handler that does what its task says: ``data.mode``, or the notification's message."""

    def __init__(self) -> None:
        self.calls: dict[uuid.UUID, int] = {}
        self.hanging = asyncio.Event()
        self.hung: uuid.UUID | None = None

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.calls[ctx.task_id] = self.calls.get(ctx.task_id, 0) + 1
        mode = ctx.params.get("data", {}).get("mode") or ctx.params.get("message")
        if mode == "fail":
            raise PermanentError("the partner said no")
        if mode == "retry" and self.calls[ctx.task_id] == 1:
            raise TransientError("busy, once")
        if mode == "hang":
            self.hung = ctx.task_id
            self.hanging.set()
        if mode in ("timeout", "hang"):
            await asyncio.sleep(30)  # cut at the kind's deadline, or by the cancel
        return {"mode": mode}


async def post(client: httpx.AsyncClient, mode: str) -> str:
    response = await client.post("/process-data", json={"data": {"mode": mode}, "io_ms": 0})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


@contextmanager
def queue_state_queries() -> Iterator[list[str]]:
    """The queue-state statements any engine runs meanwhile (a SQLAlchemy event listener)."""
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "oldest_scheduled" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


# Off by default, and its own token ----------------------------------------------------------


async def test_metrics_are_off_by_default_a_404_and_not_in_the_schema(database_url: str) -> None:
    async with serving(make_settings(database_url)) as client:
        response = await client.get("/metrics", headers=SCRAPE)
        schema = (await client.get("/openapi.json")).json()
    assert response.status_code == 404
    assert "/metrics" not in schema["paths"]


async def test_metrics_need_their_own_token_not_an_api_key(database_url: str) -> None:
    async with serving(metrics_settings(database_url)) as client:
        statuses = [
            (await client.get("/metrics", headers=headers)).status_code
            for headers in (
                {"Authorization": ""},
                {"Authorization": f"Bearer {ORG_A_KEY}"},
                AUTH_B,
                {"Authorization": f"Bearer {TOKEN}x"},
                SCRAPE,
            )
        ]
        refused = await client.get("/metrics", headers={"Authorization": f"Bearer {ORG_A_KEY}"})
    assert statuses == [401, 401, 401, 401, 200]
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert "APP_METRICS_TOKEN" in refused.json()["detail"]


# Every metric, its type and labels, and nothing of any org ------------------------------------


async def test_every_metric_is_exported_with_its_type_and_labels(database_url: str) -> None:
    async with serving(metrics_settings(database_url)) as client:
        task_id = await post_job(client)
        await wait_for_status(client, task_id, "succeeded")
        response = await client.get("/metrics", headers=SCRAPE)

    families = families_of(response.text)
    for name, (kind, labels) in EXPECTED.items():
        assert name in families, name
        assert families[name].type == kind, name
        seen = {frozenset(s.labels) - {"le"} for s in families[name].samples}
        if name != "bgjobs_database_unavailable_responses":  # none yet: test_a_database_outage
            assert seen == {frozenset(labels)}, (name, seen)
    assert sample(families, "bgjobs_tasks_accepted_total", kind=KIND) == 1
    assert sample(families, "bgjobs_accept_duration_seconds_count", route="/process-data") == 1
    assert sample(families, "bgjobs_worker_slots_capacity") == 256


async def test_a_scrape_names_no_org_task_or_payload(database_url: str) -> None:
    async with serving(metrics_settings(database_url)) as client:
        mine = await post_job(client)
        theirs = await client.post(
            "/send-notification",
            json={"email": "ada@example.com", "message": "secret-plans"},
            headers=AUTH_B,
        )
        await wait_for_status(client, mine, "succeeded")
        text = (await client.get("/metrics", headers=SCRAPE)).text
    assert theirs.status_code == 202
    for private in ("org-a", "org-b", "alice", "bob", mine, theirs.json()["task_id"],
                    "ada@example.com", "secret-plans", "/tasks/"):  # fmt: skip
        assert private not in text, private


# Values that move -----------------------------------------------------------------------------


async def test_each_outcome_moves_its_counter_and_histogram(database_url: str) -> None:
    handler = Scripted()
    settings = metrics_settings(database_url, task_max_attempts=2, lease_seconds=0.3)
    # The hang is a notification: its kind has no short deadline to beat the cancel to it.
    kinds = {KIND: TaskKind(handler, timeout=DEADLINE), NOTIFY: handler}
    async with serving(settings, handlers=kinds) as client:  # type: ignore[arg-type]
        before = await scrape(client)
        done = [await post(client, mode) for mode in ("ok", "fail", "retry", "timeout")]
        notification = {"email": "ada@example.com", "message": "hang"}
        # Over ASGI the POST returns once its background task has: after the cancel.
        posting = asyncio.create_task(client.post("/send-notification", json=notification))
        await asyncio.wait_for(handler.hanging.wait(), 15)
        hang = str(handler.hung)
        assert (await client.post(f"/tasks/{hang}/cancel")).status_code == 202
        assert (await asyncio.wait_for(posting, 15)).status_code == 202
        for task_id in [*done, hang]:
            await wait_for_status(client, task_id, "succeeded", "failed", "cancelled")
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    # ok, and retry's second attempt; fail; retry's first; timeout's two; the cancelled hang
    expected = {
        (KIND, "succeeded"): 2,
        (KIND, "failed"): 1,
        (KIND, "retried"): 1,
        (KIND, "timed_out"): 2,
        (KIND, "cancelled"): 0,
        (NOTIFY, "cancelled"): 1,
    }
    for (kind, outcome), count in expected.items():
        assert moved("bgjobs_attempts_total", kind=kind, outcome=outcome) == count, outcome
        histogram = "bgjobs_attempt_duration_seconds_count"
        assert moved(histogram, kind=kind, outcome=outcome) == count, outcome
    timed_out = moved("bgjobs_attempt_duration_seconds_sum", kind=KIND, outcome="timed_out")
    assert timed_out >= 2 * DEADLINE
    assert moved("bgjobs_tasks_accepted_total", kind=KIND) == 4
    assert moved("bgjobs_tasks_accepted_total", kind=NOTIFY) == 1
    assert moved("bgjobs_queue_delay_seconds_count", kind=KIND) == 6  # attempts started
    assert moved("bgjobs_queue_delay_seconds_count", kind=NOTIFY) == 1
    assert moved("bgjobs_accept_duration_seconds_count", route="/process-data") == 4
    assert moved("bgjobs_accept_duration_seconds_count", route="/send-notification") == 1
    assert moved("bgjobs_webhook_deliveries_total", outcome="succeeded") == 0


async def test_a_webhook_delivery_moves_the_delivery_counter(database_url: str) -> None:
    network = ScriptedReceiver(script=(httpx.Response(503), httpx.Response(200)))
    settings = webhook_settings(database_url, metrics_token=TOKEN)
    async with running(build_app(settings, network.transport)) as client:
        task_id = await submit(client, "http://127.0.0.1:8000/hooks/task")
        await wait_for_delivery(client, task_id, "delivered")
        families = await scrape(client)
    deliveries = {
        o: sample(families, "bgjobs_webhook_deliveries_total", outcome=o)
        for o in ("retried", "succeeded", "failed")
    }
    assert deliveries == {"retried": 1, "succeeded": 1, "failed": 0}
    assert sample(families, "bgjobs_attempts_total", kind="webhook_delivery", outcome="retried")


async def test_the_gauges_show_live_work_lag_and_slots(database_url: str) -> None:
    gate = Gate()
    settings = metrics_settings(database_url, max_concurrent_tasks=1, metrics_cache_seconds=0)
    async with serving(settings, handlers={KIND: gate}) as client:
        # Over ASGI the POST returns once its background task has: after the gate opens.
        first = asyncio.create_task(post_job(client))
        await wait_until(lambda: gate.running == 1)
        waiting = await post_job(client)  # no free slot: it waits in the database, due
        await asyncio.sleep(0.3)
        families = await scrape(client)
        gate.release.set()
        await wait_for_status(client, await asyncio.wait_for(first, 15), "succeeded")
        await wait_for_status(client, waiting, "succeeded")
        idle = await scrape(client)

    assert sample(families, "bgjobs_tasks", status="running") == 1
    assert sample(families, "bgjobs_tasks", status="scheduled") == 1
    assert sample(families, "bgjobs_queue_lag_seconds") >= 0.25
    assert sample(families, "bgjobs_worker_slots_in_use") == 1
    assert sample(families, "bgjobs_worker_slots_capacity") == 1
    assert sample(idle, "bgjobs_tasks", status="scheduled") == 0
    assert sample(idle, "bgjobs_queue_lag_seconds") == 0
    assert sample(idle, "bgjobs_worker_slots_in_use") == 0


async def test_the_sweeper_counts_its_claims_and_the_leases_it_recovers(
    database_url: str, sessions: SessionFactory
) -> None:
    orphan = await schedule(sessions)  # its process died mid-attempt: the lease has run out
    await start_attempt(sessions, orphan, lease_left=timedelta(seconds=-1))
    delayed = {"data": {"n": 1}, "io_ms": 0, "delay_seconds": 1}
    async with serving(metrics_settings(database_url)) as client:
        accepted = await client.post("/process-data", json=delayed)  # the sweeper's, once due
        await wait_for_status(client, str(orphan), "succeeded", "failed")  # its retry ran
        await wait_for_status(client, accepted.json()["task_id"], "succeeded")
        families = await scrape(client)
    assert sample(families, "bgjobs_sweeper_recovered_leases_total") == 1
    assert sample(families, "bgjobs_sweeper_claims_total") >= 2  # the orphan's retry, the delayed


async def test_a_database_outage_503_is_counted_by_route(database_url: str) -> None:
    class Unreachable:
        async def accept(self, submission: object) -> object:
            raise OperationalError("INSERT", {}, ConnectionRefusedError(111, "refused"))

    app = create_app(metrics_settings(database_url))
    async with running(app) as client:
        app.dependency_overrides[get_store] = Unreachable
        refused = await client.post("/process-data", json={"data": {"n": 1}, "io_ms": 0})
        app.dependency_overrides.clear()
        families = await scrape(client)
    assert refused.status_code == 503
    route = {"route": "/process-data"}
    assert sample(families, "bgjobs_database_unavailable_responses_total", **route) == 1
    assert sample(families, "bgjobs_accept_duration_seconds_count", **route) == 0  # not a 202


# The gauges' query, cached ----------------------------------------------------------------


@pytest.mark.parametrize(("cache_seconds", "queries"), [(60.0, 1), (0.0, 2)])
async def test_two_scrapes_within_the_cache_run_the_gauges_query_once(
    database_url: str, cache_seconds: float, queries: int
) -> None:
    settings = metrics_settings(database_url, metrics_cache_seconds=cache_seconds)
    async with serving(settings) as client:
        with queue_state_queries() as seen:
            await scrape(client)
            await scrape(client)
    assert len(seen) == queries
