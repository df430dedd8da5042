"""Enqueueing a delivery: a terminal hook that starts the delivery's stream with the
transaction that ends its parent task, so a committed outcome always has its webhook."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent
from reference_app.store import Claim, NewStream, TerminalHook

__all__ = ["WEBHOOK_KIND", "delivery_hook", "schedule_delivery"]

WEBHOOK_KIND = "webhook_delivery"


def delivery_hook(*, max_attempts: int) -> TerminalHook:
    """The terminal hook ``main`` registers with the store: a task that ends with a
    ``webhook_url`` gets a ``task.succeeded``, ``task.failed`` or ``task.cancelled``
    delivery (a re-driven task gets one more when it ends again)."""

    def enqueue_delivery(claim: Claim, final: NewEvent) -> NewStream | None:
        if claim.webhook_url is None:
            return None
        status, outcome = _outcome_of(final)
        return schedule_delivery(
            claim, status=status, outcome=outcome, max_attempts=max_attempts, at=final.at
        )

    return enqueue_delivery


def _outcome_of(final: NewEvent) -> tuple[str, dict[str, Any]]:
    """The message's status, and what it says of the end: the result, the error or why."""
    p = final.payload
    if final.type is EventType.TASK_SUCCEEDED:
        return "succeeded", {"result": p["result"]}
    if final.type is EventType.TASK_CANCELLED:
        return "cancelled", {"reason": p["reason"]}
    return "failed", {"error": f"{p['error_type']}: {p['error']}"}


def schedule_delivery(
    parent: Claim, *, status: str, outcome: dict[str, Any], max_attempts: int, at: datetime
) -> tuple[uuid.UUID, NewEvent]:
    """The first event of a delivery's own stream, reporting ``parent``'s end.

    The body is fixed here, so every attempt sends the same bytes under the
    same ``webhook-id`` and a receiver can de-duplicate retries.
    """
    assert parent.webhook_url is not None
    delivery_id = uuid.uuid4()
    event_type = f"task.{status}"
    body = {
        "type": event_type,
        "timestamp": at.isoformat(),
        "data": {"task_id": str(parent.task_id), "kind": parent.kind, "status": status, **outcome},
    }
    scheduled = NewEvent(
        EventType.TASK_SCHEDULED,
        {
            "kind": WEBHOOK_KIND,
            "org_id": parent.org_id,
            "user_id": parent.user_id,
            "parent_id": str(parent.task_id),
            "request_id": parent.request_id,
            "max_attempts": max_attempts,
            "params": {
                "url": parent.webhook_url,
                "webhook_id": f"msg_{delivery_id.hex}",
                "event_type": event_type,
                "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
            },
        },
        at=at,
    )
    return delivery_id, scheduled
