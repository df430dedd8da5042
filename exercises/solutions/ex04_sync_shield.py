"""Exercise 04, a reference solution: a shield for ``def`` tasks that stays a ``def``."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import ParamSpec

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from lessons.lesson_04_error_shield.step_03_shield import CRMUnavailable
from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger

log = get_logger(__name__)
P = ParamSpec("P")

# Where failures are reported (in memory, as in lesson 04, step 3): task, ids, error, at.
FAILURES: list[dict[str, str]] = []
WELCOMED: list[str] = []  # signup ids that got their welcome


def shielded_sync(func: Callable[P, None]) -> Callable[P, None]:
    """Run the ``def`` task ``func`` so that nothing it raises escapes into Starlette."""

    @functools.wraps(func)  # keeps __name__ and __wrapped__, and so the signature
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:  # def: still run in the threadpool
        try:
            func(*args, **kwargs)
        except Exception as exc:  # not BaseException: SystemExit and KeyboardInterrupt pass
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


@shielded_sync
def sync_to_crm(*, signup_id: str, email: str, crm_up: bool) -> None:
    """A blocking CRM client: a def task, run by Starlette in its threadpool."""
    log.info("crm_sync_started", signup_id=signup_id)
    time.sleep(0.01)  # the blocking call
    if not crm_up:
        raise CRMUnavailable("crm.example.com answered 503 Service Unavailable")
    log.info("crm_synced", signup_id=signup_id)


@shielded_sync
def send_welcome(*, signup_id: str, email: str) -> None:
    WELCOMED.append(signup_id)
    log.info("welcome_sent", signup_id=signup_id)


app = FastAPI(title="Exercise 04: a shield for def tasks")


@app.post("/signups", status_code=202)
async def sign_up(body: SignUp, tasks: BackgroundTasks) -> dict[str, str]:
    signup_id = uuid.uuid4().hex
    tasks.add_task(sync_to_crm, signup_id=signup_id, email=body.email, crm_up=body.crm_up)
    tasks.add_task(send_welcome, signup_id=signup_id, email=body.email)
    return {"signup_id": signup_id, "status": "accepted"}
