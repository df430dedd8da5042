"""A claim: the attempt of a task that this process owns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from reference_app.db.models import Task

__all__ = ["Claim"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The task's data, and its stream version once ``task_started`` is appended."""

    task_id: uuid.UUID
    version: int
    attempt: int
    kind: str
    org_id: str
    user_id: str
    params: dict[str, Any]
    request_id: str | None
    max_attempts: int
    webhook_url: str | None = None
    parent_id: uuid.UUID | None = None

    @classmethod
    def of(cls, row: Task, *, version: int, attempt: int) -> Claim:
        return cls(
            task_id=row.id,
            version=version,
            attempt=attempt,
            kind=row.kind,
            org_id=row.org_id,
            user_id=row.user_id,
            params=row.params,
            request_id=row.request_id,
            max_attempts=row.max_attempts,
            webhook_url=row.webhook_url,
            parent_id=row.parent_id,
        )

    @property
    def owner_id(self) -> uuid.UUID:
        """The task whose events these are: the parent for a webhook delivery, else itself."""
        return self.parent_id or self.task_id
