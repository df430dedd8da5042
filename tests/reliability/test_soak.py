"""About 30 s of the soak on SQLite, inside ``make test``; ``make soak`` runs the long one.

One backend keeps the default suite lean; ``make reliability`` soaks both.
"""

from __future__ import annotations

import pytest

from reliability._databases import fresh_database
from reliability.soak import run_soak

pytestmark = [pytest.mark.live, pytest.mark.timeout(150)]

SECONDS = 30.0
RATE = 15.0
# Generous: a leak of a few KiB per request would still pass in 30 s, a gross one will not.
MAX_GROWTH_AFTER_WARMUP = 1.5


def test_a_short_soak_holds_its_rate_drains_and_loses_nothing():
    with fresh_database("sqlite") as url:
        result = run_soak(url, seconds=SECONDS, rate=RATE, warmup=10.0)

    summary = result.summary()
    assert result.sent == int(SECONDS * RATE), summary
    assert result.server_errors == 0, summary
    assert result.transport_errors == 0, summary
    assert result.accepted == result.sent, summary
    assert result.unfinished == 0, summary
    assert result.drain_seconds is not None, summary
    assert result.scheduled == result.terminal == result.accepted, summary
    assert result.growth_after_warmup <= MAX_GROWTH_AFTER_WARMUP, summary
    assert result.rss_end / result.rss_warm <= MAX_GROWTH_AFTER_WARMUP, summary
