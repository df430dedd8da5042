"""Step 3: a ``def`` task. Does it still see the request id? Run by Starlette: yes. In a
thread you start yourself: no.

Run: .venv/bin/uvicorn lessons.lesson_02_structlog.step_03_sync_task:app --port 8000
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Literal

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


app = FastAPI(title="Lesson 02, step 3: sync tasks", dependencies=[Depends(bind_request_id)])


class NotificationIn(BaseModel):
    email: EmailStr
    message: str = Field(min_length=1, max_length=10_000)


def send_notification(task_log: structlog.stdlib.BoundLogger, message: str, via: str) -> None:
    """A sync task body, such as a blocking mail library: it must not run on the event loop."""
    time.sleep(0.02)  # the blocking send
    task_log.info(
        "notification_sent", via=via, characters=len(message), sent_at=utcnow().isoformat()
    )


@app.post("/send-notification", status_code=202)
async def accept_notification(
    body: NotificationIn,
    background_tasks: BackgroundTasks,
    run_in: Literal["threadpool", "thread"] = "threadpool",
) -> dict[str, str]:
    notification_id = str(uuid.uuid4())
    # Ids, not personal data: the reference chain has no mask_email.
    task_log = log.bind(notification_id=notification_id)
    task_log.info("notification_accepted")
    if run_in == "threadpool":
        # Starlette runs a def task with anyio.to_thread.run_sync: in a *copy* of this context.
        background_tasks.add_task(send_notification, task_log, body.message, via="threadpool")
    else:
        # A thread started by hand begins with an empty context (so does loop.run_in_executor).
        threading.Thread(target=send_notification, args=(task_log, body.message, "thread")).start()
    return {"notification_id": notification_id}
