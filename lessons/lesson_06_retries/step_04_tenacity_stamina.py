"""Step 4: the same retries with tenacity and with stamina.

Both keep the task's name and signature and retry async functions on the event loop. tenacity
is a toolbox: ``wait_random_exponential`` is full jitter, and a ``wait`` callable can honour
``Retry-After``. stamina wraps tenacity with opinionated defaults (10 attempts, a 45 s total
timeout), a backoff hook that may return the server's delay, a test mode, and a structlog line
per retry (``stamina.retry_scheduled``). Its jitter is added before the cap, like the guide's.
Both still retry in this process's memory only.

Run: .venv/bin/uvicorn lessons.lesson_06_retries.step_04_tenacity_stamina:app --port 8000
"""

from __future__ import annotations

from typing import Literal

import stamina
import tenacity
from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from lessons.lesson_06_retries.partner import fetch_account
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.tasks.errors import is_transient
from reference_app.tasks.shield import shielded

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
logger = get_logger(__name__)

app = FastAPI(title="Lesson 06, step 4: tenacity and stamina")

MAX_ATTEMPTS, BASE, CAP = 4, 0.05, 2.0
full_jitter = tenacity.wait_random_exponential(multiplier=BASE, max=CAP)


def retry_after_or_full_jitter(state: tenacity.RetryCallState) -> float:
    """tenacity's wait: the server's ``Retry-After`` (clamped) if it sent one, else full jitter."""
    exc = state.outcome.exception() if state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    return full_jitter(state) if retry_after is None else min(max(retry_after, BASE), CAP)


def log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else None
    logger.warning(
        "tenacity_retry_scheduled",
        attempt=state.attempt_number,
        delay_seconds=delay,
        reason=type(exc).__name__,
    )


def retry_after_or_transient(exc: Exception) -> bool | float:
    """stamina's backoff hook: retry transient errors; a ``Retry-After`` replaces the backoff."""
    retry_after = getattr(exc, "retry_after", None)
    if not is_transient(exc) or retry_after is None:
        return is_transient(exc)
    return float(min(max(retry_after, BASE), CAP))


class SyncIn(BaseModel):
    account_id: str


@shielded
@tenacity.retry(
    retry=tenacity.retry_if_exception(is_transient),
    stop=tenacity.stop_after_attempt(MAX_ATTEMPTS),
    wait=retry_after_or_full_jitter,
    before_sleep=log_retry,
    reraise=True,
)
async def sync_account_tenacity(account_id: str) -> None:
    """Fetch the account from the partner API and record its balance."""
    account = await fetch_account(account_id)
    logger.info("account_synced", account_id=account_id, balance=account["balance"])


@shielded
@stamina.retry(
    on=retry_after_or_transient,
    attempts=MAX_ATTEMPTS,
    wait_initial=BASE,
    wait_max=CAP,
    wait_jitter=BASE,
)
async def sync_account_stamina(account_id: str) -> None:
    """Fetch the account from the partner API and record its balance."""
    account = await fetch_account(account_id)
    logger.info("account_synced", account_id=account_id, balance=account["balance"])


TASKS = {"tenacity": sync_account_tenacity, "stamina": sync_account_stamina}


@app.post("/sync-account", status_code=202)
async def sync(
    body: SyncIn, background_tasks: BackgroundTasks, library: Literal["tenacity", "stamina"]
) -> dict[str, str]:
    task = TASKS[library]
    background_tasks.add_task(task, account_id=body.account_id)
    return {"status": "accepted", "task": task.__name__}
