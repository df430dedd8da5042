"""Two app processes on one PostgreSQL database: their sweepers race for the same tasks.

Each process has few slots, so most accepted tasks wait for a sweeper, and both
sweepers poll the same rows every 50 ms. The proof that no attempt ran twice at
once comes from both processes' own logs (every ``task_started`` line, with its
attempt and time), not only from the event log, whose versioned appends would
hide a second run that failed to record.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from typing import Any

from reference_app.testing import LiveServer
from reliability._eventlog import observe
from reliability._fault_harness import FaultRun, Submissions, client_for, submit_many, task_body
from reliability._hook_receiver import Receiver
from reliability._loop import run_async
from reliability._outcome import Outcome
from reliability._served import FAST_SETTINGS, backend_of, start_app, stop_all

__all__ = ["RunInterval", "overlapping_runs", "run_intervals", "run_two_apps", "two_apps_race"]

_ENDS = frozenset({"task_succeeded", "attempt_failed", "task_interrupted", "attempt_superseded"})


def two_apps_race(database_url: str, *, long: bool = False) -> Outcome:
    """Two servers on one PostgreSQL database; no attempt runs twice, nothing is lost."""
    return run_two_apps(database_url, long=long).outcome


def run_two_apps(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _two_apps(database_url, long=long))


async def _two_apps(database_url: str, *, long: bool) -> FaultRun:
    count, io_ms = (400, 100) if long else (80, 50)
    # No process dies: a long lease keeps stalls of a loaded machine from expiring leases
    # (the gap tests/reliability/test_faults_lease.py shows), so the race is the sweepers'.
    settings = {
        **FAST_SETTINGS,
        "max_concurrent_tasks": "4",
        "sweep_interval_seconds": "0.05",
        "lease_seconds": "15",
    }
    servers: list[LiveServer] = []
    with Receiver() as receiver:
        try:
            started = await asyncio.gather(
                asyncio.to_thread(start_app, database_url, settings),
                asyncio.to_thread(start_app, database_url, settings),
                return_exceptions=True,
            )
            servers += [s for s in started if isinstance(s, LiveServer)]
            for result in started:
                if isinstance(result, BaseException):
                    raise result
            hook = receiver.url("/ok")
            halves = [
                [task_body(i, io_ms=io_ms, webhook_url=hook) for i in range(n, count, 2)]
                for n in (0, 1)
            ]
            began = time.monotonic()
            async with client_for(servers[0]) as a, client_for(servers[1]) as b:
                parts = await asyncio.gather(submit_many(a, halves[0]), submit_many(b, halves[1]))
            submitted = Submissions()
            for part in parts:
                submitted.merge(part)
            accepted = submitted.task_ids
            async with observe(database_url) as observer:
                snap, _ = await observer.wait_settled(accepted, seconds=300 if long else 90)
            drained_s = time.monotonic() - began
        finally:
            await asyncio.to_thread(stop_all, servers)
        duplicates = receiver.duplicates()
        deliveries = receiver.snapshot()
    logs = [s.logs() for s in servers]
    intervals = run_intervals(logs)
    twice = [key for key, n in Counter((r.task_id, r.attempt) for r in intervals).items() if n > 1]
    overlaps = overlapping_runs(intervals)
    by_process = Counter(r.process for r in intervals)
    swept = [
        sum(int(r.get("started", 0)) for r in log if r.get("event") == "sweep_finished")
        for log in logs
    ]
    superseded = sum(r.get("event") == "attempt_superseded" for log in logs for r in log)
    outcome = Outcome(
        fault="two app processes, one database",
        backend=backend_of(database_url),
        load=f"{count} tasks, io {io_ms} ms, 4 slots per process, sweeps every 50 ms",
        inputs=count,
        accepted=len(accepted),
        lost=len(snap.unfinished(accepted)),
        duplicates=duplicates,
        reruns=snap.reruns(accepted),
        recovery_s=None,
        notes=(
            f"attempts run per process {by_process[0]}/{by_process[1]}, by sweepers "
            f"{swept[0]}/{swept[1]}; attempts started twice {len(twice)}, overlapping runs "
            f"{len(overlaps)}, superseded {superseded}; all terminal {drained_s:.1f} s "
            f"after the first request; answers {dict(sorted(submitted.statuses.items()))}, "
            f"contract breaches {len(submitted.problems)}"
        ),
    )
    return FaultRun(
        outcome,
        snap,
        accepted,
        deliveries,
        logs,
        {
            "intervals": intervals,
            "started_twice": twice,
            "overlaps": overlaps,
            "runs_by_process": dict(by_process),
            "swept_by_process": swept,
            "superseded": superseded,
        },
    )


@dataclass(frozen=True, slots=True)
class RunInterval:
    """One attempt as a process's log tells it: started at ``start``, ended at ``end``."""

    process: int
    task_id: str
    attempt: int
    start: datetime
    end: datetime | None


def run_intervals(logs: list[list[dict[str, Any]]]) -> list[RunInterval]:
    """Every attempt each process started, with when its log says it ended.

    An attempt ends with its outcome line (``task_succeeded``, ``attempt_failed``,
    ``task_interrupted``, ``attempt_superseded``), or with ``task_crashed`` when recording
    the outcome failed (that line names the task, not the attempt: it ends the task's
    latest attempt). ``end`` is None when the log does not say: the process was killed,
    or a crash line named no task.
    """
    intervals: list[RunInterval] = []
    for process, log in enumerate(logs):
        open_runs: dict[str, list[RunInterval]] = {}
        closed: list[RunInterval] = []
        for record in log:
            event, task_id = record.get("event"), record.get("task_id")
            if task_id is None:
                continue
            if event == "task_started":
                run = RunInterval(process, task_id, int(record["attempt"]), _at(record), None)
                open_runs.setdefault(task_id, []).append(run)
            elif event in _ENDS or event == "task_crashed":
                runs = open_runs.get(task_id, [])
                attempt = record.get("attempt")
                match = [r for r in runs if attempt is None or r.attempt == int(attempt)]
                if match:
                    runs.remove(match[-1])
                    closed.append(replace(match[-1], end=_at(record)))
        intervals += closed + [run for runs in open_runs.values() for run in runs]
    return sorted(intervals, key=lambda r: (r.process, r.start))


def overlapping_runs(intervals: list[RunInterval]) -> list[tuple[RunInterval, RunInterval]]:
    """Pairs of runs of the same task whose logged times overlap.

    A run whose end the log does not tell is left out: it cannot be timed (count those
    with ``end is None``). An attempt that kept running after it lost its lease still
    logs its outcome, so a real overlap is always timed.
    """
    by_task: defaultdict[str, list[RunInterval]] = defaultdict(list)
    for run in intervals:
        if run.end is not None:
            by_task[run.task_id].append(run)
    overlaps = []
    for runs in by_task.values():
        runs.sort(key=lambda r: r.start)
        for earlier, later in pairwise(runs):
            assert earlier.end is not None
            if earlier.end > later.start:
                overlaps.append((earlier, later))
    return overlaps


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["timestamp"]))
