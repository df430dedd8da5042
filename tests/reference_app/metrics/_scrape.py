"""Scraping the app in tests: the token, settings with it, and the exposition parsed."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from reference_app.core.config import Settings
from tests.conftest import make_settings

__all__ = [
    "EXPECTED",
    "SCRAPE",
    "TOKEN",
    "families_of",
    "metrics_settings",
    "sample",
    "scrape",
]

TOKEN = "test-metrics-token-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}

# Every metric the README lists: its type and its labels (besides a histogram's ``le``).
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "bgjobs_accept_duration_seconds": ("histogram", {"route"}),
    "bgjobs_attempt_duration_seconds": ("histogram", {"kind", "outcome"}),
    "bgjobs_queue_delay_seconds": ("histogram", {"kind"}),
    "bgjobs_tasks_accepted": ("counter", {"kind"}),
    "bgjobs_attempts": ("counter", {"kind", "outcome"}),
    "bgjobs_webhook_deliveries": ("counter", {"outcome"}),
    "bgjobs_database_unavailable_responses": ("counter", {"route"}),
    "bgjobs_sweeper_claims": ("counter", set()),
    "bgjobs_sweeper_recovered_leases": ("counter", set()),
    "bgjobs_tasks": ("gauge", {"status"}),
    "bgjobs_queue_lag_seconds": ("gauge", set()),
    "bgjobs_worker_slots_in_use": ("gauge", set()),
    "bgjobs_worker_slots_capacity": ("gauge", set()),
}


def metrics_settings(database_url: str, **overrides: Any) -> Settings:
    """The suite's test settings, with /metrics on."""
    return make_settings(database_url, metrics_token=TOKEN, **overrides)


def families_of(text: str) -> dict[str, Metric]:
    """The exposition parsed by prometheus_client's own parser, by family name."""
    return {family.name: family for family in text_string_to_metric_families(text)}


async def scrape(client: httpx.AsyncClient) -> dict[str, Metric]:
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return families_of(response.text)


def sample(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The value of the sample ``name`` (``..._total``, ``..._count``) with exactly ``labels``
    among its labels; 0 when there is none yet."""
    family = families[_family_of(name)]
    for each in family.samples:
        if each.name == name and all(each.labels.get(k) == v for k, v in labels.items()):
            return float(each.value)
    return 0.0


def _family_of(name: str) -> str:
    for suffix in ("_total", "_count", "_sum", "_bucket"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
