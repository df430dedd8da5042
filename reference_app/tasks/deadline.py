"""An attempt's deadline: cancel the work when it passes (or when an operator cancels the
task), and give up on work that will not stop.

The handler runs in a task of its own, so the attempt can stop waiting for it. At the
deadline the work is cancelled and gets ``grace_seconds`` to unwind (its ``finally``
blocks run). What cancellation cannot stop goes on without us:

- a blocking call in a thread (``asyncio.to_thread``): the await ends at once, the
  thread runs to its end and holds a thread of the default pool until then;
- a job in the process pool: the await ends at once, the job runs to its end and holds
  a pool process, so the next CPU-bound attempt may wait in the pool behind it;
- a coroutine that catches ``CancelledError`` and carries on: it is abandoned, with an
  ``attempt_overdue`` warning, and what it returns later is discarded.

In every case the attempt ends at the deadline plus at most the grace: it is recorded as
``AttemptTimeout`` (transient, so the retry policy decides), and its slot is freed. A
blocking call *in the event loop* (``time.sleep`` in an ``async def``) stops everything,
this code included; the lease then expires and another process takes the task over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reference_app.core.logging import get_logger
from reference_app.tasks.errors import TransientError

__all__ = ["AttemptCancelled", "AttemptTimeout", "Deadline"]

log = get_logger(__name__)

T = TypeVar("T")


class AttemptTimeout(TransientError):
    """The attempt ran past its deadline: cancelled, or abandoned if it did not stop."""

    def __init__(self, deadline_seconds: float) -> None:
        super().__init__(f"the attempt ran past its {deadline_seconds:g} s deadline")
        self.deadline_seconds = deadline_seconds


class AttemptCancelled(Exception):
    """An operator cancelled the task while this attempt ran: stopped, or abandoned."""


@dataclass(slots=True)
class Deadline:
    """Runs awaitables under a deadline; keeps the ones that ignored it until they end."""

    grace_seconds: float
    _abandoned: set[asyncio.Future[Any]] = field(default_factory=set)

    @property
    def abandoned(self) -> int:
        """Work past its deadline that is still running (and will be discarded)."""
        return len(self._abandoned)

    async def run(
        self, work: Awaitable[T], seconds: float, *, stop: asyncio.Event | None = None
    ) -> T:
        """``work``'s result if it ends within ``seconds``, else ``AttemptTimeout`` after at
        most ``grace_seconds`` more; ``AttemptCancelled`` the same way once ``stop`` is set.
        Cancelled from outside (shutdown), the work is cancelled too and the cancellation
        goes on."""
        started = time.monotonic()
        task = asyncio.ensure_future(work)
        stopper = None if stop is None else asyncio.ensure_future(stop.wait())
        try:
            waiting = {task} if stopper is None else {task, stopper}
            done, _ = await asyncio.wait(
                waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            await self._stop(task, started, seconds)
            raise
        finally:
            if stopper is not None:
                stopper.cancel()
        if task in done:
            return task.result()
        await self._stop(task, started, seconds)
        if stopper is not None and stopper in done:
            raise AttemptCancelled("cancel requested: the attempt was stopped")
        raise AttemptTimeout(seconds)

    async def _stop(self, task: asyncio.Future[T], started: float, seconds: float) -> None:
        """Cancel ``task``, wait the grace for it to unwind, and abandon it if it does not."""
        task.cancel()
        stopped, _ = await asyncio.wait({task}, timeout=self.grace_seconds)
        if not stopped:
            log.warning(
                "attempt_overdue",
                running_seconds=round(time.monotonic() - started, 3),
                deadline_seconds=seconds,
                what="the work ignored cancellation: abandoned, its result will be discarded",
            )
            self._abandon(task, started)
        elif not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved

    def _abandon(self, task: asyncio.Future[Any], started: float) -> None:
        self._abandoned.add(task)

        def ended(done: asyncio.Future[Any]) -> None:
            self._abandoned.discard(done)
            if not done.cancelled():
                done.exception()  # an abandoned failure is not news either
            log.warning(
                "abandoned_attempt_ended",
                running_seconds=round(time.monotonic() - started, 3),
                what="its result was discarded",
            )

        task.add_done_callback(ended)

    def cancel_abandoned(self) -> None:
        """At shutdown: cancel once more what still runs past its deadline."""
        for task in list(self._abandoned):
            task.cancel()
