"""Request and response bodies."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from reference_app.webhooks.ssrf import MAX_URL_LENGTH

__all__ = [
    "DeliveryStatus",
    "EventView",
    "ImportContactsIn",
    "JobRequest",
    "ProcessDataIn",
    "SendNotificationIn",
    "TaskAccepted",
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


class JobRequest(BaseModel):
    """Fields every job request shares."""

    model_config = ConfigDict(extra="forbid")

    # A plain string: the SSRF guard, not a URL type's normaliser, decides what it means.
    webhook_url: StorableText | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description="Public http(s) URL that gets a signed POST when the task ends.",
    )


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
    run_after: datetime | None
    webhook: WebhookView | None = None


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
