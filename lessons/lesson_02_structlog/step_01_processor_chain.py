"""Step 1: the processor chain, written out: JSON lines, aware UTC timestamps, and ``bind``.

Run: .venv/bin/uvicorn lessons.lesson_02_structlog.step_01_processor_chain:app --port 8000
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import TextIO

import structlog
from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, EmailStr, Field
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from reference_app.core.clock import utcnow


def mask_email(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Keep an address's first letter and its domain: enough to debug, too little to leak."""
    email = event_dict.get("email")
    if isinstance(email, str) and "@" in email:
        local, _, domain = email.partition("@")
        event_dict["email"] = f"{local[:1]}***@{domain}"
    return event_dict


def configure_json_logging(file: TextIO | None = None) -> None:
    """Every event dict runs through the chain, top to bottom; the last processor renders it."""
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,  # what bind_contextvars() bound (step 2)
        structlog.processors.add_log_level,
        # Aware UTC, ISO 8601 with a "Z". Never datetime.utcnow(): naive, and deprecated.
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_email,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(file or sys.stderr),
        cache_logger_on_first_use=False,
    )


configure_json_logging()
log: FilteringBoundLogger = structlog.get_logger()

app = FastAPI(title="Lesson 02, step 1: the processor chain and bind")


class NotificationIn(BaseModel):
    email: EmailStr
    message: str = Field(min_length=1, max_length=10_000)


async def send_notification(task_log: FilteringBoundLogger, message: str) -> None:
    """Gets the request's bound logger, so the fields bound there come along."""
    await asyncio.sleep(0.02)  # the round trip to the mail service
    task_log.info("notification_sent", characters=len(message), sent_at=utcnow().isoformat())


@app.post("/send-notification", status_code=202)
async def accept_notification(
    body: NotificationIn, background_tasks: BackgroundTasks
) -> dict[str, str]:
    notification_id = str(uuid.uuid4())
    # bind returns a new logger that adds these fields to every event; `log` is unchanged.
    task_log = log.bind(notification_id=notification_id, email=body.email)
    task_log.info("notification_accepted")
    background_tasks.add_task(send_notification, task_log, body.message)
    return {"notification_id": notification_id}
