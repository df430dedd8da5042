"""Keep every request, gate on the raw p95 when Locust quits, and measure Locust's own CPU.

Workers (``--processes``) send their rows to the master with each stats report;
the master (or the single local process) writes them with ``--requests-csv`` and
decides the gate. Locust's rounded statistics and its final ``_stats.csv`` are
never used for the verdict.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import astuple
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from benchmarks._hooks import listen
from benchmarks._samples import Sample, write_samples
from benchmarks._stats import gate

__all__ = ["Recorder", "recorder"]

log = logging.getLogger("benchmarks")


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Recorder:
    """The rows and CPU time of this process; on the master, of all of them."""

    def __init__(self) -> None:
        self.rows: list[Sample] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._cpu_at_start = 0.0
        self.cpu_seconds: dict[str, float] = {}

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        self.rows = []
        self.cpu_seconds = {}
        self.started_at, self.stopped_at = time.time(), None
        self._cpu_at_start = _cpu_seconds()

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        self.stopped_at = time.time()
        self.cpu_seconds[f"pid {os.getpid()}"] = round(_cpu_seconds() - self._cpu_at_start, 3)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        context = context or {}
        if start_time is None:
            start_time = time.time() - response_time / 1000
        self.rows.append(
            Sample(
                start_s=start_time,
                model=context.get("model", "closed"),
                user=context.get("user", ""),
                method=request_type,
                name=name,
                ms=response_time,
                ok=exception is None,
                gated=bool(context.get("gated", False)),
                lag_ms=context.get("lag_ms", 0.0),
            )
        )

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        # Plain tuples: the report travels as msgpack.
        data["bench_rows"], self.rows = [astuple(row) for row in self.rows], []
        data["bench_cpu"] = dict(self.cpu_seconds)

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        self.rows.extend(Sample(*row) for row in data.get("bench_rows", ()))
        self.cpu_seconds.update(data.get("bench_cpu", {}))

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        options = environment.parsed_options
        if options is None:
            return
        verdicts = gate(self.rows, options.p95_budget_ms, options.gate_max_failures)
        for verdict in verdicts:
            (log.info if verdict.passed else log.error)("p95 gate: %s", verdict.describe())
        if any(not v.passed for v in verdicts):
            environment.process_exit_code = 1
        if options.requests_csv:
            write_samples(Path(options.requests_csv), sorted(self.rows, key=lambda s: s.start_s))
        if options.run_json:
            stopped = self.stopped_at or time.time()
            report = {
                "started_at": self.started_at,
                "stopped_at": stopped,
                "requests": len(self.rows),
                "gate": [v.as_dict() for v in verdicts],
                "locust_cpu_seconds": self.cpu_seconds,
                "locust_cpu_share": (
                    round(sum(self.cpu_seconds.values()) / (stopped - self.started_at), 3)
                    if self.started_at and stopped > self.started_at
                    else None
                ),
            }
            Path(options.run_json).write_text(json.dumps(report, indent=2) + "\n")


recorder = Recorder()
# Registered once: Locust never loads this _-prefixed file as a locustfile, Python imports it once.
listen(events.test_start, recorder.on_test_start)
listen(events.test_stop, recorder.on_test_stop)
listen(events.request, recorder.on_request)
listen(events.report_to_master, recorder.on_report_to_master)
listen(events.worker_report, recorder.on_worker_report)
listen(events.quitting, recorder.on_quitting)
