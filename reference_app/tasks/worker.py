"""The worker: runs task attempts in this process, at most ``capacity`` at a time.

It owns the slots, the lease it claims under, and the running attempts. It asks
the store for nothing on its own: a route hands it a just-accepted task
(``submit``), and the sweeper hands it due work it claimed for the free slots
(``start``). Work that finds no free slot stays ``scheduled`` in the database,
and ``work_due`` tells the sweeper when a slot frees for it.

Every attempt takes one of the ``capacity`` general slots; an attempt of a kind
with a limit of its own (``TaskKind.concurrency``, a CPU-bound kind) also counts
against that limit.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta

from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory
from reference_app.store import Claim, DueTask, Lease, TaskStore
from reference_app.tasks.attempt import CANCEL_RECORD_SECONDS, Attempt
from reference_app.tasks.context import Handler
from reference_app.tasks.deadline import Deadline
from reference_app.tasks.kinds import TaskKind, concurrency_limits, kinds_of
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.shield import shielded

__all__ = ["Worker"]

log = get_logger(__name__)


class Worker:
    """Slots, spawning and the lease; ``Attempt`` runs each claimed attempt."""

    def __init__(
        self,
        *,
        store: TaskStore,
        handlers: Mapping[str, Handler | TaskKind],
        policy: RetryPolicy,
        capacity: int,
        lease_seconds: float,
        sessions: SessionFactory,
        cpu_pool: Executor,
        cpu_slots: int = 1,
        owner: str | None = None,
        policies: Mapping[str, RetryPolicy] | None = None,
        timeout_seconds: float = 300.0,
        cancel_grace_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.kinds = kinds_of(handlers)
        self.policy = policy
        # Per-kind policies (webhook deliveries back off over hours); ``policy`` for the rest.
        self.policies = {
            **dict(policies or {}),
            **{name: kind.retry for name, kind in self.kinds.items() if kind.retry},
        }
        # Each kind's attempt deadline: its own, else the app's.
        self.timeouts = {name: kind.timeout or timeout_seconds for name, kind in self.kinds.items()}
        self.capacity = capacity
        # The kinds with a limit of their own; the others share the general slots.
        self.limits = concurrency_limits(self.kinds, cpu_slots=cpu_slots)
        self.owner = owner or f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = Lease(self.owner, lease_seconds)
        # Set when a slot frees while work waits in the database, and when a retry this
        # process scheduled comes due: the sweeper waits on it between passes.
        self.work_due = asyncio.Event()
        self._attempt = Attempt(
            store=store,
            lease=self.lease,
            sessions=sessions,
            cpu_pool=cpu_pool,
            on_retry_scheduled=self._wake_after,
            deadline=Deadline(grace_seconds=cancel_grace_seconds),
        )
        self._in_flight = 0
        self._in_flight_of: Counter[str] = Counter()
        self._backlog = False
        self._spawned: set[asyncio.Task[None]] = set()

    # Slots ------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        return self.capacity - self._in_flight

    def room(self, kind: str | None = None) -> int:
        """Free slots for an attempt of ``kind`` (None: of a kind without a limit)."""
        free = self.capacity - self._in_flight
        if kind in self.limits:
            free = min(free, self.limits[kind] - self._in_flight_of[kind])
        return max(free, 0)

    def reserve(self, wanted: int = 1, kind: str | None = None) -> int:
        """Take up to ``wanted`` slots for attempts of ``kind``; how many were taken. Taking
        fewer than wanted means work is waiting: a freed slot then sets ``work_due``."""
        taken = min(wanted, self.room(kind))
        self._in_flight += taken
        if kind in self.limits:
            self._in_flight_of[kind] += taken
        if taken < wanted:
            self._backlog = True
        return taken

    def mark_backlog(self) -> None:
        """More work may be due than was claimed: set ``work_due`` when a slot frees."""
        self._backlog = True

    def release(self, count: int = 1, kind: str | None = None) -> None:
        self._in_flight -= count
        if kind in self.limits:
            self._in_flight_of[kind] -= count
        if count and self._backlog:
            self._backlog = False
            self.work_due.set()

    def _slot_kind(self, kind: str) -> str | None:
        """The key a slot of ``kind`` is counted under: itself if it has a limit."""
        return kind if kind in self.limits else None

    # Entry points -----------------------------------------------------------

    @shielded
    async def submit(self, *, task_id: uuid.UUID, kind: str) -> None:
        """What a route hands to ``BackgroundTasks``: claim the just-accepted task and run it,
        if a slot is free; else leave it to the sweeper, which sees it due."""
        if self.reserve(kind=self._slot_kind(kind)):
            await self._claim_and_run_reserved(task_id, self._slot_kind(kind))

    async def run_inline(self, task_id: uuid.UUID) -> None:
        """Run one attempt inside the request; a transient failure is left to the sweeper."""
        claim = await self.store.claim(task_id, self.lease)
        if claim is not None:
            await self._run(claim)

    def hold_until(self) -> datetime:
        """When a task this process will run at once becomes due for the sweeper, should
        the process die before it starts: one lease from now."""
        return utcnow() + timedelta(seconds=self.lease.seconds)

    def start(self, claims: Iterable[Claim]) -> None:
        """Run claims on slots already reserved for them, each in a task of its own."""
        for claim in claims:
            name = f"task-{claim.task_id}"
            self._track(asyncio.create_task(self._run_reserved(claim), name=name))

    def run_soon(self, due: Iterable[DueTask]) -> None:
        """Start just-scheduled tasks (what terminal hooks started) now if slots are free,
        else leave them to the sweeper."""
        for task in due:
            key = self._slot_kind(task.kind)
            if self.reserve(kind=key):
                entry = self._run_soon_entry(task_id=task.task_id, slot=key)
                self._track(asyncio.create_task(entry))

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for the attempts it started, then cancel the rest."""
        self._attempt.deadline.cancel_abandoned()  # already recorded as timed out
        pending = set(self._spawned)
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
        for task in still_running:
            task.cancel()
        if still_running:
            log.warning("shutdown_cut_tasks", count=len(still_running))
            await asyncio.wait(still_running, timeout=CANCEL_RECORD_SECONDS + 1)

    # Running ----------------------------------------------------------------

    async def _run(self, claim: Claim) -> None:
        kind = self.kinds[claim.kind]
        policy = self.policies.get(claim.kind, self.policy)
        timeout = self.timeouts[claim.kind]
        recorded = await self._attempt.run(claim, kind.handler, policy, deadline_seconds=timeout)
        self.run_soon(recorded.started)  # what its terminal hooks started, if anything

    @shielded
    async def _run_reserved(self, claim: Claim) -> None:
        try:
            await self._run(claim)
        finally:
            self.release(kind=self._slot_kind(claim.kind))

    async def _claim_and_run_reserved(self, task_id: uuid.UUID, slot: str | None) -> None:
        try:
            claim = await self.store.claim(task_id, self.lease)
            if claim is not None:
                await self._run(claim)
        finally:
            self.release(kind=slot)

    @shielded
    async def _run_soon_entry(self, *, task_id: uuid.UUID, slot: str | None) -> None:
        await self._claim_and_run_reserved(task_id, slot)

    def _track(self, task: asyncio.Task[None]) -> None:
        # The loop keeps only weak references to tasks: hold them until done.
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _wake_after(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.work_due.set)
