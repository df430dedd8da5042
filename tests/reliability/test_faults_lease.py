"""A slow commit of a finished attempt's outcome must not get the attempt run again.

Found by the webhook-fault scenario on a loaded machine: deliveries whose outcome took
longer than the lease to commit (pool and event-loop waits) were rerun by the sweeper
("LeaseExpired ... its process stopped") although their process was alive and their POST
had succeeded, so the receiver got them twice. The heartbeat used to stop when the task
body returned, before the outcome was committed; now the heartbeat of ``tasks/lease.py``
(``leased``, around ``Attempt``'s run *and* record) renews the lease until the outcome is
committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from reference_app.events.store import NewEvent
from reference_app.main import create_app
from reference_app.store import Recorded
from reference_app.tasks.attempt import Attempt
from reference_app.tasks.context import TaskContext
from tests.conftest import AUTH_A, make_settings, wait_for_status

LEASE = 0.5


async def test_an_outcome_committed_after_the_lease_does_not_rerun_the_finished_body(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies_run = 0

    async def side_effect(ctx: TaskContext) -> dict[str, Any]:
        nonlocal bodies_run
        bodies_run += 1
        return {"run": bodies_run}

    real_record = Attempt._record
    commits = 0

    async def slow_first_commit(
        self: Attempt, claim: Any, events: Any
    ) -> tuple[Recorded, list[NewEvent]]:
        nonlocal commits
        commits += 1
        if commits == 1:
            await asyncio.sleep(3 * LEASE)  # one pool or event-loop wait, as under load
        return await real_record(self, claim, events)

    # On the class: an Attempt is a frozen dataclass with slots, so not on the instance.
    monkeypatch.setattr(Attempt, "_record", slow_first_commit)
    settings = make_settings(database_url, lease_seconds=LEASE)
    app = create_app(settings, handlers={"process_data": side_effect})
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=AUTH_A
        ) as client,
    ):
        response = await client.post("/process-data", json={"data": {"n": 1}, "io_ms": 0})
        assert response.status_code == 202
        task = await wait_for_status(client, response.json()["task_id"], "succeeded", "failed")
        await asyncio.sleep(3 * LEASE)  # let the slow commit land

    assert task["status"] == "succeeded"
    assert bodies_run == 1, "the finished body ran again"
    assert task["attempts"] == 1
