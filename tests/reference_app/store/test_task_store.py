"""The task store: claims, outcomes, leases and recovery, terminal hooks in the outcome's
transaction, and reads scoped to an org. Each on both databases, with and without group
commit where the two take different paths."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.core.clock import utcnow
from reference_app.core.errors import is_database_outage
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import EventType
from reference_app.events.outcomes import failure_events, success_event
from reference_app.events.store import NewEvent
from reference_app.store import (
    BacklogFull,
    Claim,
    DueTask,
    Lease,
    NewStream,
    Recorded,
    TaskStore,
    TerminalHook,
)
from tests.conftest import LockedSQLite
from tests.reference_app._task_kit import (
    DEAD_OWNER,
    load,
    schedule,
    schedule_retry,
    start_attempt,
    stream,
    submission,
    types_of,
)

LEASE = Lease("this-host:1:feed", 30.0)
OTHER = Lease("other-host:2:beef", 30.0)

group_commits = pytest.mark.parametrize("group_commit", [True, False], ids=["group", "alone"])


@asynccontextmanager
async def opened(
    sessions: SessionFactory,
    *,
    group_commit: bool = True,
    terminal_hooks: Sequence[TerminalHook] = (),
) -> AsyncIterator[TaskStore]:
    store = TaskStore(
        sessions, max_attempts=3, group_commit=group_commit, terminal_hooks=terminal_hooks
    )
    try:
        yield store
    finally:
        await store.close()


def succeeded(claim: Claim, **result: object) -> list[NewEvent]:
    return [success_event(attempt=claim.attempt, result=dict(result), duration_ms=1.0)]


def failed(claim: Claim, *, transient: bool) -> list[NewEvent]:
    return failure_events(
        attempt=claim.attempt,
        max_attempts=claim.max_attempts,
        error_type="TransientError" if transient else "ValueError",
        error="boom",
        transient=transient,
        delay=0.0,
    )


def follow_up_stream(claim: Claim, *, parent: bool = False) -> NewStream:
    """A stream a hook starts: a task of its own, or (``parent``) one filed under the claim's."""
    payload: dict[str, object] = {
        "kind": "follow_up",
        "org_id": claim.org_id,
        "user_id": claim.user_id,
        "params": {"after": str(claim.task_id)},
        "max_attempts": 1,
    }
    if parent:
        payload["parent_id"] = str(claim.task_id)
    return uuid.uuid4(), NewEvent(EventType.TASK_SCHEDULED, payload)


class Hook:
    """A terminal hook that starts a follow-up stream, or raises, and records its calls."""

    def __init__(self, *, raises: bool = False, parent: bool = False) -> None:
        self.raises = raises
        self.parent = parent
        self.calls: list[tuple[uuid.UUID, EventType]] = []
        self.started: list[uuid.UUID] = []

    def __call__(self, claim: Claim, final: NewEvent) -> NewStream | None:
        self.calls.append((claim.task_id, final.type))
        if claim.kind != "process_data":
            return None
        if self.raises:
            raise RuntimeError("the hook broke")
        stream_id, scheduled = follow_up_stream(claim, parent=self.parent)
        self.started.append(stream_id)
        return stream_id, scheduled


def ids(due: list[DueTask]) -> list[uuid.UUID]:
    return [each.task_id for each in due]


async def event_count(sessions: SessionFactory) -> int:
    async with session_scope(sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(TaskEvent)) or 0)


async def exists(sessions: SessionFactory, task_id: uuid.UUID) -> bool:
    async with session_scope(sessions) as session:
        return await session.get(Task, task_id) is not None


# claim -------------------------------------------------------------------------------------


@group_commits
async def test_claim_starts_attempt_one_of_a_scheduled_task_under_the_lease(
    sessions: SessionFactory, group_commit: bool
) -> None:
    task_id = await schedule(sessions, request_id="req-7", webhook_url="https://example.com/h")

    async with opened(sessions, group_commit=group_commit) as store:
        before = utcnow()
        claim = await store.claim(task_id, LEASE)

    assert claim is not None
    assert (claim.task_id, claim.version, claim.attempt) == (task_id, 2, 1)
    assert (claim.kind, claim.org_id, claim.user_id) == ("process_data", "org-a", "alice")
    assert (claim.request_id, claim.max_attempts) == ("req-7", 3)
    assert claim.webhook_url == "https://example.com/h"
    assert claim.parent_id is None
    assert claim.owner_id == task_id
    task = await load(sessions, task_id)
    assert (task.status, task.version, task.attempts) == ("running", 2, 1)
    assert task.lease_owner == LEASE.owner
    assert task.lease_expires_at is not None
    assert task.lease_expires_at >= before + timedelta(seconds=LEASE.seconds)
    started = (await stream(sessions, task_id))[1]
    assert started.type == "task_started"
    assert (started.payload["attempt"], started.payload["lease_owner"]) == (1, LEASE.owner)


@group_commits
async def test_claim_of_a_task_that_is_not_scheduled_is_none_and_writes_nothing(
    sessions: SessionFactory, group_commit: bool
) -> None:
    running = await schedule(sessions)
    await start_attempt(sessions, running, lease_left=timedelta(minutes=5))
    retrying = await schedule_retry(sessions, due_in=timedelta(seconds=-1))
    events = await event_count(sessions)

    async with opened(sessions, group_commit=group_commit) as store:
        assert await store.claim(running, LEASE) is None
        assert await store.claim(retrying, LEASE) is None  # a retry is the sweeper's
        assert await store.claim(uuid.uuid4(), LEASE) is None

    assert await event_count(sessions) == events


@group_commits
async def test_of_two_claims_of_one_task_exactly_one_wins(
    sessions: SessionFactory, group_commit: bool
) -> None:
    task_id = await schedule(sessions)

    async with opened(sessions, group_commit=group_commit) as store:
        claims = await asyncio.gather(store.claim(task_id, LEASE), store.claim(task_id, OTHER))

    (winner,) = [(c, lease) for c, lease in zip(claims, (LEASE, OTHER), strict=True) if c]
    assert sum(c is not None for c in claims) == 1
    assert types_of(await stream(sessions, task_id)) == ["task_scheduled", "task_started"]
    # The winner holds the lease it asked for, so its heartbeat can renew it.
    assert (await load(sessions, task_id)).lease_owner == winner[1].owner


async def test_claims_in_one_batch_each_get_their_own_task(sessions: SessionFactory) -> None:
    task_ids = [await schedule(sessions) for _ in range(5)]

    async with opened(sessions) as store:
        claims = await asyncio.gather(*(store.claim(t, LEASE) for t in task_ids))

    assert [c.task_id if c else None for c in claims] == task_ids
    for task_id in task_ids:
        assert (await load(sessions, task_id)).status == "running"


# claim_due ---------------------------------------------------------------------------------


async def test_claim_due_starts_due_scheduled_and_retrying_tasks_oldest_first(
    sessions: SessionFactory,
) -> None:
    first = await schedule(sessions)
    retry_due = await schedule_retry(sessions, due_in=timedelta(seconds=-30))
    await schedule_retry(sessions, due_in=timedelta(hours=1))
    running = await schedule(sessions)
    await start_attempt(sessions, running, lease_left=timedelta(minutes=5))
    last = await schedule(sessions)

    async with opened(sessions) as store:
        claims = await store.claim_due(10, LEASE)
        again = await store.claim_due(10, LEASE)

    # The due retry's run_after is 30 s ago: before the tasks scheduled just now.
    assert [c.task_id for c in claims] == [retry_due, first, last]
    assert [c.attempt for c in claims] == [2, 1, 1]
    assert again == []  # claimed is running: not due again


async def test_claim_due_claims_at_most_limit_and_nothing_for_no_slots(
    sessions: SessionFactory,
) -> None:
    task_ids = [await schedule(sessions) for _ in range(4)]

    async with opened(sessions) as store:
        assert await store.claim_due(0, LEASE) == []
        claims = await store.claim_due(3, LEASE)
        rest = await store.claim_due(3, LEASE)

    assert [c.task_id for c in claims] == task_ids[:3]
    assert [c.task_id for c in rest] == task_ids[3:]


# record_outcome ------------------------------------------------------------------------------


@group_commits
async def test_record_outcome_appends_the_outcome_and_moves_the_projection(
    sessions: SessionFactory, group_commit: bool
) -> None:
    ok, retry, fail = [await schedule(sessions) for _ in range(3)]

    async with opened(sessions, group_commit=group_commit) as store:
        claims = [await store.claim(t, LEASE) for t in (ok, retry, fail)]
        assert all(c is not None for c in claims)
        c_ok, c_retry, c_fail = [c for c in claims if c is not None]
        recorded = await asyncio.gather(
            store.record_outcome(c_ok, succeeded(c_ok, rows=3)),
            store.record_outcome(c_retry, failed(c_retry, transient=True)),
            store.record_outcome(c_fail, failed(c_fail, transient=False)),
        )

    assert list(recorded) == [Recorded(superseded=False, started=[])] * 3
    task = await load(sessions, ok)
    assert (task.status, task.result, task.lease_owner) == ("succeeded", {"rows": 3}, None)
    assert (await load(sessions, retry)).status == "retrying"
    assert (await load(sessions, fail)).status == "failed"
    assert types_of(await stream(sessions, fail))[2:] == ["attempt_failed", "task_failed"]


@group_commits
async def test_a_superseded_outcome_is_reported_and_writes_nothing(
    sessions: SessionFactory, group_commit: bool
) -> None:
    task_id, other_id = await schedule(sessions), await schedule(sessions)

    async with opened(sessions, group_commit=group_commit) as store:
        mine = await store.claim(task_id, LEASE)
        other = await store.claim(other_id, LEASE)
        assert mine is not None
        assert other is not None
        # The stream moved on (the lease was recovered, another attempt finished).
        newer = await store.record_outcome(mine, failed(mine, transient=True))
        assert not newer.superseded
        events = await event_count(sessions)

        stale, fresh = await asyncio.gather(
            store.record_outcome(mine, succeeded(mine)),
            store.record_outcome(other, succeeded(other)),
        )

    assert stale == Recorded(superseded=True)
    assert fresh == Recorded(superseded=False)  # the stale one in its batch spoils nothing
    assert await event_count(sessions) == events + 1
    assert (await load(sessions, task_id)).status == "retrying"
    assert (await load(sessions, other_id)).status == "succeeded"


# Terminal hooks ----------------------------------------------------------------------------------


@group_commits
async def test_a_hooks_stream_is_started_in_the_outcomes_transaction(
    sessions: SessionFactory, group_commit: bool
) -> None:
    hook = Hook()
    task_id = await schedule(sessions)

    async with opened(sessions, group_commit=group_commit, terminal_hooks=[hook]) as store:
        claim = await store.claim(task_id, LEASE)
        assert claim is not None
        recorded = await store.record_outcome(claim, succeeded(claim))

    (started,) = hook.started
    assert recorded == Recorded(superseded=False, started=[DueTask(started, "follow_up")])
    assert hook.calls == [(task_id, EventType.TASK_SUCCEEDED)]
    follow_up = await load(sessions, started)
    assert (follow_up.status, follow_up.kind, follow_up.org_id) == (
        "scheduled",
        "follow_up",
        "org-a",
    )
    assert follow_up.params == {"after": str(task_id)}


async def test_hooks_run_for_a_final_failure_but_not_for_a_retry(
    sessions: SessionFactory,
) -> None:
    hook = Hook()
    retried, final = await schedule(sessions), await schedule(sessions)

    async with opened(sessions) as store:
        store.add_terminal_hook(hook)
        c_retried, c_final = await store.claim(retried, LEASE), await store.claim(final, LEASE)
        assert c_retried is not None
        assert c_final is not None
        on_retry = await store.record_outcome(c_retried, failed(c_retried, transient=True))
        on_final = await store.record_outcome(c_final, failed(c_final, transient=False))

    assert on_retry.started == []
    assert ids(on_final.started) == hook.started
    assert hook.calls == [(final, EventType.TASK_FAILED)]


async def test_every_hook_runs_and_each_may_start_nothing(sessions: SessionFactory) -> None:
    first, second = Hook(), Hook()

    def nothing(claim: Claim, final: NewEvent) -> NewStream | None:
        return None

    task_id = await schedule(sessions)
    async with opened(sessions, terminal_hooks=[first, nothing, second]) as store:
        claim = await store.claim(task_id, LEASE)
        assert claim is not None
        recorded = await store.record_outcome(claim, succeeded(claim))

    assert ids(recorded.started) == [*first.started, *second.started]
    assert len(recorded.started) == 2
    for stream_id in ids(recorded.started):
        assert await exists(sessions, stream_id)


@group_commits
async def test_a_hook_that_raises_leaves_the_outcome_uncommitted(
    sessions: SessionFactory, group_commit: bool
) -> None:
    task_id, bystander = await schedule(sessions), await schedule(sessions)

    async with opened(sessions, group_commit=group_commit, terminal_hooks=[Hook(raises=True)]) as s:
        claim, other = await s.claim(task_id, LEASE), await s.claim(bystander, LEASE)
        assert claim is not None
        assert other is not None
        events = await event_count(sessions)

        broken, retried = await asyncio.gather(
            s.record_outcome(claim, succeeded(claim)),
            # A retry runs no hook: in the same batch, it still commits.
            s.record_outcome(other, failed(other, transient=True)),
            return_exceptions=True,
        )

    assert isinstance(broken, RuntimeError)
    assert retried == Recorded(superseded=False)
    task = await load(sessions, task_id)
    assert (task.status, task.version, task.result) == ("running", 2, None)
    assert types_of(await stream(sessions, task_id)) == ["task_scheduled", "task_started"]
    assert await event_count(sessions) == events + 2  # the retry's two events, nothing else
    assert (await load(sessions, bystander)).status == "retrying"


async def test_a_hook_can_file_its_stream_under_the_task(sessions: SessionFactory) -> None:
    hook = Hook(parent=True)
    task_id = await schedule(sessions)

    async with opened(sessions, terminal_hooks=[hook]) as store:
        claim = await store.claim(task_id, LEASE)
        assert claim is not None
        await store.record_outcome(claim, succeeded(claim))
        (delivery_id,) = hook.started
        delivery = await store.claim(delivery_id, LEASE)

    assert delivery is not None
    assert (delivery.parent_id, delivery.owner_id) == (task_id, task_id)
    assert (await load(sessions, delivery_id)).parent_id == task_id


# renew_lease -------------------------------------------------------------------------------


async def test_renew_lease_extends_the_owners_lease_until_the_attempt_ends(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)

    async with opened(sessions) as store:
        claim = await store.claim(task_id, Lease(LEASE.owner, 1.0))
        assert claim is not None
        first = (await load(sessions, task_id)).lease_expires_at
        assert first is not None

        assert await store.renew_lease(claim, Lease(LEASE.owner, 600.0)) is True
        renewed = (await load(sessions, task_id)).lease_expires_at
        assert renewed is not None
        assert renewed > first + timedelta(minutes=5)

        assert await store.renew_lease(claim, OTHER) is False  # not the owner
        assert (await load(sessions, task_id)).lease_expires_at == renewed

        stale = dataclasses.replace(claim, version=claim.version - 1)
        assert await store.renew_lease(stale, LEASE) is False  # not at its version

        await store.record_outcome(claim, succeeded(claim))
        assert await store.renew_lease(claim, LEASE) is False  # finished

    task = await load(sessions, task_id)
    assert (task.status, task.lease_owner, task.lease_expires_at) == ("succeeded", None, None)


@group_commits
async def test_renewals_at_once_each_get_their_answer_from_one_statement(
    sessions: SessionFactory, engine: AsyncEngine, group_commit: bool
) -> None:
    task_ids = [await schedule(sessions) for _ in range(12)]
    statements: list[str] = []
    async with opened(sessions, group_commit=group_commit) as store:
        claims = [await store.claim(task_id, LEASE) for task_id in task_ids]
        assert all(claims)
        mine = [c for c in claims if c is not None]
        stale = [dataclasses.replace(c, version=c.version - 1) for c in mine[:3]]

        def record(conn: object, cursor: object, statement: str, *args: object) -> None:
            if statement.lstrip().upper().startswith("UPDATE"):
                statements.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            answers = await asyncio.gather(
                *(store.renew_lease(c, LEASE) for c in mine),
                *(store.renew_lease(c, LEASE) for c in stale),
                *(store.renew_lease(c, OTHER) for c in mine[3:6]),
            )
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)

    assert answers == [True] * 12 + [False] * 3 + [False] * 3
    # Grouped: one UPDATE per lease in the batch (ours and OTHER's); alone: one per call.
    assert len(statements) == (2 if group_commit else 18)


# recover_expired_leases -------------------------------------------------------------------------


async def test_recover_fails_expired_attempts_and_schedules_their_retries_due_now(
    sessions: SessionFactory,
) -> None:
    expired = await schedule(sessions)
    await start_attempt(sessions, expired, lease_left=timedelta(seconds=-1))
    live = await schedule(sessions)
    await start_attempt(sessions, live, lease_left=timedelta(minutes=5))
    hook = Hook()

    async with opened(sessions, terminal_hooks=[hook]) as store:
        recovered = await store.recover_expired_leases()
        again = await store.recover_expired_leases()
        (retry,) = await store.claim_due(10, LEASE)

    assert recovered.recovered == [expired]
    assert recovered.started == [] == hook.calls  # a retry ends nothing
    assert again.recovered == []
    assert retry.task_id == expired
    assert retry.attempt == 2
    events = await stream(sessions, expired)
    assert types_of(events)[2:4] == ["attempt_failed", "retry_scheduled"]
    assert events[2].payload["error_type"] == "LeaseExpired"
    assert events[2].payload["transient"] is True
    assert DEAD_OWNER in events[2].payload["error"]
    assert events[3].payload["delay_seconds"] == 0.0
    assert types_of(await stream(sessions, live)) == ["task_scheduled", "task_started"]


async def test_recover_on_the_last_attempt_fails_the_task_and_runs_the_hooks(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions, max_attempts=1)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=-1))
    hook = Hook()

    async with opened(sessions, terminal_hooks=[hook]) as store:
        recovered = await store.recover_expired_leases()

    assert recovered.recovered == [task_id]
    assert ids(recovered.started) == hook.started
    assert hook.calls == [(task_id, EventType.TASK_FAILED)]
    (started,) = hook.started
    assert (await load(sessions, started)).status == "scheduled"
    task = await load(sessions, task_id)
    assert (task.status, task.last_error is not None) == ("failed", True)


# Reads scoped to an org ------------------------------------------------------------------------


async def test_find_task_and_events_of_are_scoped_to_the_tasks_org(
    sessions: SessionFactory,
) -> None:
    task_id = await schedule(sessions)

    async with opened(sessions) as store:
        mine = await store.find_task("org-a", task_id)
        theirs = await store.find_task("org-b", task_id)
        unknown = await store.find_task("org-a", uuid.uuid4())
        events = await store.events_of("org-a", task_id)
        their_events = await store.events_of("org-b", task_id)
        unknown_events = await store.events_of("org-a", uuid.uuid4())

    assert mine is not None
    assert (mine.task.id, mine.task.org_id, mine.delivery) == (task_id, "org-a", None)
    assert theirs is None
    assert unknown is None
    assert events is not None
    assert types_of(events) == ["task_scheduled"]
    assert their_events is None
    assert unknown_events is None


async def test_a_tasks_record_carries_its_delivery_and_its_events_include_the_deliverys(
    sessions: SessionFactory,
) -> None:
    hook = Hook(parent=True)
    task_id = await schedule(sessions)

    async with opened(sessions, terminal_hooks=[hook]) as store:
        claim = await store.claim(task_id, LEASE)
        assert claim is not None
        await store.record_outcome(claim, succeeded(claim))
        (delivery_id,) = hook.started
        record = await store.find_task("org-a", task_id)
        events = await store.events_of("org-a", task_id)
        # A delivery is part of its task, not a task: not found under its own id.
        as_task = await store.find_task("org-a", delivery_id)
        its_events = await store.events_of("org-a", delivery_id)
        theirs = await store.events_of("org-b", task_id)

    assert record is not None
    assert record.delivery is not None
    assert (record.delivery.id, record.delivery.status) == (delivery_id, "scheduled")
    assert events is not None
    assert [(e.stream_id, e.type) for e in events] == [
        (task_id, "task_scheduled"),
        (task_id, "task_started"),
        (task_id, "task_succeeded"),
        (delivery_id, "task_scheduled"),
    ]
    assert as_task is None
    assert its_events is None
    assert theirs is None


# admission control -------------------------------------------------------------------------


async def test_count_due_counts_every_processs_due_work_but_not_future_retries(
    sessions: SessionFactory,
) -> None:
    for _ in range(3):
        await schedule(sessions)  # accepted by another store: another process
    await schedule_retry(sessions, due_in=timedelta(seconds=-1))  # due
    await schedule_retry(sessions, due_in=timedelta(hours=1))  # not yet

    async with opened(sessions) as store:
        assert store.backlog.due == 0  # it has seen none of them itself
        assert await store.count_due() == 4
        assert store.backlog.due == 4


async def test_accept_refuses_at_the_bound_and_a_claim_makes_room(
    sessions: SessionFactory,
) -> None:
    async with opened(sessions) as store:
        store.backlog.bound = 2
        first = await store.accept(submission())
        await store.accept(submission())

        with pytest.raises(BacklogFull, match="2 tasks are due, and the bound is 2"):
            await store.accept(submission())
        assert await store.count_due() == 2  # the refused one wrote nothing

        assert await store.claim(first.task_id, LEASE) is not None
        assert store.backlog.due == 1
        assert (await store.accept(submission())).created


# a locked database -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_on_a_locked_sqlite_every_write_of_the_store_waits_out_one_busy_timeout_together(
    sessions: SessionFactory, engine: AsyncEngine, database_url: str
) -> None:
    with LockedSQLite(database_url, engine) as locked:  # another process holds the write lock
        async with opened(sessions) as store:
            outcomes = await asyncio.gather(
                store.claim_due(5, LEASE),
                store.recover_expired_leases(),
                *(store.accept(submission()) for _ in range(3)),
                return_exceptions=True,
            )

    assert all(isinstance(o, Exception) and is_database_outage(o) for o in outcomes), outcomes
    # The sweep's reads and writes queue with the requests' in the committer: one wait on the
    # lock for all of them, not a sweep holding the connection while the requests wait behind.
    assert locked.begins == 1
