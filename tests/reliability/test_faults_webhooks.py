"""Every webhook receiver fault at once: each delivery ends as the retry policy says."""

from __future__ import annotations

from collections import Counter

import pytest

from reliability._webhook_faults import MODES, run_webhook_faults
from tests.reliability._faults_lengths import LENGTHS

pytestmark = [pytest.mark.live, pytest.mark.timeout(240)]


@pytest.mark.parametrize("long", LENGTHS)
def test_every_delivery_ends_as_the_policy_says_while_the_app_keeps_answering(
    database_url: str, long: bool
) -> None:
    run = run_webhook_faults(database_url, long=long)
    outcome, snap, facts = run.outcome, run.snapshot, run.facts

    assert outcome.accepted == outcome.inputs
    assert outcome.lost == 0, outcome
    assert facts["mismatches"] == {}
    assert set(facts["modes"].values()) == set(MODES)  # every fault was exercised
    # What the receiver saw: each delivery's id as many times as the policy allows attempts.
    posts = Counter(d.webhook_id for d in run.deliveries)
    for task_id, mode in facts["modes"].items():
        delivery = snap.delivery_of(task_id)
        assert delivery is not None
        if mode.path is not None:
            assert posts[delivery.params["webhook_id"]] == mode.attempts, mode
    # Duplicated side effects only where the receiver outlived the app's read timeout.
    assert outcome.duplicates == facts["slow_duplicates"]
    # /health and new requests kept answering during the storm.
    during = facts["during"]
    assert during.seen.problems == []
    assert len(during.health) >= 5
    assert during.seen.statuses["202"] >= 1
