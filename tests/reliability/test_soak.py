"""About 15 s of the soak on SQLite, inside ``make test``; ``make soak`` runs the long one.

One backend keeps the default suite lean; ``make reliability`` soaks both.
"""

from __future__ import annotations

import pytest

from reliability._databases import fresh_database
from reliability.soak import run_soak

pytestmark = [pytest.mark.live, pytest.mark.timeout(150)]

# 450 requests, 150 in the warm-up and 300 after it: as many as 30 s at 15/s sent.
SECONDS = 15.0
RATE = 30.0
WARMUP = 5.0
# Generous: a leak of a few KiB per request would still pass in 450 requests, a gross one
# will not.
MAX_GROWTH_AFTER_WARMUP = 1.5


def test_a_short_soak_holds_its_rate_drains_and_loses_nothing():
    with fresh_database("sqlite") as url:
        result = run_soak(url, seconds=SECONDS, rate=RATE, warmup=WARMUP)

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
