"""SIGKILL and SIGTERM against a real uvicorn process: every accepted task ends terminal."""

from __future__ import annotations

from collections import Counter

import pytest

from reliability._crash import run_sigkill, run_sigterm
from tests.reliability._faults_lengths import LENGTHS

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]


@pytest.mark.parametrize("long", LENGTHS)
def test_sigkill_mid_flight_loses_nothing_and_the_new_process_reruns_what_was_running(
    database_url: str, long: bool
) -> None:
    run = run_sigkill(database_url, long=long)
    outcome, snap = run.outcome, run.snapshot

    assert outcome.accepted == outcome.inputs
    assert outcome.lost == 0, outcome
    assert run.facts["running_at_kill"] >= 1  # the kill hit work in flight
    assert outcome.reruns >= run.facts["running_at_kill"]
    assert outcome.recovery_s is not None
    assert {snap.tasks[i].status for i in run.accepted} == {"succeeded"}
    assert snap.attempts_started_twice() == []
    for task_id in run.accepted:
        starts = snap.starts(task_id)
        # A rerun follows a failure the new process recorded when the dead one's lease expired.
        failures = [f["error_type"] for f in snap.failures(task_id)]
        assert failures == ["LeaseExpired"] * (len(starts) - 1), (task_id, failures)
    # Every task's webhook was delivered, and the receiver really got each one.
    webhook_ids = set()
    for task_id in run.accepted:
        delivery = snap.delivery_of(task_id)
        assert delivery is not None
        assert delivery.status == "succeeded"
        webhook_ids.add(delivery.params["webhook_id"])
    received = Counter(d.webhook_id for d in run.deliveries)
    assert webhook_ids <= set(received)
    assert set(received) <= webhook_ids  # nothing the app did not schedule
    # At least once: a webhook on the wire at the kill went out again after the restart,
    # under the same webhook-id, so the receiver can tell it is a duplicate.
    assert run.facts["hooks_at_kill"] >= 1
    assert outcome.duplicates == sum(n - 1 for n in received.values()) >= 1
    # The dead process's leases were recovered by the new one, not by the dead one.
    killed_log, new_log = run.logs
    assert not any(r.get("event") == "app_stopped" for r in killed_log)
    assert sum(r.get("event") == "lease_expired" for r in new_log) >= 1


@pytest.mark.parametrize("long", LENGTHS)
def test_sigterm_lets_short_tasks_finish_and_hands_cut_ones_to_the_next_start(
    database_url: str, long: bool
) -> None:
    run = run_sigterm(database_url, long=long)
    outcome, snap, facts = run.outcome, run.snapshot, run.facts
    at_exit = facts["at_exit"]
    short_tasks = [i for i in run.accepted if facts["io_ms"][i] == facts["short_io_ms"]]
    long_tasks = [i for i in run.accepted if facts["io_ms"][i] == facts["long_io_ms"]]

    assert outcome.accepted == outcome.inputs
    assert outcome.lost == 0, outcome
    assert short_tasks
    assert long_tasks
    in_flight = set(facts["running_at_signal"])
    assert in_flight & set(long_tasks), "no long task was in flight at the signal"
    # Short tasks finished inside the grace period, in their first and only attempt.
    assert set(short_tasks) <= set(facts["finished_in_grace"])
    assert all(len(at_exit.starts(i)) == 1 for i in short_tasks)
    # Long ones in flight outlived the grace period: cut, recorded as such, rerun after.
    assert in_flight & set(long_tasks) == set(facts["cut"]) | set(facts["left_running"])
    assert facts["cut"], "no attempt was recorded as cut by the shutdown"
    assert all(at_exit.tasks[i].status == "retrying" for i in facts["cut"])
    assert {snap.tasks[i].status for i in run.accepted} == {"succeeded"}
    cut = set(facts["cut"]) | set(facts["left_running"])
    assert all(len(snap.starts(i)) == 2 for i in cut)
    assert outcome.reruns == len(cut)
    assert snap.attempts_started_twice() == []
    stopped_log = run.logs[0]
    assert any(r.get("event") == "app_stopped" for r in stopped_log)  # a clean exit
    assert any(r.get("event") == "task_interrupted" for r in stopped_log)
