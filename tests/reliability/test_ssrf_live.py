"""The webhook tests' SSRF table through the real API of a live server: 422, nothing written."""

from __future__ import annotations

import httpx
import pytest

from reliability._served import AUTH_A
from reliability.ssrf_live import ENDPOINTS, check_ssrf, submit_blocked, what_is_wrong
from tests.reference_app.webhooks.test_ssrf import BLOCKED_URLS
from tests.reliability._served import Served

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_a_blocked_webhook_url_is_refused_by_the_live_api(live_app: Served, url: str):
    with httpx.Client(base_url=live_app.server.url, headers=AUTH_A, timeout=30) as client:
        response = submit_blocked(client, "/process-data", url)

    assert what_is_wrong("/process-data", url, response) is None


def test_every_endpoint_refuses_every_blocked_url_and_writes_nothing(live_app: Served):
    report = check_ssrf(live_app.server.url, live_app.database_url)  # counts the rows around it

    assert report.wrong == []
    assert report.accepted == 0
    assert report.tried == len(BLOCKED_URLS) * len(ENDPOINTS)
