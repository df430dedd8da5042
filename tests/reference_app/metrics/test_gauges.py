"""The database gauges: read at most once per cache period, shared by concurrent scrapes,
bounded in time, and left out of a scrape while the database does not answer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.exc import OperationalError

from reference_app.core.clock import utcnow
from reference_app.metrics.gauges import QueueGauges
from reference_app.store import QueueState, TaskStore
from tests.reference_app.metrics._scrape import families_of

NOW = utcnow()
STATE = QueueState(
    by_status={"scheduled": 4, "running": 2, "retrying": 1, "cancelling": 0},
    oldest_due=NOW - timedelta(seconds=12.5),
    now=NOW,
)


class FakeStore:
    """``queue_state`` that counts its calls, and can be slow or fail."""

    def __init__(self, *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error

    async def queue_state(self) -> QueueState:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return STATE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gauges(clock: Clock, **options: Any) -> QueueGauges:
    values = {"cache_seconds": 2.0, "timeout_seconds": 1.0, **options}
    return QueueGauges(monotonic=clock, **values)


def store_of(fake: FakeStore) -> TaskStore:
    return cast(TaskStore, fake)


async def test_a_read_is_reused_until_the_cache_period_ends() -> None:
    clock, fake = Clock(), FakeStore()
    cached = gauges(clock)
    await cached.refresh(store_of(fake))
    clock.now += 1.9
    await cached.refresh(store_of(fake))
    assert fake.calls == 1
    clock.now += 0.1
    await cached.refresh(store_of(fake))
    assert fake.calls == 2


async def test_concurrent_scrapes_share_one_read() -> None:
    clock, fake = Clock(), FakeStore(delay=0.05)
    cached = gauges(clock)
    states = await asyncio.gather(*(cached.refresh(store_of(fake)) for _ in range(5)))
    assert fake.calls == 1
    assert states == [STATE] * 5


async def test_a_zero_cache_reads_every_time() -> None:
    clock, fake = Clock(), FakeStore()
    cached = gauges(clock, cache_seconds=0.0)
    for _ in range(3):
        await cached.refresh(store_of(fake))
    assert fake.calls == 3


def exported(cached: QueueGauges) -> dict[str, Any]:
    registry = CollectorRegistry()
    registry.register(cached)
    return families_of(generate_latest(registry).decode())


async def test_the_state_read_is_what_the_collector_exports() -> None:
    cached = gauges(Clock())
    await cached.refresh(store_of(FakeStore()))
    families = exported(cached)
    tasks = {s.labels["status"]: s.value for s in families["bgjobs_tasks"].samples}
    assert tasks == {"scheduled": 4, "running": 2, "retrying": 1, "cancelling": 0}
    assert families["bgjobs_queue_lag_seconds"].samples[0].value == 12.5


@pytest.mark.parametrize(
    "fake",
    [
        pytest.param(FakeStore(delay=5.0), id="too-slow"),
        pytest.param(
            FakeStore(error=OperationalError("SELECT", {}, ConnectionRefusedError())), id="down"
        ),
    ],
)
async def test_a_database_that_does_not_answer_leaves_the_gauges_out(fake: FakeStore) -> None:
    clock = Clock()
    cached = gauges(clock, timeout_seconds=0.05)
    assert await asyncio.wait_for(cached.refresh(store_of(fake)), 2) is None
    assert exported(cached) == {}
    await cached.refresh(store_of(fake))
    assert fake.calls == 1  # a failed read is cached too: a down database is asked once a period


async def test_a_bug_in_the_read_is_not_hidden() -> None:
    cached = gauges(Clock())
    with pytest.raises(KeyError):
        await cached.refresh(store_of(FakeStore(error=KeyError("status"))))
