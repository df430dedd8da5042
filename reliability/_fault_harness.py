"""What the fault scenarios share besides the server: a client that submits work and checks
every answer against the contract, and the record a run returns."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from reference_app.core.errors import RETRY_AFTER_SECONDS
from reference_app.testing import LiveServer
from reliability._eventlog import Snapshot
from reliability._hook_receiver import Delivery
from reliability._outcome import Outcome
from reliability._served import AUTH_A

__all__ = [
    "FaultRun",
    "Submissions",
    "client_for",
    "contract_problem",
    "hold_load",
    "percentile",
    "post_one",
    "submit_many",
    "task_body",
]


@dataclass
class FaultRun:
    """A scenario's outcome, with the evidence behind it for the tests to check."""

    outcome: Outcome
    snapshot: Snapshot
    """Every task and event once the scenario stopped waiting."""
    accepted: list[uuid.UUID]
    deliveries: list[Delivery] = field(default_factory=list)
    """Every POST the webhook receiver got."""
    logs: list[list[dict[str, Any]]] = field(default_factory=list)
    """The JSON log of each server the scenario started, in start order."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Scenario-specific figures (for example how many tasks were running at the kill)."""


def client_for(server: LiveServer, *, timeout: float = 30.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(
        base_url=server.url, headers=AUTH_A, timeout=timeout, limits=limits, trust_env=False
    )


def task_body(index: int, *, io_ms: int, webhook_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"data": {"n": index}, "io_ms": io_ms}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    return body


@dataclass
class Submissions:
    """What the client saw: accepted task ids, status codes, latencies, contract breaches."""

    task_ids: list[uuid.UUID] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Answers that break the contract: a 5xx other than 503, a 503 without ``Retry-After``,
    a body that is not the JSON the status promises."""

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def merge(self, other: Submissions) -> None:
        self.task_ids += other.task_ids
        self.statuses.update(other.statuses)
        self.latencies += other.latencies
        self.problems += other.problems

    def record(self, response: httpx.Response, seconds: float) -> None:
        """Classify one answer to a POST that submits work."""
        self.latencies.append(seconds)
        self.statuses[str(response.status_code)] += 1
        problem = contract_problem(response)
        if problem is not None:
            self.problems.append(problem)
        elif response.status_code == 202:
            self.task_ids.append(uuid.UUID(response.json()["task_id"]))

    def record_error(self, error: httpx.HTTPError) -> None:
        self.statuses[type(error).__name__] += 1
        self.problems.append(f"{type(error).__name__}: {error}")


def contract_problem(response: httpx.Response) -> str | None:
    """None if ``response`` is a 2xx/4xx with JSON or a 503 with ``Retry-After``; else why not."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        return f"{status} with a body that is not JSON: {response.text[:200]!r}"
    if status == 202 and "task_id" not in body:
        return f"202 without a task_id: {body!r}"
    if status == 503:
        if response.headers.get("Retry-After") != str(RETRY_AFTER_SECONDS):
            return f"503 without Retry-After: {dict(response.headers)!r}"
        if not isinstance(body, dict) or "detail" not in body:
            return f"503 without a detail: {body!r}"
        return None
    if status >= 500:
        return f"{status}: {response.text[:300]!r}"
    return None


async def submit_many(
    client: httpx.AsyncClient,
    bodies: Sequence[dict[str, Any]],
    *,
    path: str = "/process-data",
    concurrency: int = 16,
) -> Submissions:
    """POST every body, ``concurrency`` at a time; classify each answer."""
    result = Submissions()
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            body = queue.pop()
            await post_one(client, path, body, result)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


async def post_one(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], into: Submissions
) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        into.record_error(exc)
        return
    into.record(response, time.perf_counter() - started)


async def hold_load(
    client: httpx.AsyncClient,
    make_body: Callable[[int], dict[str, Any]],
    *,
    until: Callable[[], bool],
    concurrency: int = 4,
    pause: float = 0.02,
    into: Submissions | None = None,
) -> Submissions:
    """Keep ``concurrency`` clients submitting until ``until()`` is true (recording ``into``,
    which others may read meanwhile)."""
    result = into if into is not None else Submissions()
    counter = iter(range(1_000_000_000))

    async def worker() -> None:
        while not until():
            await post_one(client, "/process-data", make_body(next(counter)), result)
            await asyncio.sleep(pause)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, or None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
