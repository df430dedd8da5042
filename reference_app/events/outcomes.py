"""The events that end an attempt: success, or a failure with its retry decision."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent

__all__ = [
    "TERMINAL_EVENTS",
    "after_cancel_request",
    "cancelled_event",
    "failure_events",
    "success_event",
]

TERMINAL_EVENTS = frozenset(
    {EventType.TASK_SUCCEEDED, EventType.TASK_FAILED, EventType.TASK_CANCELLED}
)


def success_event(*, attempt: int, result: dict[str, Any], duration_ms: float) -> NewEvent:
    return NewEvent(
        EventType.TASK_SUCCEEDED,
        {"attempt": attempt, "result": result, "duration_ms": round(duration_ms, 3)},
    )


def failure_events(
    *,
    attempt: int,
    max_attempts: int,
    error_type: str,
    error: str,
    transient: bool,
    delay: float,
    details: dict[str, Any] | None = None,
) -> list[NewEvent]:
    """``attempt_failed`` and its decision: ``retry_scheduled`` (due later) or ``task_failed``.

    Only a transient failure with attempts left is retried; the decision and
    its due time go into the log, so a restart neither loses nor hurries it.
    """
    failed = NewEvent(
        EventType.ATTEMPT_FAILED,
        {
            "attempt": attempt,
            "error_type": error_type,
            "error": error,
            "transient": transient,
            **(details or {}),
        },
    )
    if transient and attempt < max_attempts:
        due = failed.at + timedelta(seconds=delay)
        retry = {
            "attempt": attempt,
            "due_at": due.isoformat(),
            "delay_seconds": round(delay, 3),
            "reason": error_type,
        }
        return [failed, NewEvent(EventType.RETRY_SCHEDULED, retry, at=failed.at)]
    final = {"attempt": attempt, "error_type": error_type, "error": error}
    return [failed, NewEvent(EventType.TASK_FAILED, final, at=failed.at)]


def cancelled_event(
    *, attempt: int, reason: str, by: str | None = None, at: datetime | None = None
) -> NewEvent:
    """``task_cancelled``: the task ends without another attempt."""
    payload: dict[str, Any] = {"attempt": attempt, "reason": reason}
    if by is not None:
        payload["by"] = by
    event = NewEvent(EventType.TASK_CANCELLED, payload)
    return event if at is None else NewEvent(event.type, payload, at=at)


def after_cancel_request(events: list[NewEvent]) -> list[NewEvent]:
    """An attempt's outcome once a cancel was requested while it ran: a success stands (it
    happened), a failure's decision becomes ``task_cancelled`` instead of a retry."""
    failed = events[0]
    if failed.type is not EventType.ATTEMPT_FAILED:
        return events
    reason = "cancel requested while the attempt ran; it then failed"
    return [failed, cancelled_event(attempt=failed.payload["attempt"], reason=reason, at=failed.at)]
