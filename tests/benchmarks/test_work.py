"""benchmarks._work: backlog, drain, queue delay and completion latency from per-task times."""

from pathlib import Path

import pytest

from benchmarks._work import (
    TaskTimes,
    backlog_over_time,
    read_tasks,
    summarize_counters,
    summarize_counts,
    summarize_tasks,
    write_tasks,
)

LOAD_END = 100.0


def task(
    scheduled: float, started: float | None, finished: float | None, **kw: object
) -> TaskTimes:
    status = kw.pop("status", "succeeded" if finished is not None else "running")
    return TaskTimes(scheduled, started, finished, str(status), **kw)  # type: ignore[arg-type]


def test_a_task_still_running_at_the_stop_is_backlog_and_the_drain_ends_with_the_last() -> None:
    tasks = [
        task(98.0, 98.01, 98.31),  # done before the stop
        task(99.5, 99.52, 100.4),  # done 0.4 s after the stop
        task(99.9, 101.0, 102.5),  # waited for a slot: done 2.5 s after the stop
    ]
    summary = summarize_tasks(tasks, load_end=LOAD_END)
    assert summary["scheduled"] == 3
    assert summary["finished"] == 3
    assert summary["finished_at_stop"] == 1
    assert summary["backlog_at_stop"] == 2
    assert summary["drain_s"] == 2.5
    assert summary["unfinished"] == 0
    assert summary["queue_delay_ms"] == {"p50": 20.0, "p95": 1100.0, "p99": 1100.0}
    assert summary["completion_ms"] == {"p50": 900.0, "p95": 2600.0, "p99": 2600.0}
    assert "webhooks" not in summary


def test_an_unfinished_task_means_no_drain_time() -> None:
    summary = summarize_tasks([task(99.0, 99.1, None)], load_end=LOAD_END)
    assert summary["unfinished"] == 1
    assert summary["drain_s"] is None
    assert summary["completion_ms"] is None
    assert summary["queue_delay_ms"] == {"p50": 100.0, "p95": 100.0, "p99": 100.0}


def test_failed_tasks_are_finished_and_counted_and_deliveries_have_their_own_latency() -> None:
    tasks = [
        task(10.0, 10.1, 10.5, delivered_s=10.6),
        task(11.0, 11.1, 11.2, status="failed", delivered_s=None),
    ]
    summary = summarize_tasks(tasks, load_end=LOAD_END, webhooks=True)
    assert summary["failed"] == 1
    assert summary["drain_s"] == 0.0  # everything ended before the load did
    assert summary["webhooks"] == {
        "delivered": 1,
        "delivery_ms": {"p50": 600.0, "p95": 600.0, "p99": 600.0},
    }


def test_backlog_over_time_counts_accepted_not_finished_tasks() -> None:
    tasks = [task(0.0, 0.0, 1.0), task(0.5, 0.5, 2.0)]
    points = backlog_over_time(tasks, start=0.0, end=2.5, step=0.5)
    assert points == [(0.0, 1), (0.5, 2), (1.0, 1), (1.5, 1), (2.0, 0), (2.5, 0)]
    with pytest.raises(ValueError, match="step"):
        backlog_over_time(tasks, start=0.0, end=1.0, step=0)


def test_counts_alone_give_the_same_summary_without_latencies() -> None:
    summary = summarize_counts(
        scheduled=40, finished_at_stop=25, backlog_at_stop=15, drain_s=3.2, unfinished=0
    )
    assert summary["finished"] == 40
    assert summary["drain_s"] == 3.2
    assert summary["queue_delay_ms"] is None
    stuck = summarize_counts(
        scheduled=40, finished_at_stop=25, backlog_at_stop=15, drain_s=3.2, unfinished=5
    )
    assert stuck["drain_s"] is None


def counts(scheduled: int, finished: int) -> dict[str, int]:
    return {
        "scheduled": scheduled,
        "running": 0,
        "finished": finished,
        "backlog": scheduled - finished,
    }


def test_the_lab_counters_give_backlog_at_stop_and_the_drain_after_the_last_busy_sample() -> None:
    baseline = counts(100, 100)  # from earlier scenarios
    points = [
        (99.0, counts(110, 104)),
        (100.0, counts(120, 108)),  # the load stops: 12 waiting
        (100.5, counts(121, 121)),  # a late answer made it look drained ...
        (101.0, counts(122, 118)),  # ... but the last request's task was still to come
        (102.0, counts(122, 122)),
    ]
    summary = summarize_counters(points, baseline, load_end=LOAD_END)
    assert summary["scheduled"] == 22
    assert (summary["finished_at_stop"], summary["backlog_at_stop"]) == (8, 12)
    assert summary["drain_s"] == 2.0
    assert summary["unfinished"] == 0


def test_counters_that_never_settle_have_no_drain_and_none_is_an_error() -> None:
    stuck = summarize_counters([(101.0, counts(10, 5))], counts(0, 0), load_end=LOAD_END)
    assert stuck["drain_s"] is None
    assert stuck["unfinished"] == 5
    idle = summarize_counters([(101.0, counts(3, 3))], counts(0, 0), load_end=LOAD_END)
    assert idle["drain_s"] == 0.0  # nothing was waiting when the load stopped
    with pytest.raises(ValueError, match="no samples"):
        summarize_counters([], counts(0, 0), load_end=LOAD_END)


def test_tasks_round_trip_through_csv_keeping_missing_times_missing(tmp_path: Path) -> None:
    tasks = [task(1.5, 1.6, 1.9, delivered_s=2.0), task(2.0, None, None, status="scheduled")]
    write_tasks(tmp_path / "tasks.csv", tasks)
    assert read_tasks(tmp_path / "tasks.csv") == tasks
