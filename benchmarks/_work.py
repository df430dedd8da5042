"""A fast 202 is not finished work: what happened to the tasks a scenario scheduled.

Pure functions over per-task times (from the reference app's event log) or
over the lesson 08 lab's counters; the runner, the plots and the tests use them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from benchmarks._stats import percentile

__all__ = [
    "TASK_COLUMNS",
    "TaskTimes",
    "backlog_over_time",
    "percentiles_ms",
    "read_tasks",
    "summarize_counters",
    "summarize_counts",
    "summarize_tasks",
    "write_tasks",
]

_FINAL = frozenset({"succeeded", "failed"})


@dataclass(frozen=True, slots=True)
class TaskTimes:
    """One task's life in Unix seconds, from its events."""

    scheduled_s: float
    started_s: float | None
    """The first ``task_started``: when the first attempt began."""
    finished_s: float | None
    """``task_succeeded`` or ``task_failed``; None while it is not done."""
    status: str
    delivered_s: float | None = None
    """When its webhook delivery succeeded, for tasks that had one."""


TASK_COLUMNS = tuple(f.name for f in fields(TaskTimes))


def write_tasks(path: Path, tasks: Iterable[TaskTimes]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TASK_COLUMNS)
        for task in tasks:
            writer.writerow("" if v is None else v for v in astuple(task))


def read_tasks(path: Path) -> list[TaskTimes]:
    def number(text: str) -> float | None:
        return float(text) if text else None

    with path.open(newline="") as handle:
        return [
            TaskTimes(
                scheduled_s=float(row["scheduled_s"]),
                started_s=number(row["started_s"]),
                finished_s=number(row["finished_s"]),
                status=row["status"],
                delivered_s=number(row["delivered_s"]),
            )
            for row in csv.DictReader(handle)
        ]


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float] | None:
    """p50, p95 and p99 of durations given in seconds, in ms; None when there are none."""
    if not seconds:
        return None
    ms = [s * 1000 for s in seconds]
    return {f"p{q}": round(percentile(ms, q), 1) for q in (50, 95, 99)}


def summarize_tasks(
    tasks: Sequence[TaskTimes], *, load_end: float, webhooks: bool = False
) -> dict[str, Any]:
    """Scheduled, finished when the load stopped, the backlog then, how long it took to drain,
    queue delay (started - scheduled) and completion latency (finished - scheduled)."""
    finished = [t for t in tasks if t.finished_s is not None and t.status in _FINAL]
    at_stop = sum(1 for t in finished if t.finished_s is not None and t.finished_s <= load_end)
    scheduled_by_stop = sum(1 for t in tasks if t.scheduled_s <= load_end)
    unfinished = len(tasks) - len(finished)
    last = max((t.finished_s for t in finished if t.finished_s is not None), default=None)
    summary: dict[str, Any] = {
        "scheduled": len(tasks),
        "finished": len(finished),
        "failed": sum(1 for t in finished if t.status == "failed"),
        "finished_at_stop": at_stop,
        "backlog_at_stop": scheduled_by_stop - at_stop,
        "unfinished": unfinished,
        "drain_s": (None if unfinished else round(max(0.0, (last or load_end) - load_end), 2)),
        "queue_delay_ms": percentiles_ms(
            [t.started_s - t.scheduled_s for t in tasks if t.started_s is not None]
        ),
        "completion_ms": percentiles_ms(
            [t.finished_s - t.scheduled_s for t in finished if t.finished_s is not None]
        ),
    }
    if webhooks:
        delivered = [t.delivered_s - t.scheduled_s for t in tasks if t.delivered_s is not None]
        summary["webhooks"] = {
            "delivered": len(delivered),
            "delivery_ms": percentiles_ms(delivered),
        }
    return summary


def summarize_counts(
    *,
    scheduled: int,
    finished_at_stop: int,
    backlog_at_stop: int,
    drain_s: float | None,
    unfinished: int,
) -> dict[str, Any]:
    """The same summary from counters alone (the lab's GET /stats): no per-task times."""
    return {
        "scheduled": scheduled,
        "finished": scheduled - unfinished,
        "failed": None,
        "finished_at_stop": finished_at_stop,
        "backlog_at_stop": backlog_at_stop,
        "unfinished": unfinished,
        "drain_s": None if unfinished else drain_s,
        "queue_delay_ms": None,
        "completion_ms": None,
    }


def summarize_counters(
    points: Sequence[tuple[float, Mapping[str, int]]],
    baseline: Mapping[str, int],
    *,
    load_end: float,
) -> dict[str, Any]:
    """The summary from the lab's GET /stats sampled over time: (Unix time, counts) points,
    counted from ``baseline`` (the counts before the scenario)."""
    if not points:
        raise ValueError("no samples of the counters")

    def backlog(counts: Mapping[str, int]) -> int:
        return counts["backlog"] - baseline["backlog"]

    at_stop = [c for t, c in points if t <= load_end] or [baseline]
    busy = [t for t, c in points if t > load_end and backlog(c) > 0]
    settled = [t for t, c in points if t > (busy[-1] if busy else load_end) and backlog(c) <= 0]
    drain_s = None
    if settled:
        drain_s = round(settled[0] - load_end, 2) if busy or backlog(at_stop[-1]) > 0 else 0.0
    last = points[-1][1]
    return summarize_counts(
        scheduled=last["scheduled"] - baseline["scheduled"],
        finished_at_stop=at_stop[-1]["finished"] - baseline["finished"],
        backlog_at_stop=backlog(at_stop[-1]),
        drain_s=drain_s,
        unfinished=max(0, backlog(last)),
    )


def backlog_over_time(
    tasks: Sequence[TaskTimes], *, start: float, end: float, step: float = 0.25
) -> list[tuple[float, int]]:
    """(seconds since ``start``, tasks scheduled but not finished) every ``step`` seconds."""
    if step <= 0:
        raise ValueError("step must be positive")
    points = []
    n = 0
    while (t := start + n * step) <= end:
        waiting = sum(
            1
            for task in tasks
            if task.scheduled_s <= t and (task.finished_s is None or task.finished_s > t)
        )
        points.append((round(n * step, 3), waiting))
        n += 1
    return points
