"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

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
]


class JobRequest(BaseModel):
    """Fields every job request shares."""

    model_config = ConfigDict(extra="forbid")

    # A plain string: the SSRF guard, not a URL type's normaliser, decides what it means.
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description="Public http(s) URL that gets a signed POST when the task ends.",
    )


class ImportContactsIn(JobRequest):
    file_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SendNotificationIn(JobRequest):
    email: EmailStr
    message: str = Field(min_length=1, max_length=10_000)


class ProcessDataIn(JobRequest):
    data: dict[str, Any] = Field(min_length=1, description="Any non-empty JSON object.")
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
