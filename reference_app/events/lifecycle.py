"""A task's lifecycle: its event types, its statuses, and which event may follow which."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from itertools import pairwise

__all__ = [
    "TERMINAL_STATUSES",
    "EventType",
    "IllegalTransition",
    "TaskStatus",
    "check_batch",
    "check_sequence",
    "status_after",
    "statuses_before",
]


class EventType(StrEnum):
    TASK_SCHEDULED = "task_scheduled"
    TASK_STARTED = "task_started"
    ATTEMPT_FAILED = "attempt_failed"
    RETRY_SCHEDULED = "retry_scheduled"
    TASK_SUCCEEDED = "task_succeeded"
    TASK_FAILED = "task_failed"
    # An operator's actions (POST /tasks/{id}/cancel and /retry).
    CANCEL_REQUESTED = "cancel_requested"
    TASK_CANCELLED = "task_cancelled"
    TASK_REQUEUED = "task_requeued"


class TaskStatus(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Running, with a cancel requested: its worker stops it at its next heartbeat.
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# Nothing runs after these, unless an operator re-drives a failed or cancelled task.
TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# Which event may follow which. ``None`` is the empty stream.
# ``attempt_failed`` is always appended together with its decision (retry, fail, or cancel
# when a cancel was requested), so a committed stream never ends on it, and a stored status
# always tells the last committed event.
_NEXT: dict[EventType | None, frozenset[EventType]] = {
    None: frozenset({EventType.TASK_SCHEDULED}),
    EventType.TASK_SCHEDULED: frozenset({EventType.TASK_STARTED, EventType.TASK_CANCELLED}),
    EventType.TASK_STARTED: frozenset(
        {EventType.TASK_SUCCEEDED, EventType.ATTEMPT_FAILED, EventType.CANCEL_REQUESTED}
    ),
    # The attempt may still end on its own before its worker sees the request.
    EventType.CANCEL_REQUESTED: frozenset(
        {EventType.TASK_CANCELLED, EventType.TASK_SUCCEEDED, EventType.ATTEMPT_FAILED}
    ),
    EventType.ATTEMPT_FAILED: frozenset(
        {EventType.RETRY_SCHEDULED, EventType.TASK_FAILED, EventType.TASK_CANCELLED}
    ),
    EventType.RETRY_SCHEDULED: frozenset({EventType.TASK_STARTED, EventType.TASK_CANCELLED}),
    EventType.TASK_SUCCEEDED: frozenset(),
    # The dead-letter re-drive: a failed or cancelled task is scheduled again.
    EventType.TASK_FAILED: frozenset({EventType.TASK_REQUEUED}),
    EventType.TASK_CANCELLED: frozenset({EventType.TASK_REQUEUED}),
    EventType.TASK_REQUEUED: frozenset({EventType.TASK_STARTED, EventType.TASK_CANCELLED}),
}

_STATUS_AFTER: dict[EventType, TaskStatus] = {
    EventType.TASK_SCHEDULED: TaskStatus.SCHEDULED,
    EventType.TASK_STARTED: TaskStatus.RUNNING,
    EventType.ATTEMPT_FAILED: TaskStatus.RUNNING,
    EventType.RETRY_SCHEDULED: TaskStatus.RETRYING,
    EventType.TASK_SUCCEEDED: TaskStatus.SUCCEEDED,
    EventType.TASK_FAILED: TaskStatus.FAILED,
    EventType.CANCEL_REQUESTED: TaskStatus.CANCELLING,
    EventType.TASK_CANCELLED: TaskStatus.CANCELLED,
    EventType.TASK_REQUEUED: TaskStatus.SCHEDULED,
}

# The events a stored status may have as its last committed one (see the note on _NEXT):
# every event that leaves the status, but ``attempt_failed``, which never ends a batch.
_LAST_EVENTS_FOR: dict[TaskStatus, frozenset[EventType]] = {
    status: frozenset(
        e
        for e, after in _STATUS_AFTER.items()
        if after is status and e is not EventType.ATTEMPT_FAILED
    )
    for status in TaskStatus
}


class IllegalTransition(ValueError):
    """An event that may not follow the stream's last event."""


def status_after(event_type: EventType) -> TaskStatus:
    """The task's status once ``event_type`` is its last event."""
    return _STATUS_AFTER[event_type]


def statuses_before(first: EventType) -> frozenset[TaskStatus]:
    """The stored statuses from which a batch starting with ``first`` may be appended."""
    return frozenset(
        s for s, lasts in _LAST_EVENTS_FOR.items() if any(first in _NEXT[e] for e in lasts)
    )


def _check_step(previous: EventType | None, event_type: EventType) -> None:
    if event_type not in _NEXT[previous]:
        raise IllegalTransition(f"{event_type} may not follow {previous or 'an empty stream'}")


def check_batch(batch: Sequence[EventType]) -> None:
    """Raise IllegalTransition unless ``batch`` is in order and leaves a committable stream."""
    if not batch:
        raise IllegalTransition("an append needs at least one event")
    for previous, event_type in pairwise(batch):
        _check_step(previous, event_type)
    if batch[-1] is EventType.ATTEMPT_FAILED:
        raise IllegalTransition(
            "attempt_failed must be appended with its decision: retry_scheduled, task_failed"
            " or task_cancelled"
        )


def check_sequence(previous: EventType | None, batch: Sequence[EventType]) -> None:
    """Raise IllegalTransition unless ``batch`` may follow ``previous``."""
    check_batch(batch)
    _check_step(previous, batch[0])
