"""benchmarks._finish: finish rates from task times, and every 202 accounted for."""

from __future__ import annotations

from benchmarks._finish import accounted, drain_rate, rate_between, succeeded_times
from benchmarks._work import TaskTimes


def task(finished: float | None, status: str = "succeeded") -> TaskTimes:
    return TaskTimes(scheduled_s=0.0, started_s=0.0, finished_s=finished, status=status)


def test_only_succeeded_tasks_count_as_finished_in_order() -> None:
    tasks = [task(3.0), task(1.0), task(2.0, "failed"), task(None, "scheduled")]
    assert succeeded_times(tasks) == [1.0, 3.0]


def test_the_rate_in_a_window_counts_its_start_and_not_its_end() -> None:
    times = [0.5, 1.0, 1.5, 2.0, 2.5]
    assert rate_between(times, 1.0, 2.0) == 2.0
    assert rate_between(times, 3.0, 4.0) == 0.0
    assert rate_between(times, 2.0, 2.0) is None


def test_a_drain_is_timed_over_its_middle_and_needs_enough_tasks() -> None:
    steady = [10 + n / 100 for n in range(200)]  # 100 a second
    tail = [20.0, 25.0]  # the last two straggle: they must not halve the rate
    assert drain_rate(steady + tail, after=10.0) == 100.0
    assert drain_rate(steady, after=11.9) is None  # 10 left: too few to tell
    assert drain_rate([5.0] * 40, after=0.0) is None  # no time between them


def test_every_202_finished_only_when_each_has_a_task_and_each_task_succeeded() -> None:
    done = [task(1.0)] * 5
    assert accounted(done, accepted=5)["every_202_finished"] is True
    # A request committed whose answer was cut: one task more than the 202s, still fine.
    assert accounted(done, accepted=4)["every_202_finished"] is True
    assert accounted(done, accepted=6)["every_202_finished"] is False  # a 202 with no task
    left = accounted([*done, task(None, "scheduled"), task(2.0, "failed")], accepted=7)
    assert (left["succeeded"], left["failed"], left["unfinished"]) == (5, 1, 1)
    assert left["every_202_finished"] is False
