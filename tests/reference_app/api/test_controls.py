"""POST /tasks/{id}/cancel and /retry through the app: cancel in each status, the re-drive of a
failed or cancelled task, their 404s and 409s, and the task.cancelled webhook."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from reference_app.core.config import Settings
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError, TransientError
from tests.conftest import AUTH_B, make_settings, wait_for_status
from tests.reference_app._task_kit import api_events, post_job, serving, types_of
from tests.reference_app.webhooks.conftest import (
    ScriptedReceiver,
    build_app,
    running,
    verify,
    wait_for_delivery,
    webhook_settings,
)

HOOK = "http://127.0.0.1:8000/hooks/task"  # allowed by webhook_settings; the network is scripted
# A heartbeat every 0.1 s: a cancel reaches a running attempt that soon.
LEASE_SECONDS = 0.3


class Hang:
    """A handler that waits until cancelled, and says whether its cleanup ran."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cleaned_up = asyncio.Event()

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cleaned_up.set()
        raise AssertionError("unreachable")


class FailsFirst:
    """Fails permanently until told otherwise: a dead letter, then a re-drive that works."""

    def __init__(self) -> None:
        self.healthy = False

    async def __call__(self, ctx: TaskContext) -> dict[str, Any]:
        if not self.healthy:
            raise PermanentError("the partner API is down")
        return {"attempt": ctx.attempt}


async def busy(ctx: TaskContext) -> dict[str, Any]:
    raise TransientError("busy")


@pytest.fixture
def control_settings(database_url: str) -> Settings:
    return make_settings(database_url, lease_seconds=LEASE_SECONDS, task_max_attempts=2)


async def cancel(client: httpx.AsyncClient, task_id: str, **kw: Any) -> httpx.Response:
    return await client.post(f"/tasks/{task_id}/cancel", **kw)


async def delayed_job(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/process-data", json={"data": {"n": 1}, "io_ms": 0, "delay_seconds": 3600}
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


# Cancel -------------------------------------------------------------------------------------


async def test_a_scheduled_task_is_cancelled_at_once(control_settings: Settings) -> None:
    async with serving(control_settings) as client:
        task_id = await delayed_job(client)

        response = await cancel(client, task_id)

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert response.json()["run_after"] is None
        assert response.json()["finished_at"] is not None
        events = await api_events(client, task_id)
    assert types_of(events) == ["task_scheduled", "task_cancelled"]
    assert events[1]["payload"]["by"] == "alice"


async def test_a_retrying_task_is_cancelled_and_its_retry_never_runs(database_url: str) -> None:
    settings = make_settings(
        database_url, task_retry_base_seconds=3600, task_retry_cap_seconds=3600
    )
    async with serving(settings, handlers={"process_data": busy}) as client:
        task_id = await post_job(client)
        await wait_for_status(client, task_id, "retrying")

        response = await cancel(client, task_id)

        assert (response.status_code, response.json()["status"]) == (200, "cancelled")
        assert types_of(await api_events(client, task_id))[-2:] == [
            "retry_scheduled",
            "task_cancelled",
        ]


async def test_a_running_task_is_stopped_within_a_heartbeat(control_settings: Settings) -> None:
    hang = Hang()
    async with serving(control_settings, handlers={"process_data": hang}) as client:
        task_id = await post_job(client)
        await asyncio.wait_for(hang.started.wait(), 15)

        response = await cancel(client, task_id)

        assert (response.status_code, response.json()["status"]) == (202, "cancelling")
        task = await wait_for_status(client, task_id, "cancelled", "failed", "succeeded")
        events = await api_events(client, task_id)
    assert task["status"] == "cancelled"
    assert hang.cleaned_up.is_set()  # the attempt was cancelled, its finally ran
    assert types_of(events) == [
        "task_scheduled",
        "task_started",
        "cancel_requested",
        "task_cancelled",
    ]
    assert events[2]["payload"]["by"] == "alice"


async def test_cancelling_twice_asks_once(control_settings: Settings) -> None:
    hang = Hang()
    async with serving(control_settings, handlers={"process_data": hang}) as client:
        task_id = await post_job(client)
        await asyncio.wait_for(hang.started.wait(), 15)
        first = await cancel(client, task_id)
        second = await cancel(client, task_id)
        await wait_for_status(client, task_id, "cancelled")
        events = await api_events(client, task_id)

    assert first.status_code == 202
    # Already requested (or already done, if the heartbeat was quicker): never a second event.
    assert second.status_code in (200, 202, 409)
    assert types_of(events).count("cancel_requested") == 1


async def test_an_ended_task_cannot_be_cancelled_409_with_its_status(settings: Settings) -> None:
    async with serving(settings) as client:
        task_id = await post_job(client)
        await wait_for_status(client, task_id, "succeeded")

        response = await cancel(client, task_id)

    assert response.status_code == 409
    assert response.json()["detail"] == {
        "message": "a succeeded task cannot be cancelled.",
        "status": "succeeded",
    }


async def test_another_orgs_task_and_an_unknown_one_are_404(settings: Settings) -> None:
    async with serving(settings) as client:
        task_id = await delayed_job(client)
        responses = [
            await cancel(client, task_id, headers=AUTH_B),
            await client.post(f"/tasks/{task_id}/retry", headers=AUTH_B),
            await cancel(client, "00000000-0000-0000-0000-000000000000"),
            await cancel(client, "not-a-uuid"),
        ]
        still = await client.get(f"/tasks/{task_id}")

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert still.json()["status"] == "scheduled"  # org B's attempt changed nothing


async def test_controls_need_an_api_key(settings: Settings) -> None:
    async with serving(settings) as client:
        task_id = await delayed_job(client)
        response = await cancel(client, task_id, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_a_cancelled_task_with_a_webhook_delivers_task_cancelled(database_url: str) -> None:
    network = ScriptedReceiver()
    app = build_app(webhook_settings(database_url), network.transport)
    async with running(app) as client:
        accepted = await client.post(
            "/process-data",
            json={"data": {"n": 1}, "io_ms": 0, "delay_seconds": 3600, "webhook_url": HOOK},
        )
        task_id = accepted.json()["task_id"]
        assert (await cancel(client, task_id)).status_code == 200
        task = await wait_for_delivery(client, task_id)

    assert task["webhook"]["status"] == "delivered"
    [sent] = network.sent
    payload = verify(sent.headers, sent.body)
    assert payload["type"] == "task.cancelled"
    assert payload["data"] == {
        "task_id": task_id,
        "kind": "process_data",
        "status": "cancelled",
        "reason": "cancelled before it ran",
    }


# Re-drive -----------------------------------------------------------------------------------


async def test_a_failed_task_is_re_driven_with_its_budget_renewed(
    control_settings: Settings,
) -> None:
    handler = FailsFirst()
    async with serving(control_settings, handlers={"process_data": handler}) as client:
        task_id = await post_job(client)
        failed = await wait_for_status(client, task_id, "failed")
        handler.healthy = True

        response = await client.post(f"/tasks/{task_id}/retry")

        assert response.status_code == 202, response.text
        assert response.headers["location"].endswith(f"/tasks/{task_id}")
        assert response.json()["status"] in ("scheduled", "running", "succeeded")
        task = await wait_for_status(client, task_id, "succeeded", "failed")
        events = await api_events(client, task_id)

    assert (failed["attempts"], failed["max_attempts"]) == (1, 2)
    assert task["status"] == "succeeded"
    # Attempts count on; the budget is renewed from where they stood: 1 + 2.
    assert (task["attempts"], task["max_attempts"]) == (2, 3)
    assert task["result"] == {"attempt": 2}
    assert types_of(events)[-4:] == [
        "task_failed",
        "task_requeued",
        "task_started",
        "task_succeeded",
    ]
    requeued = events[-3]["payload"]
    assert (requeued["by"], requeued["previous_status"]) == ("alice", "failed")


async def test_a_cancelled_task_can_be_re_driven(settings: Settings) -> None:
    async with serving(settings) as client:
        task_id = await delayed_job(client)
        await cancel(client, task_id)

        response = await client.post(f"/tasks/{task_id}/retry")
        task = await wait_for_status(client, task_id, "succeeded")

    assert response.status_code == 202
    assert task["attempts"] == 1


@pytest.mark.parametrize("status", ["scheduled", "succeeded"])
async def test_only_a_failed_or_cancelled_task_can_be_re_driven(
    settings: Settings, status: str
) -> None:
    async with serving(settings) as client:
        if status == "scheduled":
            task_id = await delayed_job(client)
        else:
            task_id = await post_job(client)
            await wait_for_status(client, task_id, "succeeded")

        response = await client.post(f"/tasks/{task_id}/retry")

    assert response.status_code == 409
    assert response.json()["detail"]["status"] == status
