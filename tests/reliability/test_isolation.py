"""Org B cannot read, list or infer org A's tasks on a live server: 404 alike, never 403."""

from __future__ import annotations

import uuid

import httpx
import pytest

from reliability._served import AUTH_A, AUTH_B
from reliability.isolation import check_isolation
from tests.reliability._served import Served

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]


def test_org_b_learns_nothing_about_org_a(live_app: Served):
    report = check_isolation(live_app.server.url)

    assert report.leaks == []
    assert report.accepted == 4  # A's two tasks and B's two, none shared


def test_another_orgs_task_and_a_missing_one_answer_byte_for_byte_alike(live_app: Served):
    with httpx.Client(base_url=live_app.server.url, timeout=30) as client:
        created = client.post("/send-notification", headers=AUTH_A,
                              json={"email": "ada@example.com", "message": "hi"})  # fmt: skip
        task_id = created.json()["task_id"]
        theirs = client.get(f"/tasks/{task_id}/events", headers=AUTH_B)
        missing = client.get(f"/tasks/{uuid.uuid4()}/events", headers=AUTH_B)
        mine = client.get(f"/tasks/{task_id}/events", headers=AUTH_A)

    assert mine.status_code == 200
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert theirs.headers["content-length"] == missing.headers["content-length"]
