"""The task store: every statement the task system runs, behind one method per action.

A worker, a sweeper or a route calls ``accept``, ``claim``, ``record_outcome``
and the rest with one item each. Behind them, accepts, claims and outcomes go
through the group committer, so concurrent callers share transactions and each
transaction reads and writes a whole batch with a few statements. That is the
store's business alone: no caller sees a batch.

Side effects of a task's end that must commit with it (a webhook delivery) are
*terminal hooks*: functions registered with the store that, given the claim
and its final event, return a new stream to start in the same transaction. What only
watches (a metric) is an *observer* (``store.observer``), told after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import TaskEvent
from reference_app.events.lifecycle import TaskStatus
from reference_app.events.store import (
    ConcurrencyConflict,
    NewEvent,
    start_streams,
)
from reference_app.store import controls
from reference_app.store.admission import DueBacklog
from reference_app.store.claims import (
    Claim,
    ClaimRow,
    claim_batch,
    count_due,
    renew_batch,
    select_cancel_request,
    select_due,
    select_due_except_kinds,
    select_due_of_kinds,
    select_expired_leases,
    start_attempts,
)
from reference_app.store.controls import Controlled
from reference_app.store.group_commit import GroupCommitter
from reference_app.store.keyed import KeyedTask, newest_by_key
from reference_app.store.listing import Position, TaskFilters, TaskPage, list_tasks
from reference_app.store.observer import StoreObserver
from reference_app.store.outcomes import append_outcomes, expiry_events
from reference_app.store.queue_state import QueueState, read_queue_state
from reference_app.store.reads import events_of, find_by_key, find_task
from reference_app.store.records import (
    DueTask,
    Lease,
    Recorded,
    Recovered,
    TaskRecord,
    TerminalHook,
)
from reference_app.store.submissions import Accepted, Submission, scheduled_event

__all__ = ["TaskStore"]

log = get_logger(__name__)


class TaskStore:
    """The one way into the tasks and their events."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        max_attempts: int,
        group_commit: bool = True,
        read_sessions: SessionFactory | None = None,
        terminal_hooks: Sequence[TerminalHook] = (),
        max_due: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        observers: Sequence[StoreObserver] = (),
    ) -> None:
        self.sessions = sessions
        # What "now" is for due work (claims, the due count, a delayed task's due time);
        # leases are timed by the wall clock. Tests pass a clock they move.
        self.clock = clock
        # Reads that need no write lock (on SQLite, connections without BEGIN IMMEDIATE).
        self.read_sessions = read_sessions or sessions
        self.max_attempts = max_attempts
        self._commits = GroupCommitter(sessions, group_commit=group_commit)
        self._terminal_hooks = list(terminal_hooks)
        self._observers = list(observers)
        # Admission control (off with None): ``accept`` refuses while this many tasks are
        # due. ``due`` is the last count (``count_due``), plus this process's accepts since,
        # minus its claims since: other processes' work shows at the next count.
        self.backlog = DueBacklog(max_due)  # admission control (off with None)

    def add_terminal_hook(self, hook: TerminalHook) -> None:
        """Have ``hook`` start a stream in the transaction that ends a task."""
        self._terminal_hooks.append(hook)

    def _tell(self, tell: Callable[[StoreObserver], None]) -> None:
        """Tell every observer; one that raises is logged, and the others are told."""
        for observer in self._observers:
            try:
                tell(observer)
            except Exception:
                log.exception("store_observer_failed", observer=type(observer).__name__)

    async def close(self) -> None:
        """Commit what is queued, then stop the group committer."""
        await self._commits.close()

    # Accepting --------------------------------------------------------------

    async def accept(self, submission: Submission) -> Accepted:
        """Commit the task's ``task_scheduled`` (or find the task its idempotency key made)."""
        if submission.idempotency_key is not None:
            existing = await self._find_by_key(submission)
            if existing is not None:
                return existing
        self.backlog.admit()  # BacklogFull at the bound: nothing written
        task_id = uuid.uuid4()
        scheduled = scheduled_event(submission, max_attempts=self.max_attempts)
        written = False
        try:
            await self._commits.run_batched(start_streams, (task_id, scheduled))
            written = True
        except IntegrityError:
            # Another request with the same key committed between our look-up and insert.
            if submission.idempotency_key is None:
                raise
            existing = await self._find_by_key(submission)
            if existing is None:
                raise
            return existing
        finally:
            self.backlog.committed(written=written)
        if self._observers:
            self._tell(lambda o: o.accepted(submission.kind))
        return Accepted(task_id=task_id, status=TaskStatus.SCHEDULED.value, created=True)

    async def _find_by_key(self, submission: Submission) -> Accepted | None:
        async with session_scope(self.read_sessions) as session:
            return await find_by_key(session, submission)

    # Claiming ---------------------------------------------------------------

    async def claim(self, task_id: uuid.UUID, lease: Lease) -> Claim | None:
        """Start the next attempt of a ``scheduled`` task under ``lease``; None if it is
        not scheduled any more (another worker or the sweeper got there first)."""
        try:
            claim: Claim | None = await self._commits.run_batched(claim_batch, (task_id, lease))
        except ConcurrencyConflict:
            return None
        if claim is not None:
            self.backlog.started(1)
            if self._observers:
                self._tell(lambda o: o.started([claim]))
        return claim

    async def claim_due(
        self,
        limit: int,
        lease: Lease,
        *,
        kinds: Collection[str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[Claim]:
        """Start due ``scheduled`` and ``retrying`` tasks, oldest first, at most ``limit``:
        of the ``kinds`` named, or of every kind but those in ``exclude``."""
        if limit <= 0:
            return []
        params: dict[str, Any] = {"now": self.clock(), "limit": limit}
        if kinds is not None:
            query, params["kinds"] = select_due_of_kinds, sorted(kinds)
        elif exclude:
            query, params["kinds"] = select_due_except_kinds, sorted(exclude)
        else:
            query = select_due

        async def claim_due(session: AsyncSession) -> list[Claim]:
            rows = await session.execute(query, params)
            return await start_attempts(session, rows.all(), lease)

        # Through the committer like every write: on SQLite it is then the one user of the
        # write connection, so a sweep never holds it while the committer's callers wait.
        claims: list[Claim] = await self._commits.run(claim_due)
        self.backlog.started(len(claims))
        if claims and self._observers:
            self._tell(lambda o: o.started(claims))
        return claims

    async def count_due(self) -> int:
        """Count the due backlog (every process's): the baseline of admission control."""
        async with session_scope(self.read_sessions) as session:
            counted = int(await session.scalar(count_due, {"now": self.clock()}) or 0)
        self.backlog.counted(counted)
        return self.backlog.due

    async def queue_state(self) -> QueueState:
        """The live tasks by status and the oldest due one (``store.queue_state``), as of
        ``clock()``: a handful of index lookups, on a read connection."""
        async with session_scope(self.read_sessions) as session:
            return await read_queue_state(session, self.clock())

    async def renew_lease(self, claim: Claim, lease: Lease) -> bool:
        """Extend the attempt's lease; False if the task moved on or another owner holds it.
        Batched: a few hundred running attempts renew with a statement or two a second."""
        renewed: bool = await self._commits.run_batched(
            renew_batch, (claim.task_id, claim.version, lease)
        )
        return renewed

    # Outcomes ---------------------------------------------------------------

    async def record_outcome(self, claim: Claim, events: list[NewEvent]) -> Recorded:
        """Append the events that end the claim's attempt, with what the terminal hooks start."""
        try:
            started = await self._commits.run_batched(self._append_outcomes, (claim, events))
        except ConcurrencyConflict:
            return Recorded(superseded=True)
        if self._observers:
            self._tell(lambda o: o.ended(claim, events))
        return Recorded(superseded=False, started=started)

    async def recover_expired_leases(self) -> Recovered:
        """Fail the attempts of running tasks whose owner stopped renewing its lease, and
        schedule their retries (or fail them for good). ``started``: what hooks started."""

        async def recover(session: AsyncSession) -> tuple[Sequence[ClaimRow], list[list[DueTask]]]:
            rows = (await session.execute(select_expired_leases, {"now": utcnow()})).all()
            outcomes = [
                (Claim.of(row, version=row.version, attempt=row.attempts), expiry_events(row))
                for row in rows
            ]
            return rows, (await self._append_outcomes(session, outcomes) if outcomes else [])

        rows, enqueued = await self._commits.run(recover)
        for row in rows:
            log.warning("lease_expired", task_id=str(row.id), kind=row.kind, attempt=row.attempts)
        return Recovered([row.id for row in rows], [s for each in enqueued for s in each])

    # An operator's controls ----------------------------------------------------

    async def cancel(self, org_id: str, task_id: uuid.UUID, *, by: str) -> Controlled:
        """Cancel the org's task: at once if it waits, at its worker's next heartbeat if it
        runs (``store.controls``). ``TaskNotFound``, or ``WrongStatus`` once it has ended."""
        hooks = self._terminal_hooks
        work = partial(controls.cancel, org_id=org_id, task_id=task_id, by=by, hooks=hooks)
        controlled: Controlled = await self._commits.run(work)
        return controlled

    async def requeue(self, org_id: str, task_id: uuid.UUID, *, by: str) -> Controlled:
        """Schedule the org's failed or cancelled task again, due now, with the retry budget
        renewed. ``TaskNotFound``, or ``WrongStatus`` for any other status."""
        work = partial(
            controls.requeue,
            org_id=org_id,
            task_id=task_id,
            by=by,
            budget=self.max_attempts,
            now=self.clock(),
        )
        controlled: Controlled = await self._commits.run(work)
        return controlled

    async def cancel_requested(self, claim: Claim, lease: Lease) -> int | None:
        """The version ``task_cancelled`` must follow, if a cancel was requested of the
        attempt ``claim`` runs under ``lease``; else None."""
        params = {"task_id": claim.task_id, "owner": lease.owner, "attempt": claim.attempt}
        async with session_scope(self.read_sessions) as session:
            version: int | None = await session.scalar(select_cancel_request, params)
        return version

    async def _append_outcomes(
        self, session: AsyncSession, outcomes: Sequence[tuple[Claim, list[NewEvent]]]
    ) -> list[list[DueTask]]:
        return await append_outcomes(session, outcomes, self._terminal_hooks)

    # Reading ----------------------------------------------------------------

    async def find_task(self, org_id: str, task_id: uuid.UUID) -> TaskRecord | None:
        """The org's task with this id, and its webhook delivery; None for another org's
        task, an unknown id, or a delivery (a part of its parent task, not a task)."""
        async with session_scope(self.read_sessions) as session:
            return await find_task(session, org_id, task_id)

    async def events_of(self, org_id: str, task_id: uuid.UUID) -> list[TaskEvent] | None:
        """Every event filed under the org's task, oldest first; None as ``find_task``."""
        async with session_scope(self.read_sessions) as session:
            return await events_of(session, org_id, task_id)

    async def list_tasks(
        self, org_id: str, filters: TaskFilters, *, limit: int, after: Position | None = None
    ) -> TaskPage:
        """A page of the org's tasks, newest first, deliveries left out (``store.listing``)."""
        async with session_scope(self.read_sessions) as session:
            return await list_tasks(session, org_id, filters, limit=limit, after=after)

    async def newest_by_key(self, org_id: str, lowest: str, highest: str) -> KeyedTask | None:
        """The org's task with the greatest idempotency key in ``[lowest, highest]``
        (``store.keyed``): a schedule's last slot."""
        async with session_scope(self.read_sessions) as session:
            return await newest_by_key(session, org_id, lowest, highest)
