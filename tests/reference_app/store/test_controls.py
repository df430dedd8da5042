"""The store's controls: the decision for each status, and cancel and re-drive on the database,
including a cancel whose worker died and one that races the attempt's own end."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from reference_app.db.engine import SessionFactory
from reference_app.events.lifecycle import EventType, TaskStatus
from reference_app.events.outcomes import failure_events, success_event
from reference_app.store import Lease, TaskNotFound, TaskStore, WrongStatus
from reference_app.store.controls import cancel_events, requeue_events
from tests.reference_app._task_kit import (
    DEAD_OWNER,
    load,
    schedule,
    schedule_retry,
    start_attempt,
    stream,
    types_of,
)

S = TaskStatus
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LEASE = Lease("this-host:1:feed", 30.0)


def row(status: TaskStatus, attempts: int = 1) -> Any:
    return SimpleNamespace(status=status.value, attempts=attempts, lease_owner="w:1:a")


# The decision table, status by status -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "events"),
    [
        (S.SCHEDULED, [EventType.TASK_CANCELLED]),
        (S.RETRYING, [EventType.TASK_CANCELLED]),
        (S.RUNNING, [EventType.CANCEL_REQUESTED]),
        (S.CANCELLING, []),
    ],
)
def test_cancel_appends_by_status(status: TaskStatus, events: list[EventType]) -> None:
    assert [e.type for e in cancel_events(row(status), by="alice")] == events


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_an_ended_task_cannot_be_cancelled(status: TaskStatus) -> None:
    with pytest.raises(WrongStatus) as caught:
        cancel_events(row(status), by="alice")
    assert caught.value.status == status.value


@pytest.mark.parametrize("status", [S.FAILED, S.CANCELLED])
def test_requeue_renews_the_budget_from_the_attempts_so_far(status: TaskStatus) -> None:
    (event,) = requeue_events(row(status, attempts=4), by="alice", budget=5, now=NOW)
    assert event.type is EventType.TASK_REQUEUED
    assert event.payload == {
        "by": "alice",
        "previous_status": status.value,
        "attempts": 4,
        "max_attempts": 9,
        "due_at": NOW.isoformat(),
    }


@pytest.mark.parametrize("status", [S.SCHEDULED, S.RUNNING, S.RETRYING, S.CANCELLING, S.SUCCEEDED])
def test_only_failed_and_cancelled_tasks_are_requeued(status: TaskStatus) -> None:
    with pytest.raises(WrongStatus, match="cannot be retried"):
        requeue_events(row(status), by="alice", budget=5, now=NOW)


# On the database ----------------------------------------------------------------------------


async def test_cancel_of_a_dead_workers_task_ends_when_its_lease_expires(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    task_id = await schedule(sessions)
    await start_attempt(sessions, task_id, lease_left=timedelta(seconds=-1))  # its owner died

    controlled = await store.cancel("org-a", task_id, by="alice")
    recovered = await store.recover_expired_leases()

    assert controlled.status == "cancelling"
    assert recovered.recovered == [task_id]
    events = await stream(sessions, task_id)
    assert types_of(events)[-2:] == ["cancel_requested", "task_cancelled"]
    assert DEAD_OWNER in events[-1].payload["reason"]
    task = await load(sessions, task_id)
    assert (task.status, task.lease_owner, task.run_after) == ("cancelled", None, None)


async def test_controls_see_only_the_orgs_own_tasks(sessions: SessionFactory) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    task_id = await schedule(sessions)

    for org, unknown in (("org-b", task_id), ("org-a", uuid.uuid4())):
        with pytest.raises(TaskNotFound):
            await store.cancel(org, unknown, by="bob")
        with pytest.raises(TaskNotFound):
            await store.requeue(org, unknown, by="bob")
    assert (await load(sessions, task_id)).status == "scheduled"


async def test_a_retrying_task_is_cancelled_and_not_due_any_more(sessions: SessionFactory) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    task_id = await schedule_retry(sessions, due_in=timedelta(0))

    await store.cancel("org-a", task_id, by="alice")

    assert await store.claim_due(10, LEASE) == []
    assert (await load(sessions, task_id)).status == "cancelled"


async def test_a_requeued_task_is_due_now_and_claimable_again(sessions: SessionFactory) -> None:
    store = TaskStore(sessions, max_attempts=2, group_commit=False)
    task_id = await schedule(sessions)
    claim = await store.claim(task_id, LEASE)
    assert claim is not None
    final = failure_events(
        attempt=1, max_attempts=2, error_type="PermanentError", error="x", transient=False, delay=0
    )
    await store.record_outcome(claim, final)

    await store.requeue("org-a", task_id, by="alice")
    (again,) = await store.claim_due(10, LEASE)

    assert (again.task_id, again.attempt, again.max_attempts) == (task_id, 2, 3)


# A cancel that races the attempt's own end --------------------------------------------------


async def test_after_a_cancel_request_the_attempts_outcome_must_follow_it(
    sessions: SessionFactory,
) -> None:
    # The attempt's outcome is a versioned append: the request moved the version on, so the
    # worker learns of the cancel even when its heartbeat had not run yet.
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    task_id = await schedule(sessions)
    claim = await store.claim(task_id, LEASE)
    assert claim is not None
    await store.cancel("org-a", task_id, by="alice")

    success = success_event(attempt=1, result={"ok": True}, duration_ms=1.0)
    assert (await store.record_outcome(claim, [success])).superseded
    version = await store.cancel_requested(claim, LEASE)
    assert version == claim.version + 1
    assert await store.cancel_requested(claim, Lease("other:2:b", 30.0)) is None

    recorded = await store.record_outcome(replace(claim, version=version), [success])
    assert not recorded.superseded
    assert (await load(sessions, task_id)).status == "succeeded"  # what it did stands
