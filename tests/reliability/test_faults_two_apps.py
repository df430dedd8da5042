"""Two app processes on one PostgreSQL database: sweepers race, no attempt runs twice."""

from __future__ import annotations

import pytest

from reliability._two_apps import run_two_apps
from tests.reliability._faults_lengths import LENGTHS

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("long", LENGTHS)
def test_two_processes_race_for_the_same_tasks_and_never_run_an_attempt_twice(
    database_url: str, long: bool
) -> None:
    run = run_two_apps(database_url, long=long)
    outcome, snap, facts = run.outcome, run.snapshot, run.facts

    assert outcome.accepted == outcome.inputs
    assert outcome.lost == 0, outcome
    # The race was real: both processes ran attempts, and both sweepers claimed some.
    assert set(facts["runs_by_process"]) == {0, 1}
    assert min(facts["swept_by_process"]) >= 1, facts["swept_by_process"]
    # From both processes' own logs: each attempt started once, runs of a task never overlap.
    assert facts["started_twice"] == []
    assert facts["overlaps"] == []
    assert all(run.end is not None for run in facts["intervals"])
    # And from the event log.
    assert snap.attempts_started_twice() == []
    assert {snap.tasks[i].status for i in run.accepted} == {"succeeded"}
    # Nothing crashed, so each webhook went out exactly once.
    assert outcome.duplicates == 0
    assert len(run.deliveries) == len(run.accepted)
