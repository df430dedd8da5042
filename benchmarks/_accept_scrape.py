"""What a 1 Hz ``GET /metrics`` scrape costs the app: two runs of the accept group.

Both offer the reference app the accept group's fixed-rate load (``BENCH_ACCEPT_RATE``
background POSTs a second, io_ms=0, for ``BENCH_ACCEPT_SECONDS``) and, beside it from the
same load process, ``GET /health`` every ``probe_interval_ms`` on connections of its own:

- ``<backend>/scrape-none``: that alone;
- ``<backend>/scrape-1hz``: that, and ``GET /metrics`` once a second with the bench's token,
  as Prometheus would scrape it.

Every request is timed from its intended send time. The report sets the second run's
/health p99 and 202 p99 beside the first's (``_accept_report``, information, not a target).
The app serves metrics in both runs (``_apps.METRICS_TOKEN``): the difference is the scrape,
its render and its cached database read, not the recording.
"""

from __future__ import annotations

from typing import Any

from benchmarks._accept_loads import HEALTH, fixed_rate, process_data
from benchmarks._apps import METRICS_TOKEN
from benchmarks._loadgen import RequestSpec, Stream
from benchmarks._plan import BenchSettings

__all__ = ["METRICS", "SCRAPE_PER_SECOND", "SCRAPE_RUNS", "scrape_run", "side_streams"]

SCRAPE_RUNS = ("scrape-none", "scrape-1hz")
SCRAPE_PER_SECOND = 1.0
HEALTH_CONNECTIONS = 2
"""The probe's: one answer may be slow without holding up the next sample."""
METRICS = RequestSpec("GET", "/metrics", (("Authorization", f"Bearer {METRICS_TOKEN}"),))


def side_streams(settings: BenchSettings, *, scrape: bool) -> list[Stream]:
    """The /health probe, and the 1 Hz scraper when ``scrape``."""
    probe_rate = 1000.0 / settings.probe_interval_ms
    streams = [Stream("health", HEALTH, HEALTH_CONNECTIONS, rate=probe_rate)]
    if scrape:
        streams.append(Stream("metrics", METRICS, 1, rate=SCRAPE_PER_SECOND))
    return streams


def scrape_run(
    port: int, settings: BenchSettings, *, scrape: bool, watch_pid: int | None = None
) -> dict[str, Any]:
    """One of the pair: what the POSTs saw, with the probe's and the scraper's latencies."""
    seen = fixed_rate(
        port,
        process_data(io_ms=0),
        rate=settings.accept_rate,
        seconds=settings.accept_seconds,
        watch_pid=watch_pid,
        beside=side_streams(settings, scrape=scrape),
    )
    beside = seen.pop("beside")
    health, metrics = beside["health"], beside.get("metrics")
    return {
        "io_ms": 0,
        **seen,
        "scrape_per_s": SCRAPE_PER_SECOND if scrape else 0.0,
        "health_requests": health["requests"],
        "health_p50_ms": health["p50_ms"],
        "health_p99_ms": health["p99_ms"],
        "health_max_ms": health["max_ms"],
        "health_statuses": health["statuses"],
        "scrapes": metrics["requests"] if metrics else 0,
        "scrape_p50_ms": metrics["p50_ms"] if metrics else None,
        "scrape_max_ms": metrics["max_ms"] if metrics else None,
        "scrape_statuses": metrics["statuses"] if metrics else {},
    }
