"""Hung attempts on both databases: every stuck attempt ends as AttemptTimeout and frees its
slot; ``make reliability`` runs the longer variant and reports the times."""

from __future__ import annotations

import pytest

from reliability.deadlines import SCENARIOS, run_hung_attempts

pytestmark = pytest.mark.timeout(120)


def test_every_kind_of_stuck_attempt_times_out_and_frees_its_slot(database_url: str) -> None:
    outcome = run_hung_attempts(database_url, runs=1)

    assert (outcome.inputs, outcome.accepted, outcome.lost) == (3, 3, 0)
    for kind in ("awaiting", "thread", "ignores_cancel"):
        assert f"{kind}: median" in outcome.notes


def test_it_is_a_scenario_of_make_reliability() -> None:
    assert [s.name for s in SCENARIOS] == ["hung attempts"]
