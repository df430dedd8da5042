"""The gauges read from the database at scrape time: tasks by status and the queue lag.

They come from the projection, which every process writes, so any process answers the
same for all of them: no multiprocess bookkeeping. The read (``TaskStore.queue_state``,
index lookups only) is cached for ``cache_seconds``, and concurrent scrapes share one, so
a scrape a second costs one small query every couple of seconds. A read that fails (the
database is down) or takes longer than ``timeout_seconds`` leaves these gauges out of the
scrape, until the next read, rather than failing it: the process's own metrics still count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from reference_app.core.errors import is_database_outage
from reference_app.core.logging import get_logger
from reference_app.store import QueueState, TaskStore

__all__ = ["QueueGauges"]

log = get_logger(__name__)


class QueueGauges:
    """A prometheus_client collector of the last queue state read, and the cached read."""

    def __init__(
        self,
        *,
        cache_seconds: float,
        timeout_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self._monotonic = monotonic
        self._state: QueueState | None = None
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._read_at is not None and (
            self._monotonic() - self._read_at < self.cache_seconds
        )

    async def refresh(self, store: TaskStore) -> QueueState | None:
        """The queue state, read again only if the last read is ``cache_seconds`` old."""
        if self._fresh():
            return self._state
        async with self._lock:  # a scrape that waited here finds the read it waited for
            if not self._fresh():
                self._state = await self._read(store)
                self._read_at = self._monotonic()
        return self._state

    async def _read(self, store: TaskStore) -> QueueState | None:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await store.queue_state()
        except Exception as exc:
            if not (isinstance(exc, TimeoutError) or is_database_outage(exc)):
                raise
            log.warning("metrics_queue_state_unavailable", error_type=type(exc).__name__)
            return None

    def collect(self) -> Iterator[Metric]:
        """What a registry exports: the last state read, if the last read succeeded."""
        state = self._state
        if state is None:
            return
        tasks = GaugeMetricFamily(
            "bgjobs_tasks",
            "Tasks (webhook deliveries included) in each live status, from the projection.",
            labels=["status"],
        )
        for status, count in state.by_status.items():
            tasks.add_metric([status], count)
        yield tasks
        yield GaugeMetricFamily(
            "bgjobs_queue_lag_seconds",
            "How long the oldest due scheduled or retrying task has waited for a worker.",
            value=state.lag_seconds,
        )
