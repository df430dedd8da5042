"""The error shield: nothing a background task raises may escape into Starlette."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec

from reference_app.core.logging import get_logger

__all__ = ["shielded"]

P = ParamSpec("P")
log = get_logger(__name__)


def shielded(func: Callable[P, Awaitable[None]]) -> Callable[P, Coroutine[Any, Any, None]]:
    """Wrap a task entry point so that an exception is logged and swallowed.

    Starlette runs a response's background tasks one after another; an
    exception out of one skips every task queued after it and surfaces as
    "Exception in ASGI application" with no task context. ``CancelledError``
    is re-raised: it is how shutdown stops a task, not a failure of the task.
    """

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await func(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The entry point's id arguments, so a crash before any context is bound
            # (a claim that failed on a database outage) still names its task.
            ids = {k: str(v) for k, v in kwargs.items() if k.endswith("_id")}
            log.exception("task_crashed", entry_point=func.__qualname__, **ids)

    return wrapper
