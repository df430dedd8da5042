"""The lease heartbeat: renewed while its block runs, stopped when the block ends or the
lease is lost, and never left behind. (That the block covers the commit of the outcome
is tests/reliability/test_faults_lease.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime

from structlog.testing import capture_logs

from reference_app.db.engine import SessionFactory
from reference_app.store import Claim, Lease, TaskStore
from reference_app.tasks.lease import leased
from tests.reference_app._task_kit import WAIT, load, schedule, wait_until

# Short enough that a renewal comes every 0.1 s; the tests wait on what they see, never
# on the clock, so a slow machine only makes them slower.
LEASE = Lease("this-host:1:feed", 0.3)


async def claimed(sessions: SessionFactory, store: TaskStore) -> Claim:
    claim = await store.claim(await schedule(sessions), LEASE)
    assert claim is not None
    return claim


async def lease_expiry(sessions: SessionFactory, task_id: uuid.UUID) -> datetime:
    expires = (await load(sessions, task_id)).lease_expires_at
    assert expires is not None
    return expires


def heartbeats(task_id: uuid.UUID) -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"lease-{task_id}" and not t.done()]


async def wait_for_renewal(sessions: SessionFactory, task_id: uuid.UUID, after: datetime) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if await lease_expiry(sessions, task_id) > after:
                return
            await asyncio.sleep(0.02)


async def test_the_lease_is_renewed_while_the_block_runs(sessions: SessionFactory) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    claim = await claimed(sessions, store)
    first = await lease_expiry(sessions, claim.task_id)

    async with leased(store, claim, LEASE):
        await wait_for_renewal(sessions, claim.task_id, after=first)
        second = await lease_expiry(sessions, claim.task_id)
        await wait_for_renewal(sessions, claim.task_id, after=second)  # and again

        assert len(heartbeats(claim.task_id)) == 1

    task = await load(sessions, claim.task_id)
    assert (task.status, task.lease_owner) == ("running", LEASE.owner)


async def test_the_heartbeat_ends_with_the_block_even_when_the_block_raises(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    claim = await claimed(sessions, store)

    try:
        async with leased(store, claim, LEASE):
            assert len(heartbeats(claim.task_id)) == 1
            raise RuntimeError("the body broke")
    except RuntimeError:
        pass

    assert heartbeats(claim.task_id) == []
    ended = await lease_expiry(sessions, claim.task_id)
    # No renewal after the block: the lease stands where it was left, three intervals on.
    await asyncio.sleep(LEASE.seconds)
    assert await lease_expiry(sessions, claim.task_id) == ended


async def test_a_lost_lease_is_logged_once_and_stops_the_heartbeat(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    claim = await claimed(sessions, store)
    # Another owner took the task over: the stream moved past the claim's version.
    stale = dataclasses.replace(claim, version=claim.version - 1)

    with capture_logs() as logs:
        async with leased(store, stale, LEASE):
            await wait_until(lambda: any(e["event"] == "lease_lost" for e in logs))
            await wait_until(lambda: heartbeats(claim.task_id) == [])

    assert [e["event"] for e in logs].count("lease_lost") == 1


class FlakyStore(TaskStore):
    """A store whose first ``failures`` renewals raise, as on a database blip."""

    def __init__(self, sessions: SessionFactory, failures: int) -> None:
        super().__init__(sessions, max_attempts=3, group_commit=False)
        self.failures = failures
        self.renewals = 0

    async def renew_lease(self, claim: Claim, lease: Lease) -> bool:
        self.renewals += 1
        if self.renewals <= self.failures:
            raise ConnectionError("database blip")
        return await super().renew_lease(claim, lease)


async def test_a_failed_renewal_is_logged_and_the_heartbeat_keeps_renewing(
    sessions: SessionFactory,
) -> None:
    store = FlakyStore(sessions, failures=2)
    claim = await claimed(sessions, store)
    first = await lease_expiry(sessions, claim.task_id)

    with capture_logs() as logs:
        async with leased(store, claim, LEASE):
            await wait_for_renewal(sessions, claim.task_id, after=first)

    failed = [e for e in logs if e["event"] == "lease_renewal_failed"]
    assert len(failed) == 2
    assert all(e["exc_info"] is True for e in failed)
    assert store.renewals >= 3


class HangingStore(TaskStore):
    """A store whose renewals never return, as when the database is gone."""

    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(sessions, max_attempts=3, group_commit=False)
        self.renewing = asyncio.Event()

    async def renew_lease(self, claim: Claim, lease: Lease) -> bool:
        self.renewing.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_renewal_that_hangs_is_cancelled_when_the_block_ends(
    sessions: SessionFactory,
) -> None:
    store = HangingStore(sessions)
    claim = await claimed(sessions, store)

    async def block() -> None:
        async with leased(store, claim, LEASE):
            async with asyncio.timeout(WAIT):
                await store.renewing.wait()

    await asyncio.wait_for(block(), WAIT)

    await wait_until(lambda: heartbeats(claim.task_id) == [])


async def test_past_its_deadline_the_lease_is_left_to_lapse_and_another_process_takes_over(
    sessions: SessionFactory,
) -> None:
    # A process alive but stuck past the attempt's deadline stops renewing: the lease
    # lapses while the block still runs, and the sweep of any process recovers the task.
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    claim = await claimed(sessions, store)

    with capture_logs() as logs:
        async with leased(store, claim, LEASE, renew_for=LEASE.seconds / 2):
            await wait_until(lambda: heartbeats(claim.task_id) == [], WAIT)
            recovered: list[uuid.UUID] = []
            async with asyncio.timeout(WAIT):
                while not recovered:
                    recovered = (await store.recover_expired_leases()).recovered
                    await asyncio.sleep(0.05)

    assert "lease_left_to_lapse" in [e["event"] for e in logs]
    assert recovered == [claim.task_id]
    assert (await load(sessions, claim.task_id)).status == "retrying"
