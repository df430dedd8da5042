"""Checks for exercise 08. Run: make check EX=08 (EXERCISE_TARGET=solution for the reference).

A real uvicorn serves the module under test. No check measures a duration: the server logs
``work_started`` and ``work_finished`` as the work runs, and a check reads that log the moment
``GET /health`` answers. "The work had not finished when /health answered" is an ordering, the
same on a fast laptop and on a loaded machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exercises._target import ROOT, uvicorn_target
from reference_app.testing import LiveServer, start_server

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

WORK_MS = 1500  # the work runs this long; /health must answer well inside it
ENV = {"APP_LOG_FORMAT": "json", "APP_LOG_LEVEL": "INFO", "APP_CPU_WORKERS": "1"}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    app, args = uvicorn_target("ex08_offload")
    live = start_server(app, env=ENV, args=args, cwd=ROOT)
    try:
        yield live
    finally:
        live.stop()


def work_lines(server: LiveServer, kind: str, event: str) -> list[dict[str, Any]]:
    return [
        line for line in server.logs() if line.get("event") == event and line.get("kind") == kind
    ]


async def wait_for(server: LiveServer, kind: str, event: str, count: int) -> None:
    async with asyncio.timeout(60):
        while True:
            if len(work_lines(server, kind, event)) >= count:
                return
            await asyncio.sleep(0.02)


async def finished_when_health_answered(server: LiveServer, path: str, kind: str) -> bool:
    """Start one task, send GET /health while it runs: had the task finished when it answered?"""
    started = len(work_lines(server, kind, "work_started"))
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        accepted = await client.post(path, params={"work_ms": WORK_MS})
        assert (accepted.status_code, accepted.json()) == (202, {"accepted": True})
        await wait_for(server, kind, "work_started", started + 1)
        health = await client.get("/health")
        finished = len(work_lines(server, kind, "work_finished")) > started
        await wait_for(server, kind, "work_finished", started + 1)  # idle for the next check
    assert health.json() == {"status": "ok"}
    return finished


async def test_health_answers_while_the_report_is_still_rendering(server: LiveServer) -> None:
    finished = await finished_when_health_answered(server, "/work/report", "report")
    assert not finished, "GET /health waited for the whole report: the event loop was blocked"


async def test_health_answers_while_the_checksum_is_still_computing(server: LiveServer) -> None:
    finished = await finished_when_health_answered(server, "/work/checksum", "checksum")
    assert not finished, "GET /health waited for the whole checksum: the event loop was blocked"
