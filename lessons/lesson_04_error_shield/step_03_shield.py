"""Step 3 (the fix): every task runs inside a shield that logs and records its failure.

Run: .venv/bin/uvicorn lessons.lesson_04_error_shield.step_03_shield:app
"""

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from reference_app.core.clock import utcnow
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
log = get_logger(__name__)

app = FastAPI()

P = ParamSpec("P")
# A simple record for this lesson. It lives in memory and dies with the process;
# the reference app appends attempt_failed and task_failed events to the task's log.
FAILURES: list[dict[str, str]] = []


def shielded(func: Callable[P, Awaitable[None]]) -> Callable[P, Coroutine[Any, Any, None]]:
    """Run ``func`` so that nothing it raises escapes into Starlette."""

    @functools.wraps(func)  # keeps __name__, __doc__ and __wrapped__ (and so the signature)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await func(*args, **kwargs)
        except asyncio.CancelledError:
            raise  # shutdown is stopping us: not a failure, and it must reach the event loop
        except Exception as exc:
            ids = {k: str(v) for k, v in kwargs.items() if k.endswith("_id")}  # ids, not payloads
            log.exception("task_failed", task=func.__name__, **ids)  # with the traceback
            error = f"{type(exc).__name__}: {exc}"
            FAILURES.append(
                {"task": func.__name__, **ids, "error": error, "at": utcnow().isoformat()}
            )

    return wrapper


class SignUp(BaseModel):
    email: str
    crm_up: bool = True  # false simulates an outage of the CRM


class CRMUnavailable(Exception):
    """The CRM could not take the new contact."""


@shielded
async def sync_to_crm(*, signup_id: str, email: str, crm_up: bool) -> None:
    log.info("crm_sync_started", signup_id=signup_id)
    if not crm_up:
        raise CRMUnavailable("crm.example.com answered 503 Service Unavailable")
    log.info("crm_synced", signup_id=signup_id)


@shielded
async def send_welcome(*, signup_id: str, email: str) -> None:
    log.info("welcome_sent", signup_id=signup_id, email=email)


@app.post("/signups", status_code=202)
async def sign_up(body: SignUp, tasks: BackgroundTasks) -> dict[str, str]:
    signup_id = uuid.uuid4().hex
    tasks.add_task(sync_to_crm, signup_id=signup_id, email=body.email, crm_up=body.crm_up)
    tasks.add_task(send_welcome, signup_id=signup_id, email=body.email)
    return {"signup_id": signup_id, "status": "accepted"}


@app.get("/failures")
async def failures() -> list[dict[str, str]]:
    """Where a failure is reported: not to the request that has already been answered."""
    return FAILURES
