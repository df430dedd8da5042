"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, EmailStr, Field, field_validator

__all__ = [
    "EventView",
    "ImportContactsIn",
    "JobRequest",
    "ProcessDataIn",
    "SendNotificationIn",
    "TaskAccepted",
    "TaskView",
]

MAX_URL_LENGTH = 2048


class JobRequest(BaseModel):
    """Fields every job request shares."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: AnyHttpUrl | None = Field(
        default=None,
        description="Called when the task ends (delivery comes with the webhooks feature).",
    )

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _bounded_url(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_URL_LENGTH:
            raise ValueError(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
        return value

    def webhook(self) -> str | None:
        return None if self.webhook_url is None else str(self.webhook_url)


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


class EventView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stream_id: uuid.UUID
    version: int
    type: str
    at: datetime
    payload: dict[str, Any]
