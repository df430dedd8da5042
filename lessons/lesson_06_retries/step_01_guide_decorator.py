"""Step 1: the guide's retry decorator, as written: no ``functools.wraps``, retries everything.

The wrapper replaces the task: its name becomes ``wrapper``, its docstring is gone, and its
signature becomes ``(*args, **kwargs)``, so logs, tracebacks and type checks lose the task.
It retries every exception, a 404 as much as a 503, and adds up to a second of jitter
before capping, so once the cap is reached every client retries in lockstep.

Run: .venv/bin/uvicorn lessons.lesson_06_retries.step_01_guide_decorator:app --port 8000
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from lessons.lesson_06_retries.partner import fetch_account
from reference_app.core.config import get_settings
from reference_app.core.logging import configure_logging, get_logger

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
logger = get_logger(__name__)

app = FastAPI(title="Lesson 06, step 1: the guide's retry decorator")


def guide_delay(attempt: int, base_delay: float, backoff_factor: float, max_delay: float) -> float:
    """The guide's formula: add up to 1 s of jitter, then cap. At the cap, no jitter is left."""
    return min(base_delay * (backoff_factor**attempt) + random.uniform(0, 1), max_delay)


def retry_async(
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    backoff_factor: float = 2.0,
    exceptions: tuple[type[Exception], ...] = (Exception,),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:  # no functools.wraps, no ParamSpec
            last_exception = None

            for attempt in range(max_retries + 1):
                try:
                    return await func(*args, **kwargs)
                except exceptions as e:
                    last_exception = e

                    if attempt == max_retries:
                        logger.error(
                            "task_failed_after_maximum_retries",
                            attempts=max_retries + 1,
                            error=str(e),
                        )
                        raise e

                    delay = guide_delay(attempt, base_delay, backoff_factor, max_delay)
                    logger.warning(
                        "task_attempt_failed_retrying",
                        attempt=attempt + 1,
                        delay=delay,
                        error=str(e),
                    )
                    await asyncio.sleep(delay)

            raise last_exception  # type: ignore[misc]  # unreachable, as in the guide

        return wrapper

    return decorator


class SyncIn(BaseModel):
    account_id: str


@retry_async(max_retries=3, base_delay=0.05, max_delay=0.2)
async def sync_account(account_id: str) -> None:
    """Fetch the account from the partner API and record its balance."""
    account = await fetch_account(account_id)
    logger.info("account_synced", account_id=account_id, balance=account["balance"])


@app.post("/sync-account", status_code=202)
async def sync(body: SyncIn, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(sync_account, account_id=body.account_id)
    return {"status": "accepted", "task": sync_account.__name__}
