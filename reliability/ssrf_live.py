"""The SSRF table of the webhook tests, sent through the real API of a live server.

Every blocked ``webhook_url`` is a 422 that names the field, and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from reliability._databases import count_rows, fresh_database
from reliability._outcome import Outcome, Scenario
from reliability._served import AUTH_A, backend_of, serve
from tests.reference_app.webhooks.test_ssrf import BLOCKED_URLS

__all__ = [
    "ENDPOINTS",
    "SCENARIOS",
    "SsrfReport",
    "check_ssrf",
    "run_ssrf",
    "submit_blocked",
    "what_is_wrong",
]

# Each endpoint with a body it would otherwise accept.
ENDPOINTS: dict[str, dict[str, Any]] = {
    "/process-data": {"data": {"a": 1}, "io_ms": 0},
    "/process-data?mode=inline": {"data": {"a": 1}, "io_ms": 0},
    "/import-contacts": {"file_id": "contacts.csv"},
    "/send-notification": {"email": "ada@example.com", "message": "hi"},
}


@dataclass
class SsrfReport:
    tried: int = 0
    accepted: int = 0
    wrong: list[str] = field(default_factory=list)


def submit_blocked(client: httpx.Client, path: str, url: str) -> httpx.Response:
    """POST ``url`` as the webhook of a job that ``path`` would otherwise accept."""
    return client.post(path, json={**ENDPOINTS[path], "webhook_url": url})


def what_is_wrong(path: str, url: str, response: httpx.Response) -> str | None:
    """Why ``response`` is not the 422 naming ``webhook_url`` that a blocked URL must get."""
    if response.status_code != 422:
        return f"{path} {url[:80]!r}: {response.status_code} {response.text[:200]!r}"
    detail = response.json()["detail"]
    if not any(error["loc"] == ["body", "webhook_url"] for error in detail):
        return f"{path} {url[:80]!r}: 422 that does not name webhook_url: {detail!r}"
    return None


def check_ssrf(base_url: str, database_url: str, urls: list[str] = BLOCKED_URLS) -> SsrfReport:
    """Every URL on ``/process-data``, and on every endpoint; rows counted before and after."""
    report = SsrfReport()
    before = count_rows(database_url, settle_seconds=15)  # earlier tasks' events are not ours
    with httpx.Client(base_url=base_url, headers=AUTH_A, timeout=30) as client:
        for path in ENDPOINTS:
            for url in urls:
                report.tried += 1
                response = submit_blocked(client, path, url)
                report.accepted += response.status_code in (200, 202)
                if problem := what_is_wrong(path, url, response):
                    report.wrong.append(problem)
    after = count_rows(database_url)
    if after != before:
        report.wrong.append(f"rows went from {before} to {after}")
    return report


def run_ssrf(database_url: str, long: bool = True) -> Outcome:
    with serve(database_url) as server:
        report = check_ssrf(server.url, database_url)
    if report.wrong:
        raise AssertionError("; ".join(report.wrong[:10]))
    return Outcome(
        fault="SSRF webhook URLs via the API",
        backend=backend_of(database_url),
        load=f"{len(BLOCKED_URLS)} URLs x {len(ENDPOINTS)} endpoints",
        inputs=report.tried,
        accepted=report.accepted,
        lost=0,  # nothing was accepted, so nothing can be lost
        duplicates=0,
        notes="every blocked URL a 422 naming webhook_url; no row written",
    )


SCENARIOS = [Scenario("SSRF through the API", run_ssrf)]

if __name__ == "__main__":
    with fresh_database("sqlite") as db:
        print(run_ssrf(db))
