"""Accepting a task: one committed ``task_scheduled``, honouring idempotency keys."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task
from reference_app.db.writer import Writer
from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent, start_streams

__all__ = ["Accepted", "IdempotencyMismatch", "Submission", "submit_task"]


class IdempotencyMismatch(Exception):
    """The idempotency key was already used with a different request."""


@dataclass(frozen=True, slots=True)
class Submission:
    org_id: str
    user_id: str
    kind: str
    params: dict[str, Any]
    webhook_url: str | None = None
    idempotency_key: str | None = None
    request_id: str | None = None
    # Not due for the sweeper before this (an inline task is run by its request).
    not_before: datetime | None = None

    def fingerprint(self) -> str:
        """A hash of what the client asked for, to tell a replay from a reused key."""
        body = {"kind": self.kind, "params": self.params, "webhook_url": self.webhook_url}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Accepted:
    task_id: uuid.UUID
    status: str
    created: bool


async def submit_task(writer: Writer, submission: Submission, *, max_attempts: int) -> Accepted:
    """Commit the task's ``task_scheduled`` (or find the task an idempotency key already made)."""
    if submission.idempotency_key is not None:
        existing = await _find_by_key(writer.sessions, submission)
        if existing is not None:
            return existing
    task_id = uuid.uuid4()
    scheduled = NewEvent(
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
    try:
        # Batched: the concurrent requests' tasks go in with one INSERT per table.
        await writer.run_batched(start_streams, (task_id, scheduled))
    except IntegrityError:
        # Another request with the same key committed between our look-up and insert.
        if submission.idempotency_key is None:
            raise
        existing = await _find_by_key(writer.sessions, submission)
        if existing is None:
            raise
        return existing
    return Accepted(task_id=task_id, status="scheduled", created=True)


async def _find_by_key(sessions: SessionFactory, submission: Submission) -> Accepted | None:
    async with session_scope(sessions) as session:
        row = (
            await session.execute(
                select(Task.id, Task.status, Task.request_hash).where(
                    Task.org_id == submission.org_id,
                    Task.idempotency_key == submission.idempotency_key,
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != submission.fingerprint():
        raise IdempotencyMismatch(submission.idempotency_key)
    return Accepted(task_id=row.id, status=row.status, created=False)
