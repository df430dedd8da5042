"""Step 2: a sync retry wrapper around an async task. The task silently never runs.

``retry`` was written for ``def`` tasks. Around an ``async def`` it is still a plain
function, so Starlette calls it in the threadpool; calling the task there only *creates* a
coroutine, which raises nothing, so the "first attempt succeeds" and the wrapper returns it.
Starlette drops the return value. The work never happens; the only trace is a
``RuntimeWarning: coroutine 'sync_account' was never awaited`` on stderr, if anyone looks.
``functools.wraps`` is here and does not help: the wrapper is still not a coroutine function.

Run: .venv/bin/uvicorn lessons.lesson_06_retries.step_02_sync_wrapper:app --port 8000
"""

from __future__ import annotations

import functools
import time
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

app = FastAPI(title="Lesson 06, step 2: a sync wrapper around an async task")


def retry(max_retries: int = 3, delay: float = 0.05) -> Callable[[Callable[..., Any]], Any]:
    """A retry decorator for sync ``def`` tasks."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(max_retries + 1):
                try:
                    return func(*args, **kwargs)  # an async def only builds a coroutine here
                except Exception as e:
                    if attempt == max_retries:
                        raise
                    logger.warning(
                        "task_attempt_failed_retrying", attempt=attempt + 1, error=str(e)
                    )
                    time.sleep(delay)

        return wrapper

    return decorator


class SyncIn(BaseModel):
    account_id: str


@retry(max_retries=3)
async def sync_account(account_id: str) -> None:
    """Fetch the account from the partner API and record its balance."""
    account = await fetch_account(account_id)
    logger.info("account_synced", account_id=account_id, balance=account["balance"])


@app.post("/sync-account", status_code=202)
async def sync(body: SyncIn, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(sync_account, account_id=body.account_id)
    return {"status": "accepted", "task": sync_account.__name__}
