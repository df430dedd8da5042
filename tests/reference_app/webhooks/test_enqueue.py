"""Enqueueing a delivery: the terminal hook that gives a task with a ``webhook_url`` its
``task.succeeded`` or ``task.failed`` delivery, and the delivery's first event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from reference_app.db.engine import SessionFactory
from reference_app.events.lifecycle import EventType
from reference_app.events.outcomes import failure_events, success_event
from reference_app.events.store import NewEvent
from reference_app.store import Claim, Lease, TaskStore
from reference_app.webhooks.enqueue import WEBHOOK_KIND, delivery_hook, schedule_delivery
from tests.reference_app._task_kit import schedule

URL = "https://hooks.example.com/tasks"
AT = datetime(2025, 3, 14, 12, 0, 0, 123456, tzinfo=UTC)


def claim(*, webhook_url: str | None = URL) -> Claim:
    return Claim(
        task_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        version=2,
        attempt=1,
        kind="import_contacts",
        org_id="org-a",
        user_id="alice",
        params={"file_id": "f-1"},
        request_id="req-9",
        max_attempts=3,
        webhook_url=webhook_url,
    )


def succeeded() -> NewEvent:
    event = success_event(attempt=1, result={"rows": 25}, duration_ms=3.0)
    return NewEvent(event.type, event.payload, at=AT)


def failed() -> NewEvent:
    *_, final = failure_events(
        attempt=3,
        max_attempts=3,
        error_type="TransientError",
        error="upstream busy",
        transient=True,
        delay=0.0,
    )
    return NewEvent(final.type, final.payload, at=AT)


def body_of(scheduled: NewEvent) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(scheduled.payload["params"]["body"])
    return body


@pytest.mark.parametrize("final", [succeeded(), failed()], ids=["succeeded", "failed"])
def test_a_task_without_a_webhook_url_gets_no_delivery(final: NewEvent) -> None:
    hook = delivery_hook(max_attempts=5)

    assert hook(claim(webhook_url=None), final) is None


def test_a_succeeded_task_gets_a_task_succeeded_delivery_with_its_result() -> None:
    parent = claim()

    stream = delivery_hook(max_attempts=5)(parent, succeeded())

    assert stream is not None
    delivery_id, scheduled = stream
    assert scheduled.type is EventType.TASK_SCHEDULED
    assert scheduled.at == AT  # reported as of the task's end, not of the enqueue
    payload = scheduled.payload
    assert payload["kind"] == WEBHOOK_KIND
    assert (payload["org_id"], payload["user_id"]) == ("org-a", "alice")
    assert payload["parent_id"] == str(parent.task_id)
    assert (payload["request_id"], payload["max_attempts"]) == ("req-9", 5)
    params = payload["params"]
    assert params["url"] == URL
    assert params["webhook_id"] == f"msg_{delivery_id.hex}"
    assert params["event_type"] == "task.succeeded"
    assert body_of(scheduled) == {
        "type": "task.succeeded",
        "timestamp": AT.isoformat(),
        "data": {
            "task_id": str(parent.task_id),
            "kind": "import_contacts",
            "status": "succeeded",
            "result": {"rows": 25},
        },
    }


def test_a_failed_task_gets_a_task_failed_delivery_with_its_error() -> None:
    parent = claim()

    stream = delivery_hook(max_attempts=5)(parent, failed())

    assert stream is not None
    delivery_id, scheduled = stream
    assert scheduled.payload["params"]["event_type"] == "task.failed"
    assert scheduled.payload["params"]["webhook_id"] == f"msg_{delivery_id.hex}"
    assert body_of(scheduled) == {
        "type": "task.failed",
        "timestamp": AT.isoformat(),
        "data": {
            "task_id": str(parent.task_id),
            "kind": "import_contacts",
            "status": "failed",
            "error": "TransientError: upstream busy",
        },
    }


def test_each_delivery_gets_its_own_id_and_webhook_id() -> None:
    hook = delivery_hook(max_attempts=5)

    first, second = hook(claim(), succeeded()), hook(claim(), succeeded())

    assert first is not None
    assert second is not None
    assert first[0] != second[0]
    assert first[1].payload["params"]["webhook_id"] != second[1].payload["params"]["webhook_id"]
    assert body_of(first[1]) == body_of(second[1])  # the same report, delivered twice


def test_the_body_is_fixed_compact_json_with_sorted_keys() -> None:
    """Every attempt sends these exact bytes, so a receiver can de-duplicate by webhook-id."""
    _, scheduled = schedule_delivery(
        claim(), status="succeeded", outcome={"result": {"b": 1, "a": 2}}, max_attempts=1, at=AT
    )

    body = scheduled.payload["params"]["body"]
    assert body == json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True)
    assert " " not in body


async def test_the_delivery_commits_with_the_outcome_filed_under_its_task(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions, webhook_url=URL)
    store = TaskStore(sessions, max_attempts=3, terminal_hooks=[delivery_hook(max_attempts=5)])
    try:
        claimed = await store.claim(task_id, Lease("this-host:1:feed", 30.0))
        assert claimed is not None
        recorded = await store.record_outcome(claimed, [succeeded()])
        record = await store.find_task("org-a", task_id)
    finally:
        await store.close()

    ((delivery_id, kind),) = [(d.task_id, d.kind) for d in recorded.started]
    assert kind == WEBHOOK_KIND
    assert record is not None
    assert record.delivery is not None
    delivery = record.delivery
    assert (delivery.id, delivery.parent_id, delivery.kind) == (delivery_id, task_id, WEBHOOK_KIND)
    assert (delivery.status, delivery.max_attempts) == ("scheduled", 5)
    assert json.loads(delivery.params["body"])["data"]["task_id"] == str(task_id)
