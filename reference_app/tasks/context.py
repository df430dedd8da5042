"""What a task body receives: its ids and inputs, and the app's shared resources."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from reference_app.db.engine import SessionFactory

__all__ = ["Handler", "TaskContext"]


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Ids and plain data only: a task opens its own sessions from ``sessions``."""

    task_id: uuid.UUID
    org_id: str
    kind: str
    params: dict[str, Any]
    attempt: int
    sessions: SessionFactory
    cpu_pool: Executor


Handler = Callable[[TaskContext], Awaitable[dict[str, Any]]]
