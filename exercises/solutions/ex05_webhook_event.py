"""Exercise 05, a reference solution: a signed ``notification.cancelled`` webhook."""

from __future__ import annotations

import json
import uuid

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, Field

from lessons.lesson_05_httpx_webhooks.step_04_ssrf_guard import (
    HttpClient,
    checked_url,
    deliver,
    lifespan,
)
from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings

EVENT_TYPE = "notification.cancelled"

app = FastAPI(title="Exercise 05: a new webhook event type", lifespan=lifespan)


class CancelIn(BaseModel):
    webhook_url: str
    reason: str = Field(min_length=1, max_length=500)


@app.post("/notifications/{notification_id}/cancel", status_code=202)
async def cancel_notification(
    notification_id: str, body: CancelIn, background_tasks: BackgroundTasks, client: HttpClient
) -> dict[str, str]:
    url = checked_url(body.webhook_url)  # 422 now, not a silent drop later
    event = {
        "type": EVENT_TYPE,
        "timestamp": utcnow().isoformat(),
        "data": {"notification_id": notification_id, "reason": body.reason},
    }
    content = json.dumps(event, separators=(",", ":")).encode()  # the exact bytes signed
    msg_id = f"msg_{uuid.uuid4().hex}"  # one id per message, the same on every retry
    secrets = get_settings().webhook_secrets
    background_tasks.add_task(deliver, client, url, msg_id, content, secrets)
    return {"status": "accepted"}
