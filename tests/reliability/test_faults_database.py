"""Database trouble under load: 503 with Retry-After or success, never a 500; nothing lost."""

from __future__ import annotations

import pytest

from reliability._db_trouble import (
    postgres_running,
    run_pg_restart,
    run_pg_terminate,
    run_sqlite_locked,
)
from tests.reliability._faults_lengths import LENGTHS

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]

POSTGRES = [pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", POSTGRES)
@pytest.mark.parametrize("long", LENGTHS)
def test_killed_postgres_connections_are_503s_or_successes_and_the_app_heals(
    database_url: str, long: bool
) -> None:
    run = run_pg_terminate(database_url, long=long)
    outcome, snap, facts = run.outcome, run.snapshot, run.facts

    assert facts["terminations"] >= 1  # the fault hit the app's connections
    assert facts["submitted"].problems == []  # no 500, every 503 with Retry-After
    assert facts["reads"].problems == []
    assert set(facts["submitted"].statuses) <= {"202", "503"}
    assert facts["heal_s"] is not None
    assert outcome.accepted >= 1
    assert outcome.lost == 0, outcome
    assert snap.attempts_started_twice() == []
    # Overlapping attempts (facts["overlaps"]) are only reported: on a loaded machine the
    # lease gap that test_faults_lease.py shows can produce them without any kill.
    assert {snap.tasks[i].status for i in run.accepted} == {"succeeded"}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("long", LENGTHS)
def test_a_sqlite_lock_held_past_the_busy_timeout_is_a_503_and_heals_on_release(
    database_url: str, long: bool
) -> None:
    run = run_sqlite_locked(database_url, long=long)
    outcome, snap, facts = run.outcome, run.snapshot, run.facts
    during, health = facts["during"], facts["health"]

    assert during.statuses["503"] >= 1, during.statuses  # the lock outlasted a request
    assert set(during.statuses) <= {"202", "503"}
    assert during.problems == []  # each 503 is JSON with Retry-After; no 500
    # The event loop kept answering while writes waited on the lock.
    assert health.problems == []
    assert health.statuses == {"200": health.sent}
    assert health.sent >= 10
    assert facts["heal_s"] is not None
    assert outcome.lost == 0, outcome
    assert {snap.tasks[i].status for i in run.accepted} == {"succeeded"}


@pytest.mark.pg_restart
@pytest.mark.parametrize("backend", POSTGRES)
@pytest.mark.parametrize("long", LENGTHS)
def test_a_restarted_postgres_server_is_503s_then_healed_with_nothing_lost(
    database_url: str, long: bool
) -> None:
    try:
        run = run_pg_restart(database_url, long=long)
    finally:
        assert postgres_running(), "PostgreSQL must be left running"
    outcome, snap, facts = run.outcome, run.snapshot, run.facts
    print(outcome)  # this test runs rarely (it stops the server): keep its figures in -rP
    errors = [r for log in run.logs for r in log if r.get("level") in ("error", "critical")]
    print("problems:", facts["submitted"].problems[:5], facts["reads"].problems[:5])
    print("error log lines:", [(r.get("event"), r.get("exception", "")[-600:]) for r in errors[:8]])

    assert facts["submitted"].problems == []
    assert facts["reads"].problems == []
    assert facts["submitted"].statuses["503"] >= 1  # requests met the outage
    assert facts["heal_s"] is not None
    assert outcome.lost == 0, outcome
    assert snap.attempts_started_twice() == []
    assert {snap.tasks[i].status for i in run.accepted} == {"succeeded"}
