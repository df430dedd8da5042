"""Store observers: told after each commit what was accepted, started and ended, with the
claim's due and start times; never of a replay or a superseded outcome; one that raises
fails nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory
from reference_app.events.outcomes import success_event
from reference_app.events.store import NewEvent
from reference_app.store import Claim, Lease, TaskStore
from tests.reference_app._task_kit import submission

LEASE = Lease("this-host:1:feed", 30.0)
OTHER = Lease("other-host:2:beef", 0.01)


class Observer:
    """Keeps what it is told."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.claims: list[Claim] = []
        self.outcomes: list[tuple[Claim, list[NewEvent]]] = []

    def accepted(self, kind: str) -> None:
        self.kinds.append(kind)

    def started(self, claims: Sequence[Claim]) -> None:
        self.claims.extend(claims)

    def ended(self, claim: Claim, events: Sequence[NewEvent]) -> None:
        self.outcomes.append((claim, list(events)))


class Raises:
    def accepted(self, kind: str) -> None:
        raise RuntimeError("a broken metric")

    def started(self, claims: Sequence[Claim]) -> None:
        raise RuntimeError("a broken metric")

    def ended(self, claim: Claim, events: Sequence[NewEvent]) -> None:
        raise RuntimeError("a broken metric")


@pytest.mark.parametrize("group_commit", [True, False], ids=["group", "alone"])
async def test_an_observer_is_told_of_each_accept_start_and_end(
    sessions: SessionFactory, group_commit: bool
) -> None:
    seen = Observer()
    store = TaskStore(sessions, max_attempts=3, group_commit=group_commit, observers=[seen])
    try:
        key = {"idempotency_key": "k-1"}
        first = await store.accept(submission(**key))
        again = await store.accept(submission(**key))  # a replay: no new task
        due = utcnow() - timedelta(seconds=5)
        later = await store.accept(submission(kind="send_notification", not_before=due))
        claim = await store.claim(first.task_id, LEASE)
        swept = await store.claim_due(5, LEASE)
        assert claim is not None
        recorded = await store.record_outcome(
            claim, [success_event(attempt=1, result={}, duration_ms=1.0)]
        )
    finally:
        await store.close()

    assert again.task_id == first.task_id
    assert seen.kinds == ["process_data", "send_notification"]
    assert [c.task_id for c in seen.claims] == [first.task_id, later.task_id]
    assert [c.task_id for c in swept] == [later.task_id]
    delayed = seen.claims[1]
    assert delayed.due_at == due
    assert delayed.started_at is not None
    assert 5 <= (delayed.started_at - due).total_seconds() < 15
    assert not recorded.superseded
    assert [(c.task_id, [e.type for e in events]) for c, events in seen.outcomes] == [
        (first.task_id, ["task_succeeded"])
    ]


async def test_a_superseded_outcome_is_not_told(sessions: SessionFactory) -> None:
    seen = Observer()
    store = TaskStore(sessions, max_attempts=3, group_commit=False, observers=[seen])
    try:
        accepted = await store.accept(submission())
        stale = await store.claim(accepted.task_id, OTHER)
        assert stale is not None
        await asyncio.sleep(0.05)  # the stale owner's lease lapses; another attempt starts
        assert (await store.recover_expired_leases()).recovered == [accepted.task_id]
        assert len(await store.claim_due(1, LEASE)) == 1
        recorded = await store.record_outcome(
            stale, [success_event(attempt=1, result={}, duration_ms=1.0)]
        )
    finally:
        await store.close()
    assert recorded.superseded
    assert seen.outcomes == []


async def test_an_observer_that_raises_is_logged_and_fails_nothing(
    sessions: SessionFactory,
) -> None:
    seen = Observer()
    store = TaskStore(sessions, max_attempts=3, group_commit=False, observers=[Raises(), seen])
    try:
        with capture_logs() as logs:
            accepted = await store.accept(submission())
            claim = await store.claim(accepted.task_id, LEASE)
            assert claim is not None
            recorded = await store.record_outcome(
                claim, [success_event(attempt=1, result={}, duration_ms=1.0)]
            )
    finally:
        await store.close()
    assert not recorded.superseded
    assert len(seen.outcomes) == 1  # the next observer was told all the same
    failures = [e for e in logs if e["event"] == "store_observer_failed"]
    assert [e["observer"] for e in failures] == ["Raises"] * 3
