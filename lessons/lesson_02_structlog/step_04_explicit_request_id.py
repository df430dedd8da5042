"""Step 4: the robust pattern. Pass the request id to the task as plain data, bind it inside.

Run: .venv/bin/uvicorn lessons.lesson_02_structlog.step_04_explicit_request_id:app --port 8000
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Annotated, Literal

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


RequestId = Annotated[str, Depends(bind_request_id)]

app = FastAPI(
    title="Lesson 02, step 4: explicit request ids", dependencies=[Depends(bind_request_id)]
)


class NotificationIn(BaseModel):
    email: EmailStr
    message: str = Field(min_length=1, max_length=10_000)


def send_notification(*, notification_id: str, request_id: str, message: str, via: str) -> None:
    """Plain data in, bound here: correct on any thread, and after a restart (lesson 07)."""
    # bound_contextvars, not bind_contextvars: unbound again on exit, so nothing leaks into
    # the next task that runs in this context or on this thread.
    with structlog.contextvars.bound_contextvars(
        request_id=request_id, notification_id=notification_id
    ):
        time.sleep(0.02)  # the blocking send
        log.info(
            "notification_sent", via=via, characters=len(message), sent_at=utcnow().isoformat()
        )


@app.post("/send-notification", status_code=202)
async def accept_notification(
    body: NotificationIn,
    background_tasks: BackgroundTasks,
    request_id: RequestId,
    run_in: Literal["threadpool", "thread"] = "threadpool",
) -> dict[str, str]:
    notification_id = str(uuid.uuid4())
    log.info("notification_accepted", notification_id=notification_id)
    task = {"notification_id": notification_id, "request_id": request_id, "message": body.message}
    if run_in == "threadpool":
        background_tasks.add_task(send_notification, **task, via="threadpool")
    else:
        threading.Thread(target=send_notification, kwargs={**task, "via": "thread"}).start()
    return {"notification_id": notification_id}
