"""Short write transactions, group-committed on SQLite.

SQLite has one writer at a time and every commit is a round trip through
aiosqlite's thread, so a commit per request caps an app at a few hundred
durable writes a second. The group committer runs the write units that
concurrent coroutines submit in one transaction and resolves each caller
only after that transaction commits: every caller still gets "committed
before I answer", at a fraction of the commits. If a unit fails, the batch is
rolled back and each unit is run again on its own, so only the failing
caller sees the error.

On PostgreSQL, concurrent transactions on pooled connections already scale,
so each unit simply gets its own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.db.engine import SessionFactory, session_scope

__all__ = ["Writer"]

T = TypeVar("T")
Unit = Callable[[AsyncSession], Awaitable[T]]


class Writer:
    """Runs a write unit (a coroutine function of a session) in a committed transaction."""

    def __init__(
        self, sessions: SessionFactory, *, group_commit: bool, max_batch: int = 200
    ) -> None:
        self.sessions = sessions
        self.group_commit = group_commit
        self.max_batch = max_batch
        self._pending: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._loop_task: asyncio.Task[None] | None = None

    async def run(self, unit: Unit[T]) -> T:
        """Run ``unit`` and return its result once its transaction has committed."""
        if not self.group_commit:
            async with session_scope(self.sessions) as session:
                return await unit(session)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((unit, future))
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._commit_loop(), name="group-commit")
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the commit loop."""
        if self._loop_task is None:
            return
        self._closing = True
        self._wake.set()
        await self._loop_task
        self._loop_task = None

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[Unit[Any], asyncio.Future[Any]]]) -> None:
        try:
            async with session_scope(self.sessions) as session:
                results = [await unit(session) for unit, _ in batch]
        except Exception:
            # Rolled back: give every unit its own transaction, so only the guilty one fails.
            for unit, future in batch:
                await self._commit_alone(unit, future)
            return
        except BaseException as exc:  # cancelled mid-batch: nothing committed, tell everyone
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _commit_alone(self, unit: Unit[Any], future: asyncio.Future[Any]) -> None:
        try:
            async with session_scope(self.sessions) as session:
                result = await unit(session)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
