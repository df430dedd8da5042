"""What ``GET /metrics`` answers, correct under ``uvicorn --workers N``.

Two kinds of number, two ways to be right across processes:

- The gauges of the queue (tasks by status, the queue lag) are read from the database at
  scrape time (``gauges``), so whichever worker answers, it answers for all of them.
- The counters and histograms (accepts, attempts, deliveries, 503s, sweeps) and the slot
  gauges live in the process that saw the event. With one process they are exact. With
  several, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before uvicorn starts:
  prometheus_client then keeps every process's values in files there, and a scrape, in
  any process, adds them all up (a dead worker's counts stay in; its slot gauges go with
  it on a clean shutdown). Without it, each scrape sees only the worker that answered it,
  and a counter seems to jump back and forth between the workers' totals.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from reference_app.core.config import Settings
from reference_app.metrics.gauges import QueueGauges
from reference_app.metrics.recorder import Recorder
from reference_app.store import TaskStore
from reference_app.tasks.worker import Worker

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_DIR_VARIABLE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def _checked_dir(path: str | None) -> str | None:
    if not path:
        return None
    if not Path(path).is_dir():
        raise RuntimeError(
            f"{MULTIPROCESS_DIR_VARIABLE}={path} is not a folder: create it (empty) before "
            "uvicorn starts, or unset it to serve this process's metrics alone"
        )
    if not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError(
            f"{MULTIPROCESS_DIR_VARIABLE} was set after prometheus_client was imported: "
            "set it in the environment uvicorn starts with"
        )
    return path


class Metrics:
    """The app's metrics: the ``recorder`` the hooks move, the database ``gauges``, and the
    exposition of both."""

    def __init__(
        self,
        *,
        webhook_kind: str,
        cache_seconds: float = 2.0,
        query_timeout_seconds: float = 2.0,
        multiprocess_dir: str | None = None,
    ) -> None:
        self.multiprocess_dir = _checked_dir(multiprocess_dir)
        self.registry = CollectorRegistry()
        self.recorder = Recorder(self.registry, webhook_kind=webhook_kind)
        self.gauges = QueueGauges(
            cache_seconds=cache_seconds, timeout_seconds=query_timeout_seconds
        )
        # What a scrape exports: every process's files, or this process's registry.
        self._exported = self.registry
        if self.multiprocess_dir is not None:
            self._exported = CollectorRegistry()
            MultiProcessCollector(self._exported, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        self._exported.register(self.gauges)

    @classmethod
    def from_settings(cls, settings: Settings, *, webhook_kind: str) -> Metrics:
        return cls(
            webhook_kind=webhook_kind,
            cache_seconds=settings.metrics_cache_seconds,
            query_timeout_seconds=settings.metrics_query_timeout_seconds,
            multiprocess_dir=os.environ.get(MULTIPROCESS_DIR_VARIABLE),
        )

    def sweeper_hook(self, worker: Worker) -> Callable[[int, int], None]:
        """The sweeper's ``on_pass``: its claims and recoveries, and this process's slots
        (how other processes' scrapes see them, under multiprocess mode)."""

        def on_pass(claimed: int, recovered: int) -> None:
            self.recorder.swept(claimed, recovered)
            self.recorder.publish_slots(worker)

        return on_pass

    async def render(self, store: TaskStore, worker: Worker) -> bytes:
        """The exposition, in Prometheus's text format."""
        self.recorder.publish_slots(worker)
        await self.gauges.refresh(store)
        return generate_latest(self._exported)

    def close(self) -> None:
        """At shutdown: this process's slot gauges leave the multiprocess sums."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]
