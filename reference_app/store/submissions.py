"""A submission: what a client asked for, and the ``task_scheduled`` event that records it."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent

__all__ = ["Accepted", "BacklogFull", "IdempotencyMismatch", "Submission", "scheduled_event"]


class IdempotencyMismatch(Exception):
    """The idempotency key was already used with a different request."""


class BacklogFull(Exception):
    """Admission control: the due backlog is at its bound, so nothing was written."""

    def __init__(self, due: int, bound: int) -> None:
        super().__init__(f"{due} tasks are due, and the bound is {bound}")
        self.due = due
        self.bound = bound


@dataclass(frozen=True, slots=True)
class Submission:
    org_id: str
    user_id: str
    kind: str
    params: dict[str, Any]
    webhook_url: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    # Not due for the sweeper before this: a delayed task's due time, or the hold while an
    # inline task's request runs it. The projection's ``run_after``.
    not_before: datetime | None = None
    # When the client asked the task to run, as it asked (``run_at``, or ``delay_seconds``):
    # part of the fingerprint, so a replay with another time is a mismatch, and a replay
    # with the same delay a moment later is not.
    run_at: datetime | None = None
    delay_seconds: int | None = None

    def fingerprint(self) -> str:
        """A hash of what the client asked for, to tell a replay from a reused key."""
        body: dict[str, Any] = {
            "kind": self.kind,
            "params": self.params,
            "webhook_url": self.webhook_url,
        }
        # Only when asked for: the hashes of undelayed requests stay what they were.
        if self.run_at is not None:
            body["run_at"] = self.run_at.astimezone(UTC).isoformat()
        if self.delay_seconds is not None:
            body["delay_seconds"] = self.delay_seconds
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Accepted:
    task_id: uuid.UUID
    status: str
    created: bool


def scheduled_event(submission: Submission, *, max_attempts: int) -> NewEvent:
    """The first event of the submission's stream."""
    return NewEvent(
        EventType.TASK_SCHEDULED,
        {
            "kind": submission.kind,
            "org_id": submission.org_id,
            "user_id": submission.user_id,
            "params": submission.params,
            "request_id": submission.request_id,
            "webhook_url": submission.webhook_url,
            "idempotency_key": submission.idempotency_key,
            "request_hash": submission.fingerprint() if submission.idempotency_key else None,
            "max_attempts": max_attempts,
            **({"not_before": submission.not_before.isoformat()} if submission.not_before else {}),
        },
    )
