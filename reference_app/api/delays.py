"""When a POST's work is due: its ``run_at`` or ``delay_seconds``, read against the clock.

The bounds that need no clock (naive times, both fields, 0..30 days of delay) are the
schema's (``JobRequest``); these are the ones that do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.exceptions import RequestValidationError

from reference_app.api.schemas import MAX_DELAY_SECONDS, RUN_AT_PAST_SECONDS, JobRequest

__all__ = ["due_time", "field_error"]


def field_error(loc: tuple[str, str], value: object, kind: str, message: str) -> Exception:
    """A 422 for one field, in the shape of FastAPI's own."""
    error = {"type": kind, "loc": loc, "msg": message, "input": value}
    return RequestValidationError([error])


def due_time(body: JobRequest, now: datetime) -> datetime | None:
    """When the task is due: ``now + delay_seconds`` or ``run_at``; None for at once (a
    delay of 0, a run_at not ahead). A run_at more than RUN_AT_PAST_SECONDS back is a 422
    (more likely a wrong time zone than a wish); one less far back is due now."""
    if body.delay_seconds is not None:
        return now + timedelta(seconds=body.delay_seconds) if body.delay_seconds else None
    if body.run_at is None:
        return None
    run_at = body.run_at.astimezone(UTC)
    if run_at < now - timedelta(seconds=RUN_AT_PAST_SECONDS):
        message = (
            f"run_at is more than {RUN_AT_PAST_SECONDS} s in the past (now is "
            f"{now.isoformat()}); send a later time, or leave it out to run at once"
        )
        raise field_error(("body", "run_at"), body.run_at.isoformat(), "run_at_past", message)
    if run_at > now + timedelta(seconds=MAX_DELAY_SECONDS):
        message = f"run_at is more than 30 days ahead (now is {now.isoformat()})"
        raise field_error(("body", "run_at"), body.run_at.isoformat(), "run_at_too_far", message)
    return run_at if run_at > now else None
