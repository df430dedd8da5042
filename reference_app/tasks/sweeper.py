"""The sweeper: an in-app loop that hands the worker the work no request is running."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from reference_app.core.logging import get_logger
from reference_app.store import TaskStore
from reference_app.tasks.worker import Worker

__all__ = ["Sweeper"]

log = get_logger(__name__)


class Sweeper:
    """At start and every ``interval`` seconds (or when the worker says work is due):
    have the store recover expired leases, then claim due ``scheduled`` and ``retrying``
    tasks up to the worker's free slots, and give them to the worker.

    This is what makes delivery at-least-once: a task accepted while every slot
    was busy, a retry whose time has come, an attempt whose process died, and
    delayed or periodic work once due are all picked up here. So ``interval``
    (plus one pass) bounds how late due work starts while a slot is free.
    """

    def __init__(
        self,
        store: TaskStore,
        worker: Worker,
        *,
        interval: float,
        on_pass: Callable[[int, int], None] | None = None,
    ) -> None:
        self.store = store
        self.worker = worker
        self.interval = interval
        # Told after every pass: (attempts it claimed and started, expired leases it recovered).
        self.on_pass = on_pass
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Keep the reference: the loop only holds weak references to tasks.
        self._task = asyncio.create_task(self._loop(), name="sweeper")

    def wake(self) -> None:
        """Sweep now rather than at the next interval."""
        self.worker.work_due.set()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let the current pass finish, then end the loop; cancel it only if it hangs.

        Cancelling in the middle of a database call can leave the driver's
        thread finishing the call after the event loop has closed.
        """
        if self._task is None:
            return
        self._stopping = True
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        except TimeoutError:
            self._task.cancel()
            await asyncio.wait([self._task])  # unlike awaiting it, keeps a cancel aimed at us
        self._task = None

    async def sweep_once(self, *, recover: bool = True) -> int:
        """One pass; returns how many attempts it started. ``recover=False`` skips the
        look for expired leases and only claims due work."""
        recovered = 0
        if recover:
            if self.store.backlog.bound is not None:
                await self.store.count_due()  # admission control's baseline, once an interval
            outcome = await self.store.recover_expired_leases()
            recovered = len(outcome.recovered)
            self.worker.run_soon(outcome.started)
        started = await self._claim_due()
        if recovered or started:
            log.info("sweep_finished", recovered=recovered, started=started)
        if self.on_pass is not None:
            self.on_pass(started, recovered)
        return started

    async def _claim_due(self) -> int:
        """Claim for the kinds with a limit of their own (one query each, up to their room),
        then for all the others together, up to the free general slots."""
        limited = sorted(self.worker.limits)
        started = 0
        for kind in limited:
            started += await self._claim(kind, kinds=[kind])
        return started + await self._claim(None, exclude=limited)

    async def _claim(
        self, slot: str | None, *, kinds: list[str] | None = None, exclude: Sequence[str] = ()
    ) -> int:
        # Take the slots before awaiting the database, so a request cannot take them meanwhile.
        slots = self.worker.reserve(self.worker.room(slot), kind=slot)
        if not slots:
            # Woken with every slot busy (a retry came due): come back when one frees,
            # not at the next interval.
            self.worker.mark_backlog()
            return 0
        claims = []
        try:
            claims = await self.store.claim_due(
                slots, self.worker.lease, kinds=kinds, exclude=exclude
            )
        finally:
            self.worker.release(slots - len(claims), kind=slot)
        if len(claims) == slots:
            self.worker.mark_backlog()  # a full batch: more may be due
        self.worker.start(claims)
        return len(claims)

    async def _loop(self) -> None:
        due = self.worker.work_due
        next_recovery = 0.0
        while not self._stopping:
            # A freed slot wakes us up to hundreds of times a second under load. Leases
            # expire on a scale of seconds, so they are looked for once per interval.
            recover = time.monotonic() >= next_recovery
            if recover:
                next_recovery = time.monotonic() + self.interval
            due.clear()
            try:
                await self.sweep_once(recover=recover)
            except Exception:
                log.exception("sweep_failed")
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
            # that arrives as the event fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await due.wait()
