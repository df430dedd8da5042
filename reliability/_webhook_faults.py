"""Webhook receiver faults at once under load: slow, 5xx, 429 storms, refused, refused for good.

Every task reports to a receiver path with one fault. Each delivery child task must
end as the retry policy says (checked event by event in its own stream), while
``/health`` and new requests keep answering: their latencies during the storm are
reported next to a baseline measured just before it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx

from reference_app.testing import LiveServer, free_port
from reliability._eventlog import Snapshot, observe
from reliability._fault_harness import (
    FaultRun,
    Submissions,
    client_for,
    percentile,
    post_one,
    submit_many,
    task_body,
)
from reliability._hook_receiver import Delivery, Receiver
from reliability._loop import run_async
from reliability._outcome import Outcome
from reliability._served import FAST_SETTINGS, backend_of, start_app, stop_all

__all__ = ["MODES", "Mode", "policy_mismatch", "run_webhook_faults", "webhook_faults"]

MAX_ATTEMPTS = 3
READ_TIMEOUT = 1.0  # well above a loaded event loop's stalls, well below /slow's 3 s
RETRY_AFTER = 1.0  # what /throttled sends; inside [base, cap], so used as it is
SETTINGS = {
    **FAST_SETTINGS,
    # No process dies here: a lease far longer than any stall keeps sweeper recovery (and the
    # lease gap that tests/reliability/test_faults_lease.py shows) out of the policy's way.
    "lease_seconds": "15",
    "webhook_max_attempts": str(MAX_ATTEMPTS),
    "webhook_read_timeout_seconds": str(READ_TIMEOUT),
    "webhook_retry_base_seconds": "0.05",
    "webhook_retry_cap_seconds": "2",
}


@dataclass(frozen=True)
class Mode:
    """A receiver fault and what the retry policy must make of it."""

    name: str
    path: str | None  # None: a port nothing listens on
    delivered: bool
    attempts: int
    error_type: str | None = None
    status_code: int | None = None
    retry_delay: float | None = None


MODES = (
    Mode("ok", "/ok", delivered=True, attempts=1),
    Mode("slow but in time", "/slow-ok", delivered=True, attempts=1),
    Mode(
        "slower than the read timeout",
        "/slow",
        delivered=False,
        attempts=MAX_ATTEMPTS,
        error_type="ReadTimeout",
    ),
    Mode(
        "500",
        "/error",
        delivered=False,
        attempts=MAX_ATTEMPTS,
        error_type="RetryableResponse",
        status_code=500,
    ),
    Mode(
        "429 with Retry-After",
        "/throttled",
        delivered=False,
        attempts=MAX_ATTEMPTS,
        error_type="RetryableResponse",
        status_code=429,
        retry_delay=RETRY_AFTER,
    ),
    Mode(
        "400, no retry",
        "/bad",
        delivered=False,
        attempts=1,
        error_type="RefusedResponse",
        status_code=400,
    ),
    Mode(
        "connection refused",
        None,
        delivered=False,
        attempts=MAX_ATTEMPTS,
        error_type="ConnectError",
    ),
)


def webhook_faults(database_url: str, *, long: bool = False) -> Outcome:
    """Every fault at once; every delivery ends as the policy says; the app keeps answering."""
    return run_webhook_faults(database_url, long=long).outcome


def run_webhook_faults(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _webhook_faults(database_url, long=long))


async def _webhook_faults(database_url: str, *, long: bool) -> FaultRun:
    per_mode = 40 if long else 5
    servers: list[LiveServer] = []
    refused = f"http://127.0.0.1:{free_port()}/hook"
    with Receiver(slow_ok_seconds=0.1, slow_seconds=3.0, retry_after=f"{RETRY_AFTER:g}") as rx:
        try:
            server = await asyncio.to_thread(start_app, database_url, SETTINGS)
            servers.append(server)
            modes = [m for m in MODES for _ in range(per_mode)]
            bodies = [
                task_body(i, io_ms=0, webhook_url=rx.url(m.path) if m.path else refused)
                for i, m in enumerate(modes)
            ]
            async with client_for(server) as client, observe(database_url) as observer:
                baseline = await _probe(client, seconds=1.0, until=None)
                storm_over = asyncio.Event()
                during = asyncio.create_task(_probe(client, seconds=None, until=storm_over))
                began = time.monotonic()
                submitted = await submit_many(client, bodies, concurrency=8)
                snap, _ = await observer.wait_settled(
                    submitted.task_ids, seconds=300 if long else 90
                )
                drained_s = time.monotonic() - began
                storm_over.set()
                probes = await during
        finally:
            await asyncio.to_thread(stop_all, servers)
        deliveries = rx.snapshot()
    # Answers arrive out of order: find each task's fault by the index in its data.
    by_task = {i: modes[int(snap.tasks[i].params["data"]["n"])] for i in submitted.task_ids}
    mismatches = {
        str(task_id): problem
        for task_id, mode in by_task.items()
        if (problem := policy_mismatch(snap, task_id, mode)) is not None
    }
    accepted_ids = {d.webhook_id for d in deliveries if 200 <= d.status < 300}
    duplicates = sum(n - 1 for n in _count_2xx(deliveries).values())
    slow_duplicates = sum(n - 1 for n in _count_2xx(deliveries, only="/slow").values())
    lost = [i for i in submitted.task_ids if _delivery_unfinished(snap, i)]
    notes = (
        f"{len(MODES)} faults x {per_mode}; policy mismatches {len(mismatches)}; "
        f"{len(deliveries)} POSTs at the receiver, {len(accepted_ids)} ids answered 2xx; "
        f"{slow_duplicates} of the duplicates at /slow (the receiver was still working when "
        f"the app's read timeout gave up); /health p95 {_ms(baseline.health, 95)} before, "
        f"{_ms(probes.health, 95)} during; POST p95 {_ms(baseline.posts, 95)} before, "
        f"{_ms(probes.posts, 95)} during; all delivered or failed {drained_s:.1f} s after "
        "the first request"
    )
    outcome = Outcome(
        fault="webhook receiver faults",
        backend=backend_of(database_url),
        load=f"{len(bodies)} tasks with webhooks, probes every 50 ms",
        inputs=len(bodies),
        accepted=len(submitted.task_ids),
        lost=len(lost),
        duplicates=duplicates,
        reruns=0,
        recovery_s=None,
        notes=notes,
    )
    return FaultRun(
        outcome,
        snap,
        submitted.task_ids,
        deliveries,
        [s.logs() for s in servers],
        {
            "modes": by_task,
            "mismatches": mismatches,
            "baseline": baseline,
            "during": probes,
            "submissions": submitted,
            "slow_duplicates": slow_duplicates,
        },
    )


@dataclass
class Probes:
    """/health and small POSTs, sent one after another every 50 ms."""

    health: list[float]
    posts: list[float]
    seen: Submissions


async def _probe(
    client: httpx.AsyncClient, *, seconds: float | None, until: asyncio.Event | None
) -> Probes:
    probes = Probes([], [], Submissions())
    deadline = time.monotonic() + seconds if seconds is not None else None
    n = 0
    while not (until is not None and until.is_set()):
        if deadline is not None and time.monotonic() >= deadline:
            break
        started = time.perf_counter()
        try:
            response = await client.get("/health")
        except httpx.HTTPError as exc:
            probes.seen.record_error(exc)
        else:
            probes.health.append(time.perf_counter() - started)
            probes.seen.statuses[f"health {response.status_code}"] += 1
            if response.status_code != 200:
                probes.seen.problems.append(f"/health answered {response.status_code}")
        n += 1
        if n % 2 == 0:  # a small task every 100 ms: requests keep being accepted
            before = len(probes.seen.latencies)
            await post_one(client, "/process-data", task_body(n, io_ms=0), probes.seen)
            probes.posts += probes.seen.latencies[before:]
        await asyncio.sleep(0.05)
    return probes


def policy_mismatch(snap: Snapshot, task_id: uuid.UUID, mode: Mode) -> str | None:
    """None if the delivery of ``task_id`` ended as ``mode`` says; else what differs."""
    delivery = snap.delivery_of(task_id)
    if delivery is None:
        return "no delivery was scheduled"
    stream = [e.type for e in snap.events.get(delivery.id, [])]
    expected = _expected_stream(mode)
    if stream != expected:
        return f"stream {stream} != {expected}"
    failures = snap.failures(delivery.id)
    if mode.error_type and any(f.get("error_type") != mode.error_type for f in failures):
        return f"error types {[f.get('error_type') for f in failures]}, not {mode.error_type}"
    if mode.status_code and any(f.get("status_code") != mode.status_code for f in failures):
        return f"status codes {[f.get('status_code') for f in failures]}, not {mode.status_code}"
    if mode.retry_delay is not None:
        delays = [
            e.payload.get("delay_seconds")
            for e in snap.events[delivery.id]
            if e.type == "retry_scheduled"
        ]
        if any(d != mode.retry_delay for d in delays):
            return f"retry delays {delays}, not the receiver's Retry-After {mode.retry_delay}"
    return None


def _expected_stream(mode: Mode) -> list[str]:
    types = ["task_scheduled"]
    failures = mode.attempts - 1 if mode.delivered else mode.attempts
    for attempt in range(1, failures + 1):
        gave_up = not mode.delivered and attempt == failures
        types += ["task_started", "attempt_failed", "task_failed" if gave_up else "retry_scheduled"]
    if mode.delivered:
        types += ["task_started", "task_succeeded"]
    return types


def _delivery_unfinished(snap: Snapshot, task_id: uuid.UUID) -> bool:
    if snap.unfinished([task_id]):
        return True
    delivery = snap.delivery_of(task_id)
    return delivery is None or delivery.status not in ("succeeded", "failed")


def _count_2xx(deliveries: list[Delivery], only: str | None = None) -> Counter[str]:
    """2xx answers per ``webhook-id`` (at path ``only``, if given)."""
    return Counter(
        d.webhook_id
        for d in deliveries
        if 200 <= d.status < 300 and (only is None or d.path == only)
    )


def _ms(values: list[float], q: float) -> str:
    value = percentile(values, q)
    return "n/a" if value is None else f"{value * 1000:.0f} ms"
