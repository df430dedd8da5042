"""Step 2: a request id, bound once per request, on every log line of the request and its task.

Run: .venv/bin/uvicorn lessons.lesson_02_structlog.step_02_request_id:app --port 8000
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from fastapi import BackgroundTasks, Depends, FastAPI, Request, Response
from pydantic import BaseModel, EmailStr, Field

from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.core.request_id import valid_request_id

settings = get_settings()
# Step 1's chain, plus uvicorn's and other stdlib logs through the same processors.
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)


async def bind_request_id(request: Request, response: Response) -> str:
    """Bind the caller's X-Request-ID (or a new one) into this request's log context; echo it.

    ``async def`` on purpose: FastAPI runs a ``def`` dependency in its threadpool, in a copy
    of the context, and what it binds there never reaches the endpoint.
    """
    request_id = valid_request_id(request.headers.get("X-Request-ID")) or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response.headers["X-Request-ID"] = request_id
    return request_id


app = FastAPI(title="Lesson 02, step 2: request ids", dependencies=[Depends(bind_request_id)])


class NotificationIn(BaseModel):
    email: EmailStr
    message: str = Field(min_length=1, max_length=10_000)


async def send_notification(task_log: structlog.stdlib.BoundLogger, message: str) -> None:
    """An ``async def`` task runs in the request's own context: it sees the request id too."""
    await asyncio.sleep(0.02)  # the round trip to the mail service
    task_log.info("notification_sent", characters=len(message), sent_at=utcnow().isoformat())


@app.post("/send-notification", status_code=202)
async def accept_notification(
    body: NotificationIn, background_tasks: BackgroundTasks
) -> dict[str, str]:
    notification_id = str(uuid.uuid4())
    # Ids, not personal data: the reference chain has no mask_email.
    task_log = log.bind(notification_id=notification_id)
    task_log.info("notification_accepted")
    background_tasks.add_task(send_notification, task_log, body.message)
    return {"notification_id": notification_id}
