"""Step 1 (anti-pattern): a task that raises takes the tasks queued after it down with it.

Run: .venv/bin/uvicorn lessons.lesson_04_error_shield.step_01_unshielded:app
"""

import uuid

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)

app = FastAPI()


class SignUp(BaseModel):
    email: str
    crm_up: bool = True  # false simulates an outage of the CRM


class CRMUnavailable(Exception):
    """The CRM could not take the new contact."""


async def sync_to_crm(*, signup_id: str, email: str, crm_up: bool) -> None:
    log.info("crm_sync_started", signup_id=signup_id)
    if not crm_up:
        raise CRMUnavailable("crm.example.com answered 503 Service Unavailable")
    log.info("crm_synced", signup_id=signup_id)


async def send_welcome(*, signup_id: str, email: str) -> None:
    log.info("welcome_sent", signup_id=signup_id, email=email)


@app.post("/signups", status_code=202)
async def sign_up(body: SignUp, tasks: BackgroundTasks) -> dict[str, str]:
    signup_id = uuid.uuid4().hex
    tasks.add_task(sync_to_crm, signup_id=signup_id, email=body.email, crm_up=body.crm_up)
    # Starlette runs a response's tasks one after another: this one runs only if the one
    # before it returned.
    tasks.add_task(send_welcome, signup_id=signup_id, email=body.email)
    return {"signup_id": signup_id, "status": "accepted"}
