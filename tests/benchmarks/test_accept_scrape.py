"""benchmarks._accept_scrape: the probe and the scraper beside the accept load, and one short
live pair on the reference app."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._accept_scrape import METRICS, scrape_run, side_streams
from benchmarks._apps import METRICS_TOKEN, reference_app
from benchmarks._plan import BenchSettings


def test_the_probe_is_beside_both_runs_and_the_scraper_beside_one() -> None:
    settings = BenchSettings(probe_interval_ms=50.0)
    alone = side_streams(settings, scrape=False)
    scraped = side_streams(settings, scrape=True)
    assert [(s.name, s.request.path, s.rate) for s in alone] == [("health", "/health", 20.0)]
    assert [(s.name, s.request.path, s.rate) for s in scraped] == [
        ("health", "/health", 20.0),
        ("metrics", "/metrics", 1.0),
    ]
    assert METRICS.builder(8000)(1).startswith(b"GET /metrics HTTP/1.1\r\n")
    assert f"Authorization: Bearer {METRICS_TOKEN}".encode() in METRICS.builder(8000)(1)


@pytest.mark.live
@pytest.mark.timeout(120)
def test_a_short_pair_on_the_reference_app_scrapes_with_the_benchs_token(tmp_path: Path) -> None:
    settings = BenchSettings(accept_seconds=2.5, accept_rate=20.0, probe_interval_ms=100.0)
    with reference_app("sqlite", settings, tmp_path) as app:
        port, pid = app.server.port, app.server.pid
        alone = scrape_run(port, settings, scrape=False, watch_pid=pid)
        scraped = scrape_run(port, settings, scrape=True, watch_pid=pid)

    for run in (alone, scraped):
        assert run["statuses"] == {"202": 50}
        assert run["health_requests"] == 25
        assert run["health_statuses"] == {"200": 25}
        assert run["health_p99_ms"] is not None
    assert (alone["scrapes"], alone["scrape_per_s"], alone["scrape_statuses"]) == (0, 0.0, {})
    assert scraped["scrapes"] == 3  # at 0, 1 and 2 s of the 2.5
    assert scraped["scrape_statuses"] == {"200": 3}
    assert scraped["scrape_per_s"] == 1.0
