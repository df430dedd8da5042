"""Hostile inputs against a live server: a clear 4xx, nothing written, the server still up."""

from __future__ import annotations

import pytest

from reliability.inputs import HOSTILE_INPUTS, HostileInput, try_input
from tests.reliability._served import Served

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


@pytest.mark.parametrize("case", HOSTILE_INPUTS, ids=lambda case: case.name)
def test_a_hostile_input_gets_a_clear_4xx_and_writes_nothing(live_app: Served, case: HostileInput):
    verdict = try_input(live_app.server, live_app.database_url, case)

    assert verdict.problems == [], verdict.response.body[:300]
    assert 400 <= verdict.response.status < 500


def test_the_table_covers_every_kind_of_hostile_input():
    names = " ".join(case.name for case in HOSTILE_INPUTS)
    for kind in ("body-2mib", "chunked", "deep", "content-type", "utf8", "header-64kib",
                 "request-id", "idempotency-key", "id-"):  # fmt: skip
        assert kind in names
    assert len(HOSTILE_INPUTS) >= 40
