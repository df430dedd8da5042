"""Finished work, from the event log's task times: rates of ``task_succeeded`` and a check
that every 202 became a finished task (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks._work import TaskTimes

__all__ = ["RAMP_SECONDS", "accounted", "drain_rate", "rate_between", "succeeded_times"]

RAMP_SECONDS = 1.0
"""A load window's first second is left out of its finish rate: the first tasks are still
running then, so nothing can have finished yet."""
MIDDLE = (0.1, 0.9)
"""A drain's rate is taken between its 10th and 90th percentile finish: neither the slots
filling at its start nor the last few tasks of its tail."""
MIN_DRAIN_TASKS = 20


def succeeded_times(tasks: Sequence[TaskTimes]) -> list[float]:
    """When each task that succeeded did (its ``task_succeeded``), in order."""
    return sorted(t.finished_s for t in tasks if t.status == "succeeded" and t.finished_s)


def rate_between(times: Sequence[float], lo: float, hi: float) -> float | None:
    """Finishes per second in [lo, hi); None for an empty window."""
    if hi <= lo:
        return None
    return round(sum(1 for t in times if lo <= t < hi) / (hi - lo), 1)


def drain_rate(times: Sequence[float], after: float) -> float | None:
    """Finishes per second of the backlog left at ``after``, nothing else arriving: over the
    middle of the finishes after it (``MIDDLE``); None when too few were left to tell."""
    left = sorted(t for t in times if t >= after)
    if len(left) < MIN_DRAIN_TASKS:
        return None
    first, last = (round(q * (len(left) - 1)) for q in MIDDLE)
    span = left[last] - left[first]
    return round((last - first) / span, 1) if span > 0 else None


def accounted(tasks: Sequence[TaskTimes], accepted: int) -> dict[str, Any]:
    """Did every 202 become a task, and every task finish? ``accepted``: the 202s counted by
    the client. The database may hold a few more: a request committed, its answer cut."""
    succeeded = sum(1 for t in tasks if t.status == "succeeded")
    failed = sum(1 for t in tasks if t.status == "failed")
    unfinished = len(tasks) - succeeded - failed
    return {
        "accepted": accepted,
        "tasks_in_db": len(tasks),
        "succeeded": succeeded,
        "failed": failed,
        "unfinished": unfinished,
        "every_202_finished": len(tasks) >= accepted and succeeded == len(tasks),
    }
