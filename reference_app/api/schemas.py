"""Request and response bodies."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    model_validator,
)

from reference_app.events.lifecycle import TaskStatus
from reference_app.store import Position, TaskFilters
from reference_app.tasks.schedules import CatchUp
from reference_app.webhooks.ssrf import MAX_URL_LENGTH

__all__ = [
    "MAX_DELAY_SECONDS",
    "RUN_AT_PAST_SECONDS",
    "DeliveryStatus",
    "EventView",
    "ImportContactsIn",
    "JobRequest",
    "ProcessDataIn",
    "ScheduleView",
    "ScheduledTaskView",
    "SendNotificationIn",
    "TaskAccepted",
    "TaskListQuery",
    "TaskPageView",
    "TaskView",
    "WebhookView",
    "storable_json",
    "storable_text",
]


def storable_text(text: str) -> str:
    """Refuse text that a JSON column cannot hold on every backend.

    Python's ``json`` reads ``"\\u0000"`` and a lone ``"\\ud800"`` without complaint, SQLite
    stores them, and PostgreSQL refuses them: checked here, they are a 422 on both.
    """
    if "\x00" in text:
        raise ValueError("text may not contain the NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text may not contain a lone surrogate such as \\ud800") from None
    return text


def storable_json(value: Any) -> Any:
    """Refuse JSON values that a JSON column cannot hold on every backend.

    Besides the text above, Python's ``json`` accepts ``NaN`` and ``Infinity``, which
    are not JSON: a client sending them gets a 422 instead of a database error.
    """
    pending = [value]
    while pending:  # a loop, not recursion: the body-size limit bounds the work, not the stack
        item = pending.pop()
        if isinstance(item, str):
            storable_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not JSON numbers; send a finite number")
        elif isinstance(item, dict):
            for key, child in item.items():
                storable_text(key)
                pending.append(child)
        elif isinstance(item, list):
            pending.extend(item)
    return value


StorableText = Annotated[str, AfterValidator(storable_text)]

# How far ahead work may be delayed, by run_at or delay_seconds: 30 days.
MAX_DELAY_SECONDS = 30 * 24 * 3600
# A run_at up to this far in the past (clock skew, a slow client) is due at once; one
# further back is a 422, as it is more likely a wrong time zone than a wish.
RUN_AT_PAST_SECONDS = 300


class JobRequest(BaseModel):
    """Fields every job request shares."""

    model_config = ConfigDict(extra="forbid")

    # A plain string: the SSRF guard, not a URL type's normaliser, decides what it means.
    webhook_url: StorableText | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description="Public http(s) URL that gets a signed POST when the task ends.",
    )
    run_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "Start the task at this time, not before: ISO 8601 with an offset "
            "(`2026-12-04T03:00:00Z`), at most 30 days ahead. Up to 5 minutes in the past "
            "is due at once; further back is a 422. Not with `delay_seconds`."
        ),
    )
    delay_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        description="Start the task this many seconds after it is accepted (0 to 30 days).",
    )

    @model_validator(mode="after")
    def _one_due_time(self) -> JobRequest:
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("send run_at or delay_seconds, not both")
        return self


class ImportContactsIn(JobRequest):
    file_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SendNotificationIn(JobRequest):
    email: EmailStr
    message: StorableText = Field(min_length=1, max_length=10_000)


class ProcessDataIn(JobRequest):
    data: Annotated[dict[str, Any], AfterValidator(storable_json)] = Field(
        min_length=1, description="Any non-empty JSON object."
    )
    io_ms: int = Field(default=300, ge=0, le=5000, description="Awaited I/O time, in ms.")
    cpu_ms: int = Field(
        default=0, ge=0, le=1000, description="CPU time in the process pool, in ms."
    )


class TaskAccepted(BaseModel):
    task_id: uuid.UUID
    status: str
    status_url: str


class TaskView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task_id: uuid.UUID = Field(validation_alias="id")
    kind: str
    status: str
    version: int
    attempts: int
    max_attempts: int
    result: dict[str, Any] | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None = Field(
        description=(
            "When a scheduled or retrying task is due: now, the request's run_at (or its "
            "delay_seconds after acceptance), a schedule's slot, or a retry's backoff; "
            "null once an attempt starts."
        )
    )
    webhook: WebhookView | None = None


class TaskPageView(BaseModel):
    """A page of ``GET /tasks``, newest first."""

    items: list[TaskView]
    next: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page."
    )


def _valid_cursor(cursor: str) -> str:
    Position.decode(cursor)  # InvalidCursor is a ValueError: a 422 that says what to send
    return cursor


# Constraints first, then the check: PostgreSQL refuses a NUL even in a parameter (a 500
# otherwise), and a megabyte of cursor is refused before it is decoded.
KindFilter = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(storable_text)]
Cursor = Annotated[str, Field(max_length=200), AfterValidator(_valid_cursor)]


class TaskListQuery(BaseModel):
    """The query of ``GET /tasks``. An unknown parameter is a 422: a misspelt filter must
    not list every task."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus | None = Field(default=None, description="Only tasks in this status.")
    kind: KindFilter | None = Field(
        default=None, description="Only tasks of this kind, e.g. `process_data`."
    )
    created_after: AwareDatetime | None = Field(
        default=None,
        description="Tasks created at or after this time: ISO 8601 with an offset, e.g. "
        "`2026-12-04T00:00:00Z` (encode a `+` as `%2B`).",
    )
    created_before: AwareDatetime | None = Field(
        default=None, description="Tasks created before this time, as `created_after`."
    )
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Cursor | None = Field(default=None, description="The `next` of the previous page.")

    @model_validator(mode="after")
    def _window_not_empty(self) -> TaskListQuery:
        after, before = self.created_after, self.created_before
        if after is not None and before is not None and after >= before:
            raise ValueError("created_after must be earlier than created_before")
        return self

    def filters(self) -> TaskFilters:
        return TaskFilters(
            status=self.status,
            kind=self.kind,
            created_after=self.created_after,
            created_before=self.created_before,
        )

    def position(self) -> Position | None:
        """Where the previous page ended, from ``cursor``."""
        return Position.decode(self.cursor) if self.cursor is not None else None


DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookView(BaseModel):
    """The delivery of the task's webhook: its own stream, with its own retries."""

    delivery_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    finished_at: datetime | None


class EventView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stream_id: uuid.UUID
    version: int
    type: str
    at: datetime
    payload: dict[str, Any]


class ScheduledTaskView(BaseModel):
    """The task a schedule made for its newest slot so far."""

    task_id: uuid.UUID
    status: str
    slot: datetime


class ScheduleView(BaseModel):
    """A periodic schedule declared in code, and where it stands."""

    name: str
    kind: str
    every_seconds: int | None = Field(description="The interval, if it has one.")
    cron: str | None = Field(description="The cron expression (UTC), if it has one.")
    catch_up: CatchUp = Field(
        description="After downtime: one (the newest missed slot), all, or none."
    )
    next_due_at: datetime = Field(description="The next slot it will make a task for.")
    last_task: ScheduledTaskView | None
