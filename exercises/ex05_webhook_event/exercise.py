"""Exercise 05: a new webhook event type, ``notification.cancelled``.

``POST /notifications/{notification_id}/cancel`` with ``{"webhook_url", "reason"}`` must answer
202 and, in the background, deliver a signed ``notification.cancelled`` event to the URL, through
the app's one shared ``AsyncClient``, behind the SSRF guard: lesson 05, step 4 has every piece.

Check it: make check EX=05
"""

from __future__ import annotations

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, Field

from lessons.lesson_05_httpx_webhooks.step_04_ssrf_guard import (  # noqa: F401 - yours to use
    HttpClient,
    checked_url,
    deliver,
    lifespan,
)

EVENT_TYPE = "notification.cancelled"

app = FastAPI(title="Exercise 05: a new webhook event type", lifespan=lifespan)


class CancelIn(BaseModel):
    webhook_url: str
    reason: str = Field(min_length=1, max_length=500)


@app.post("/notifications/{notification_id}/cancel", status_code=202)
async def cancel_notification(
    notification_id: str, body: CancelIn, background_tasks: BackgroundTasks, client: HttpClient
) -> dict[str, str]:
    # TODO:
    # 1. check body.webhook_url at submission (a 422 for an unsafe URL);
    # 2. build the event {"type": EVENT_TYPE, "timestamp": <aware UTC ISO 8601>,
    #    "data": {"notification_id": ..., "reason": ...}} and serialise it once, to bytes;
    # 3. queue the signed delivery through the shared client, with a new msg_... id.
    return {"status": "accepted"}
