"""The task store: every statement the task system runs, behind one method per action.

A worker, a sweeper or a route calls ``accept``, ``claim``, ``record_outcome``
and the rest with one item each. Behind them, accepts, claims and outcomes go
through the group committer, so concurrent callers share transactions and each
transaction reads and writes a whole batch with a few statements. That is the
store's business alone: no caller sees a batch.

Side effects of a task's end that must commit with it (a webhook delivery) are
*terminal hooks*: functions registered with the store that, given the claim
and its final event, return a new stream to start in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import TaskEvent
from reference_app.events.lifecycle import TaskStatus
from reference_app.events.outcomes import TERMINAL_EVENTS, failure_events
from reference_app.events.store import (
    Append,
    ConcurrencyConflict,
    NewEvent,
    append_many,
    renew_leases,
    start_streams,
)
from reference_app.store.admission import DueBacklog
from reference_app.store.claims import (
    Claim,
    ClaimRow,
    count_due,
    select_claimable,
    select_due,
    select_due_except_kinds,
    select_due_of_kinds,
    select_expired_leases,
    start_attempts,
)
from reference_app.store.group_commit import GroupCommitter
from reference_app.store.reads import events_of, find_by_key, find_task
from reference_app.store.records import (
    DueTask,
    Lease,
    NewStream,
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
    ) -> None:
        self.sessions = sessions
        # Reads that need no write lock (on SQLite, connections without BEGIN IMMEDIATE).
        self.read_sessions = read_sessions or sessions
        self.max_attempts = max_attempts
        self._commits = GroupCommitter(sessions, group_commit=group_commit)
        self._terminal_hooks = list(terminal_hooks)
        # Admission control (off with None): ``accept`` refuses while this many tasks are
        # due. ``due`` is the last count (``count_due``), plus this process's accepts since,
        # minus its claims since: other processes' work shows at the next count.
        self.backlog = DueBacklog(max_due)  # admission control (off with None)

    def add_terminal_hook(self, hook: TerminalHook) -> None:
        """Have ``hook`` start a stream in the transaction that ends a task."""
        self._terminal_hooks.append(hook)

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
        return Accepted(task_id=task_id, status=TaskStatus.SCHEDULED.value, created=True)

    async def _find_by_key(self, submission: Submission) -> Accepted | None:
        async with session_scope(self.read_sessions) as session:
            return await find_by_key(session, submission)

    # Claiming ---------------------------------------------------------------

    async def claim(self, task_id: uuid.UUID, lease: Lease) -> Claim | None:
        """Start the next attempt of a ``scheduled`` task under ``lease``; None if it is
        not scheduled any more (another worker or the sweeper got there first)."""
        try:
            claim: Claim | None = await self._commits.run_batched(
                self._claim_batch, (task_id, lease)
            )
        except ConcurrencyConflict:
            return None
        if claim is not None:
            self.backlog.started(1)
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
        params: dict[str, Any] = {"now": utcnow(), "limit": limit}
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
        return claims

    async def count_due(self) -> int:
        """Count the due backlog (every process's): the baseline of admission control."""
        async with session_scope(self.read_sessions) as session:
            counted = int(await session.scalar(count_due, {"now": utcnow()}) or 0)
        self.backlog.counted(counted)
        return self.backlog.due

    async def _claim_batch(
        self, session: AsyncSession, items: Sequence[tuple[uuid.UUID, Lease]]
    ) -> list[Claim | None]:
        """One read and one append for every claim of a batch. None for a task that is no
        longer scheduled, or that the batch names twice (the claim goes to the caller whose
        lease it was started under)."""
        leases = dict(items)  # a task named twice is started under its last caller's lease
        rows = await session.execute(select_claimable, {"task_ids": sorted(leases)})
        startable = [row for row in rows if row.status == TaskStatus.SCHEDULED.value]
        started: dict[uuid.UUID, Claim] = {}
        # Grouped by lease: a batch holds the claims of one worker, so nearly always one group.
        for lease in set(leases.values()):
            mine = [row for row in startable if leases[row.id] == lease]
            started.update((c.task_id, c) for c in await start_attempts(session, mine, lease))
        return [
            started.pop(task_id, None) if leases[task_id] == lease else None
            for task_id, lease in items
        ]

    async def renew_lease(self, claim: Claim, lease: Lease) -> bool:
        """Extend the attempt's lease; False if the task moved on or another owner holds it.
        Batched: a few hundred running attempts renew with a statement or two a second."""
        renewed: bool = await self._commits.run_batched(
            self._renew_batch, (claim.task_id, claim.version, lease)
        )
        return renewed

    async def _renew_batch(
        self, session: AsyncSession, items: Sequence[tuple[uuid.UUID, int, Lease]]
    ) -> list[bool]:
        renewed: set[tuple[uuid.UUID, int, Lease]] = set()
        for lease in {lease for _, _, lease in items}:
            mine = [(task_id, version) for task_id, version, each in items if each == lease]
            kept = await renew_leases(session, mine, owner=lease.owner, until=lease.expires())
            renewed |= {(task_id, version, lease) for task_id, version in kept}
        return [item in renewed for item in items]

    # Outcomes ---------------------------------------------------------------

    async def record_outcome(self, claim: Claim, events: list[NewEvent]) -> Recorded:
        """Append the events that end the claim's attempt, with what the terminal hooks start."""
        try:
            started = await self._commits.run_batched(self._append_outcomes, (claim, events))
        except ConcurrencyConflict:
            return Recorded(superseded=True)
        return Recorded(superseded=False, started=started)

    async def recover_expired_leases(self) -> Recovered:
        """Fail the attempts of running tasks whose owner stopped renewing its lease, and
        schedule their retries (or fail them for good). ``started``: what hooks started."""

        async def recover(session: AsyncSession) -> tuple[Sequence[ClaimRow], list[list[DueTask]]]:
            rows = (await session.execute(select_expired_leases, {"now": utcnow()})).all()
            outcomes = [
                (
                    Claim.of(row, version=row.version, attempt=row.attempts),
                    failure_events(
                        attempt=row.attempts,
                        max_attempts=row.max_attempts,
                        error_type="LeaseExpired",
                        error=f"lease held by {row.lease_owner} expired; its process stopped",
                        transient=True,
                        delay=0.0,
                    ),
                )
                for row in rows
            ]
            return rows, (await self._append_outcomes(session, outcomes) if outcomes else [])

        rows, enqueued = await self._commits.run(recover)
        for row in rows:
            log.warning("lease_expired", task_id=str(row.id), kind=row.kind, attempt=row.attempts)
        return Recovered([row.id for row in rows], [s for each in enqueued for s in each])

    async def _append_outcomes(
        self, session: AsyncSession, outcomes: Sequence[tuple[Claim, list[NewEvent]]]
    ) -> list[list[DueTask]]:
        """Append attempts' outcomes, and start what the terminal hooks return for the
        final ones, in the same transaction. The streams started, for each outcome."""
        appends = [Append(c.task_id, c.version, events, c.parent_id) for c, events in outcomes]
        await append_many(session, appends)
        started: list[list[DueTask]] = []
        streams: list[NewStream] = []
        for claim, events in outcomes:
            final = events[-1]
            mine: list[DueTask] = []
            if final.type in TERMINAL_EVENTS:
                for hook in self._terminal_hooks:
                    stream = hook(claim, final)
                    if stream is not None:
                        streams.append(stream)
                        mine.append(DueTask(stream[0], stream[1].payload["kind"]))
            started.append(mine)
        await start_streams(session, streams)
        return started

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
