"""The store's group committer: short write transactions, several to a commit.

Every commit is a round trip (through aiosqlite's thread on SQLite, over the
network on PostgreSQL), so a transaction per request caps an app at a few
hundred durable writes a second. The group committer runs the write units that
concurrent coroutines submit in one transaction and resolves each caller only
after that transaction commits: every caller still gets "committed before I
answer", at a fraction of the commits.

Only ``TaskStore`` uses it: the rest of the app calls the store's per-item
methods and never sees a batch. Two kinds of unit share a batch:

- ``run(unit)``: a coroutine function of a session, run as it is;
- ``run_batched(unit, item)``: a coroutine function of a session and a list of
  items that returns one result per item. All items submitted for the same
  ``unit`` in one batch go to a single call, so it can read and write them with
  one statement per table instead of one per item.

If a batch fails, it is rolled back and each unit is run again in its own
transaction, so only the failing caller sees its error. A database outage is
the exception to that: every caller of the batch, and every caller queued
behind it, gets the outage error at once, instead of N more attempts at a
database that is not there. So no caller waits much beyond one database
timeout (SQLite's busy timeout, the pool's timeout, a connect timeout).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.errors import is_database_outage
from reference_app.db.engine import SessionFactory, session_scope

__all__ = ["BatchUnit", "GroupCommitter", "Unit"]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741
Unit = Callable[[AsyncSession], Awaitable[T]]
# Items in, one result per item out, in the same order.
BatchUnit = Callable[[AsyncSession, Sequence[I]], Awaitable[Sequence[T]]]


@dataclass(slots=True)
class _Entry:
    unit: Callable[..., Awaitable[Any]]
    item: Any
    batched: bool
    future: asyncio.Future[Any]

    async def run_alone(self, session: AsyncSession) -> Any:
        if self.batched:
            (result,) = await self.unit(session, [self.item])
            return result
        return await self.unit(session)


class GroupCommitter:
    """Runs write units in committed transactions, several units to a transaction."""

    def __init__(
        self, sessions: SessionFactory, *, group_commit: bool, max_batch: int = 200
    ) -> None:
        self.sessions = sessions
        self.group_commit = group_commit
        self.max_batch = max_batch
        self._pending: list[_Entry] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._loop_task: asyncio.Task[None] | None = None

    async def run(self, unit: Unit[T]) -> T:
        """Run ``unit`` and return its result once its transaction has committed."""
        if not self.group_commit:
            async with session_scope(self.sessions) as session:
                return await unit(session)
        result: T = await self._submit(_Entry(unit, None, False, self._future()))
        return result

    async def run_batched(self, unit: BatchUnit[I, T], item: I) -> T:
        """Have ``unit`` handle ``item``, with the other items for ``unit`` in the same batch;
        return its result for ``item`` once the batch is committed."""
        if not self.group_commit:
            async with session_scope(self.sessions) as session:
                (result,) = await unit(session, [item])
            return result
        batched: T = await self._submit(_Entry(unit, item, True, self._future()))
        return batched

    async def close(self) -> None:
        """Finish what is queued, then stop the commit loop."""
        if self._loop_task is None:
            return
        self._closing = True
        self._wake.set()
        await self._loop_task
        self._loop_task = None

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _submit(self, entry: _Entry) -> asyncio.Future[Any]:
        self._pending.append(entry)
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            # A context of its own: not the log context of the request that happened to start it.
            self._loop_task = asyncio.create_task(
                self._commit_loop(), name="group-commit", context=contextvars.Context()
            )
        return entry.future

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

    async def _commit(self, batch: list[_Entry]) -> None:
        try:
            async with session_scope(self.sessions) as session:
                results = await _run_batch(session, batch)
        except Exception as exc:
            if is_database_outage(exc):
                # What queued meanwhile would wait out the same timeout again, batch after
                # batch (a request 4 batches back waited 18.9 s behind a 5 s busy timeout on
                # a locked SQLite): it gets the outage now, and nothing of it was written.
                queued, self._pending = self._pending, []
                _fail(batch + queued, exc)
                return
            # Rolled back: give every unit its own transaction, so only the guilty one fails.
            for entry in batch:
                await self._commit_alone(entry)
            return
        except BaseException as exc:  # cancelled mid-batch: nothing committed, tell everyone
            _fail(batch, exc)
            raise
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    async def _commit_alone(self, entry: _Entry) -> None:
        try:
            async with session_scope(self.sessions) as session:
                result = await entry.run_alone(session)
        except Exception as exc:
            if not entry.future.done():
                entry.future.set_exception(exc)
        else:
            if not entry.future.done():
                entry.future.set_result(result)


async def _run_batch(session: AsyncSession, batch: list[_Entry]) -> list[Any]:
    """Run a batch's units in ``session``; the results in the batch's order."""
    results: list[Any] = [None] * len(batch)
    groups: dict[Callable[..., Awaitable[Any]], list[int]] = {}
    for i, entry in enumerate(batch):
        if entry.batched:
            groups.setdefault(entry.unit, []).append(i)
        else:
            results[i] = await entry.unit(session)
    for unit, positions in groups.items():
        outs = await unit(session, [batch[i].item for i in positions])
        for i, out in zip(positions, outs, strict=True):
            results[i] = out
    return results


def _fail(batch: list[_Entry], exc: BaseException) -> None:
    for entry in batch:
        if not entry.future.done():
            entry.future.set_exception(exc)
