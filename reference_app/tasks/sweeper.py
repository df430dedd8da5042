"""The sweeper: an in-app loop that re-drives work no request is running."""

from __future__ import annotations

import asyncio
import contextlib
import time

from reference_app.core.logging import get_logger
from reference_app.tasks.runner import TaskRunner

__all__ = ["Sweeper"]

log = get_logger(__name__)


class Sweeper:
    """At start and every ``interval`` seconds (or when woken): recover expired leases,
    then claim due ``scheduled`` and ``retrying`` tasks up to the runner's free slots.

    This is what makes delivery at-least-once: a task accepted while every slot
    was busy, a retry whose time has come, and an attempt whose process died
    are all picked up here.
    """

    def __init__(self, runner: TaskRunner, *, interval: float) -> None:
        self.runner = runner
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        runner.on_work_due = self.wake

    def start(self) -> None:
        # Keep the reference: the loop only holds weak references to tasks.
        self._task = asyncio.create_task(self._loop(), name="sweeper")

    def wake(self) -> None:
        """Sweep now rather than at the next interval."""
        self._wake.set()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let the current pass finish, then end the loop; cancel it only if it hangs.

        Cancelling in the middle of a database call can leave the driver's
        thread finishing the call after the event loop has closed.
        """
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        except TimeoutError:
            self._task.cancel()
            await asyncio.wait([self._task])  # unlike awaiting it, keeps a cancel aimed at us
        self._task = None

    async def sweep_once(self, *, recover: bool = True) -> int:
        """One pass; returns how many attempts it started. ``recover=False`` skips the
        look for expired leases and only claims due work."""
        recovered = await self.runner.recover_expired_leases() if recover else 0
        started = await self.runner.claim_due()
        if recovered or started:
            log.info("sweep_finished", recovered=recovered, started=started)
        return started

    async def _loop(self) -> None:
        next_recovery = 0.0
        while not self._stopping:
            # A freed slot wakes us up to hundreds of times a second under load. Leases
            # expire on a scale of seconds, so they are looked for once per interval.
            recover = time.monotonic() >= next_recovery
            if recover:
                next_recovery = time.monotonic() + self.interval
            try:
                await self.sweep_once(recover=recover)
            except Exception:
                log.exception("sweep_failed")
            # A full batch suggests more is due: the runner wakes us when a slot frees.
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
            # that arrives as the event fires.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
