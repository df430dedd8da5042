"""What the store's methods take and return, besides claims and submissions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from reference_app.db.models import Task
from reference_app.events.store import NewEvent
from reference_app.store.claims import Claim, Lease

__all__ = [
    "DueTask",
    "Lease",
    "NewStream",
    "Recorded",
    "Recovered",
    "TaskRecord",
    "TerminalHook",
]

# Given a task's claim and its final event, the first event of a stream to start in the
# same transaction (its id and ``task_scheduled``), or None.
NewStream = tuple[uuid.UUID, NewEvent]
TerminalHook = Callable[[Claim, NewEvent], NewStream | None]


@dataclass(frozen=True, slots=True)
class DueTask:
    """A task a terminal hook started: due now, for a worker with a slot for its kind."""

    task_id: uuid.UUID
    kind: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_outcome`` did: nothing if the attempt was superseded (its lease
    expired and another attempt took over), else the streams its hooks started."""

    superseded: bool
    started: list[DueTask] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recovered:
    """What ``recover_expired_leases`` did: the tasks whose attempt it ended, and the
    streams the terminal hooks started for those that ended for good."""

    recovered: list[uuid.UUID]
    started: list[DueTask]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task's projection row, and its webhook delivery's row if it has one."""

    task: Task
    delivery: Task | None
