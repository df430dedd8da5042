"""Step 3: a retry decorator done right: async, ``functools.wraps``, ``ParamSpec``.

It keeps the task's name, docstring and signature (so a wrong argument to ``add_task`` is a
type error), stays a coroutine function (so Starlette awaits it on the event loop), retries
only transient errors, and waits with capped exponential backoff and full jitter, or for the
server's ``Retry-After``: ``RetryPolicy.delay`` from the reference app decides.

All of that lives in this process's memory: a restart forgets the task and its next attempt.

Run: .venv/bin/uvicorn lessons.lesson_06_retries.step_03_wraps_paramspec:app --port 8000
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from lessons.lesson_06_retries.partner import fetch_account
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger
from reference_app.tasks.errors import is_transient
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.shield import shielded

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
logger = get_logger(__name__)

app = FastAPI(title="Lesson 06, step 3: a retry decorator done right")

P = ParamSpec("P")
T = TypeVar("T")
POLICY = RetryPolicy(max_attempts=4, base_seconds=0.05, cap_seconds=2.0)


def retry(
    policy: RetryPolicy,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    def decorator(func: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            attempt = 1
            while True:
                try:
                    return await func(*args, **kwargs)
                except Exception as exc:  # CancelledError is a BaseException: it passes
                    transient = is_transient(exc)
                    if not transient or attempt >= policy.max_attempts:
                        logger.error(
                            "task_failed",
                            task=func.__qualname__,
                            attempt=attempt,
                            transient=transient,
                        )
                        raise
                    delay = policy.delay(attempt, getattr(exc, "retry_after", None))
                    logger.warning(
                        "retry_scheduled",
                        task=func.__qualname__,
                        attempt=attempt,
                        delay_seconds=round(delay, 3),
                        reason=type(exc).__name__,
                    )
                    await asyncio.sleep(delay)  # in memory: a restart forgets it
                    attempt += 1

        return wrapper

    return decorator


class SyncIn(BaseModel):
    account_id: str


@shielded  # lesson 04: what is left after the last attempt is logged, not raised into Starlette
@retry(POLICY)
async def sync_account(account_id: str) -> None:
    """Fetch the account from the partner API and record its balance."""
    account = await fetch_account(account_id)
    logger.info("account_synced", account_id=account_id, balance=account["balance"])


@app.post("/sync-account", status_code=202)
async def sync(body: SyncIn, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(sync_account, account_id=body.account_id)
    return {"status": "accepted", "task": sync_account.__name__}
