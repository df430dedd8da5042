"""The accept timer: every 202 of a POST is timed under its route's template, nothing else."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry

from reference_app.metrics.middleware import AcceptTimer
from reference_app.metrics.recorder import Recorder


def timed_app() -> tuple[FastAPI, CollectorRegistry]:
    registry = CollectorRegistry()
    app = FastAPI()
    app.add_middleware(AcceptTimer, recorder=Recorder(registry, webhook_kind="webhook"))

    @app.post("/jobs/{job_id}", status_code=202)
    async def accept(job_id: str) -> dict[str, str]:
        await asyncio.sleep(0.02)
        return {"job_id": job_id}

    @app.post("/refuse")
    async def refuse(response: Response) -> None:
        response.status_code = 409

    @app.get("/jobs/{job_id}", status_code=202)
    async def read(job_id: str) -> None:
        return None

    return app, registry


async def test_a_202_is_timed_under_its_route_template_and_nothing_else_is() -> None:
    app, registry = timed_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        statuses = [
            (await client.post("/jobs/one")).status_code,
            (await client.post("/jobs/two")).status_code,
            (await client.post("/refuse")).status_code,
            (await client.get("/jobs/three")).status_code,  # a GET is no accept
            (await client.post("/nowhere")).status_code,
        ]

    assert statuses == [202, 202, 409, 202, 404]
    labels = {"route": "/jobs/{job_id}"}
    count = registry.get_sample_value("bgjobs_accept_duration_seconds_count", labels)
    total = registry.get_sample_value("bgjobs_accept_duration_seconds_sum", labels)
    assert count == 2
    assert total is not None
    assert 0.04 <= total < 1.0
    routes = {
        s.labels["route"]
        for family in registry.collect()
        if family.name == "bgjobs_accept_duration_seconds"
        for s in family.samples
    }
    assert routes == {"/jobs/{job_id}"}  # neither the ids nor the other routes
