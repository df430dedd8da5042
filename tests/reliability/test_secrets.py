"""No API key, Authorization value or webhook secret in anything the server process logs."""

from __future__ import annotations

import json

import pytest

from reliability.secret_logs import scenario_with_secrets
from tests.reliability._served import BACKENDS, database_for

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_secrets_never_reach_the_json_log(backend: str):
    with database_for(backend) as url:
        run = scenario_with_secrets(url)

    assert run.leaks() == []
    # The scenario did what it claims, so the search above is not vacuous.
    assert run.statuses == [202, 202, 202, 401, 401, 202, 409, 202]
    assert run.receiver_hits == 2  # the webhook, signed with both secrets, failed twice
    assert run.unfinished == 0
    records = [json.loads(line) for line in run.log.splitlines() if line.strip()]
    events = [record["event"] for record in records]
    assert events.count("task_failed") == 2  # the missing file and the webhook delivery
    assert any('" 401' in event for event in events)
    assert "[REDACTED]" in run.log  # the key sent as X-Request-ID and Idempotency-Key
