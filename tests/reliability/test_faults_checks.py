"""The fault scenarios' own checks catch what they look for (no servers, milliseconds)."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from reliability._eventlog import Event, Snapshot, TaskRow
from reliability._fault_harness import contract_problem
from reliability._hook_receiver import Delivery, Receiver
from reliability._two_apps import RunInterval, overlapping_runs, run_intervals
from reliability._webhook_faults import MODES, policy_mismatch
from reliability.faults import SCENARIOS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def log(event: str, task: str, attempt: int, seconds: float) -> dict[str, Any]:
    return {
        "event": event,
        "task_id": task,
        "attempt": attempt,
        "timestamp": at(seconds).isoformat(),
    }


def test_run_intervals_pair_each_start_with_its_end_per_process() -> None:
    crashed: dict[str, Any] = {
        "event": "task_crashed",
        "task_id": "d",
        "timestamp": at(3).isoformat(),
    }
    logs = [
        [log("task_started", "a", 1, 0), log("task_succeeded", "a", 1, 1)],
        [log("task_started", "b", 1, 0), log("attempt_failed", "b", 1, 2)],
        [log("task_started", "c", 1, 0)],  # killed: never ended
        [log("task_started", "d", 1, 0), crashed],  # recording its outcome failed
    ]
    assert run_intervals(logs) == [
        RunInterval(0, "a", 1, at(0), at(1)),
        RunInterval(1, "b", 1, at(0), at(2)),
        RunInterval(2, "c", 1, at(0), None),
        RunInterval(3, "d", 1, at(0), at(3)),
    ]


def test_overlapping_runs_of_one_task_are_found_and_sequential_ones_are_not() -> None:
    sequential = [RunInterval(0, "a", 1, at(0), at(1)), RunInterval(1, "a", 2, at(1), at(2))]
    overlapping = [RunInterval(0, "b", 1, at(0), at(2)), RunInterval(1, "b", 2, at(1), at(3))]
    untimed = [RunInterval(0, "c", 1, at(0), None), RunInterval(1, "c", 2, at(5), at(6))]
    other_tasks = [RunInterval(0, "d", 1, at(0), at(9)), RunInterval(1, "e", 1, at(1), at(2))]

    assert overlapping_runs(sequential + other_tasks + untimed) == []
    assert overlapping_runs(overlapping) == [tuple(overlapping)]


def _stream(stream_id: uuid.UUID, *types: str, payloads: list[dict] | None = None) -> list[Event]:
    payloads = payloads or [{} for _ in types]
    return [
        Event(stream_id, n + 1, t, p, at(n))
        for n, (t, p) in enumerate(zip(types, payloads, strict=True))
    ]


def test_an_attempt_started_twice_is_found() -> None:
    task = uuid.uuid4()
    started = {"attempt": 1}
    snap = Snapshot(
        {task: TaskRow(task, "process_data", "running", 1, None, {})},
        {
            task: _stream(
                task,
                "task_scheduled",
                "task_started",
                "task_started",
                payloads=[{}, started, started],
            )
        },
    )
    assert snap.attempts_started_twice() == [(task, 1)]
    assert snap.reruns([task]) == 1
    missing = uuid.uuid4()
    assert snap.unfinished([task, missing]) == [task, missing]  # running, and never accepted
    assert not snap.settled([task])


def _with_delivery(*types: str, failure: dict) -> tuple[Snapshot, uuid.UUID]:
    parent, delivery = uuid.uuid4(), uuid.uuid4()
    payloads = [failure if t == "attempt_failed" else {} for t in types]
    snap = Snapshot(
        {
            parent: TaskRow(parent, "process_data", "succeeded", 1, None, {}),
            delivery: TaskRow(delivery, "webhook_delivery", "failed", 3, parent, {}),
        },
        {delivery: _stream(delivery, *types, payloads=payloads)},
    )
    return snap, parent


@pytest.mark.parametrize(
    ("mode_name", "types", "failure", "problem"),
    [
        pytest.param(
            "400, no retry",
            ["task_scheduled", "task_started", "attempt_failed", "task_failed"],
            {"error_type": "RefusedResponse", "status_code": 400},
            None,
            id="400-as-the-policy-says",
        ),
        pytest.param(
            "400, no retry",
            [
                "task_scheduled",
                "task_started",
                "attempt_failed",
                "retry_scheduled",
                "task_started",
                "attempt_failed",
                "task_failed",
            ],
            {"error_type": "RefusedResponse", "status_code": 400},
            "stream",
            id="400-retried",
        ),
        pytest.param(
            "500",
            ["task_scheduled"]
            + ["task_started", "attempt_failed", "retry_scheduled"] * 2
            + ["task_started", "attempt_failed", "task_failed"],
            {"error_type": "RetryableResponse", "status_code": 503},
            "status codes",
            id="wrong-status",
        ),
    ],
)
def test_policy_mismatch_names_what_differs(
    mode_name: str, types: list[str], failure: dict, problem: str | None
) -> None:
    [mode] = [m for m in MODES if m.name == mode_name]
    snap, parent = _with_delivery(*types, failure=failure)
    found = policy_mismatch(snap, parent, mode)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


def test_the_receiver_counts_a_second_2xx_for_one_id_as_a_duplicate() -> None:
    receiver = Receiver()
    for webhook_id, status in [("a", 204), ("a", 204), ("a", 500), ("b", 500), ("b", 204)]:
        receiver.record(Delivery("/x", webhook_id, status, 0.0))
    assert receiver.duplicates() == 1
    receiver.server.server_close()


@pytest.mark.parametrize(
    ("status", "headers", "body", "breach"),
    [
        (202, {}, {"task_id": "x"}, False),
        (503, {"Retry-After": "2"}, {"detail": "down"}, False),
        (422, {}, {"detail": []}, False),
        (503, {}, {"detail": "down"}, True),
        (500, {}, {"detail": "boom"}, True),
        (202, {}, {"status": "?"}, True),
    ],
)
def test_contract_problem_flags_500s_and_503s_without_retry_after(
    status: int, headers: dict[str, str], body: dict, breach: bool
) -> None:
    response = httpx.Response(status, headers=headers, json=body)
    assert (contract_problem(response) is not None) is breach


def test_every_fault_scenario_takes_a_database_url_and_long() -> None:
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    for scenario in SCENARIOS:
        parameters = inspect.signature(scenario.run).parameters
        assert list(parameters) == ["database_url", "long"]
        assert parameters["long"].kind is inspect.Parameter.KEYWORD_ONLY
        assert set(scenario.backends) <= {"sqlite", "postgresql"}
