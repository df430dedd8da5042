"""Run a coroutine to completion from plain code, whether or not a loop runs already."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_async"]

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` on a private loop in a worker thread: callable from anywhere, an async
    test or a runner with a loop of its own included."""

    async def _main() -> T:
        return await make()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _main()).result()
