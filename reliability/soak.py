"""The soak: a fixed arrival rate for a while, then RSS flat, backlog drained, nothing lost.

``make soak`` (``python -m reliability.soak``) runs it for ``SOAK_SECONDS`` (default 180) at
``SOAK_RATE`` requests per second (default 40); ``tests/reliability/test_soak.py`` runs
about 30 s of it inside ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil
from sqlalchemy import func, select

from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.models import TaskEvent
from reference_app.events.lifecycle import EventType
from reliability._databases import fresh_database, unfinished_tasks
from reliability._loop import run_async
from reliability._outcome import Outcome, Scenario
from reliability._served import AUTH_A, ROOT, SERVED_SETTINGS, backend_of, serve

__all__ = ["SCENARIOS", "SoakResult", "main", "run_soak", "soak_scenario"]

MiB = 1024 * 1024
MAX_IN_FLIGHT = 256  # an open model, bounded: past this the client, not the server, is the limit


@dataclass
class SoakResult:
    """What one soak measured. RSS is the uvicorn process's resident set, in MiB."""

    backend: str
    seconds: float
    rate: float
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    skipped: int = 0  # arrivals not sent because MAX_IN_FLIGHT requests were still open
    rss_start: float = 0.0
    rss_warm: float = 0.0
    rss_peak_after_warmup: float = 0.0
    rss_peak: float = 0.0
    rss_end: float = 0.0
    drain_seconds: float | None = None
    unfinished: int = 0
    scheduled: int = 0
    terminal: int = 0

    @property
    def accepted(self) -> int:
        return self.statuses[202]

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def growth_after_warmup(self) -> float:
        """Peak RSS after the warm-up over RSS at the end of it (1.0 is flat)."""
        return self.rss_peak_after_warmup / self.rss_warm if self.rss_warm else float("inf")

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        document["growth_after_warmup"] = round(self.growth_after_warmup, 3)
        return document

    def summary(self) -> str:
        drained = "not drained" if self.drain_seconds is None else f"{self.drain_seconds:.1f} s"
        return (
            f"soak on {self.backend}: {self.rate:g}/s for {self.seconds:g} s, sent {self.sent}, "
            f"202 {self.accepted}, 5xx {self.server_errors}, transport errors "
            f"{self.transport_errors}, skipped {self.skipped}\n"
            f"  RSS MiB start {self.rss_start:.1f}, after warm-up {self.rss_warm:.1f}, "
            f"peak {self.rss_peak:.1f}, end {self.rss_end:.1f} "
            f"(growth after warm-up x{self.growth_after_warmup:.2f})\n"
            f"  backlog drained in {drained}; scheduled {self.scheduled}, "
            f"terminal {self.terminal}, unfinished {self.unfinished}"
        )


def _request(n: int) -> tuple[str, dict[str, Any]]:
    """The traffic mix: mostly short I/O jobs, some notifications, imports and failures."""
    pick = n % 20
    if pick < 13:
        return "/process-data", {"data": {"n": n}, "io_ms": random.randint(10, 100)}
    if pick < 16:
        return "/send-notification", {"email": f"user{n}@example.com", "message": "hello"}
    if pick < 19:
        return "/import-contacts", {"file_id": f"soak-{n}.csv"}
    return "/import-contacts", {"file_id": f"missing-{n}.csv"}  # fails, permanently


async def _drive(url: str, result: SoakResult, pid: int, warmup: float) -> None:
    process = psutil.Process(pid)

    def rss() -> float:
        return float(process.memory_info().rss) / MiB

    result.rss_start = result.rss_peak = rss()
    started = time.monotonic()
    in_flight: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64)

    async with httpx.AsyncClient(
        base_url=url, headers=AUTH_A, timeout=30.0, limits=limits
    ) as client:

        async def send(n: int) -> None:
            path, body = _request(n)
            try:
                response = await client.post(path, json=body)
            except httpx.HTTPError:
                result.transport_errors += 1
                return
            result.statuses[response.status_code] += 1

        async def sample() -> None:
            while True:
                now = rss()
                result.rss_peak = max(result.rss_peak, now)
                if time.monotonic() - started >= warmup:
                    if not result.rss_warm:
                        result.rss_warm = now
                    result.rss_peak_after_warmup = max(result.rss_peak_after_warmup, now)
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        total = int(result.seconds * result.rate)
        for n in range(total):
            # Fixed arrivals: request n leaves at n / rate, however slow the answers are.
            delay = started + n / result.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= MAX_IN_FLIGHT:
                result.skipped += 1
                continue
            task = asyncio.create_task(send(n))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            result.sent += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=60)
        sampler.cancel()
    if not result.rss_warm:  # a run shorter than its warm-up
        result.rss_warm = result.rss_peak_after_warmup = rss()


async def _event_counts(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            rows = await session.execute(
                select(TaskEvent.type, func.count()).group_by(TaskEvent.type)
            )
            counts: dict[str, int] = {kind: n for kind, n in rows}
    finally:
        await engine.dispose()
    terminal = counts.get(EventType.TASK_SUCCEEDED, 0) + counts.get(EventType.TASK_FAILED, 0)
    return counts.get(EventType.TASK_SCHEDULED, 0), terminal


def run_soak(
    database_url: str, *, seconds: float, rate: float, warmup: float | None = None
) -> SoakResult:
    """Hold ``rate`` requests/s for ``seconds`` against a real server, then let it drain."""
    result = SoakResult(backend_of(database_url), seconds, rate)
    warmup = min(10.0, seconds / 3) if warmup is None else warmup
    settings = {**SERVED_SETTINGS, "log_level": "WARNING"}
    with serve(database_url, settings, args=("--no-access-log",)) as server:
        asyncio.run(_drive(server.url, result, server.pid, warmup))
        sent_at = time.monotonic()
        result.unfinished = unfinished_tasks(database_url, seconds=max(60.0, seconds))
        if not result.unfinished:
            result.drain_seconds = time.monotonic() - sent_at
        result.rss_end = float(psutil.Process(server.pid).memory_info().rss) / MiB
    result.scheduled, result.terminal = run_async(lambda: _event_counts(database_url))
    return result


def soak_scenario(database_url: str, long: bool = True) -> Outcome:
    """The soak as a row of the report: ``SOAK_SECONDS`` long (30 s when not ``long``)."""
    seconds = float(os.environ.get("SOAK_SECONDS", "120")) if long else 30.0
    rate = float(os.environ.get("SOAK_RATE", "40"))
    result = run_soak(database_url, seconds=seconds, rate=rate)
    problems = []
    if result.server_errors:
        problems.append(f"{result.server_errors} 5xx")
    if result.scheduled != result.terminal:
        problems.append(f"scheduled {result.scheduled} != terminal {result.terminal}")
    if problems:
        raise AssertionError(f"{'; '.join(problems)}\n{result.summary()}")
    drained = "-" if result.drain_seconds is None else f"{result.drain_seconds:.1f} s"
    return Outcome(
        fault="none (soak)",
        backend=result.backend,
        load=f"{rate:g} req/s for {seconds:g} s",
        inputs=result.sent,
        accepted=result.accepted,
        lost=result.unfinished
        + (result.accepted - result.scheduled if result.accepted > result.scheduled else 0),
        duplicates=0,
        recovery_s=result.drain_seconds,
        notes=(
            f"RSS MiB start {result.rss_start:.0f} / peak {result.rss_peak:.0f} / end "
            f"{result.rss_end:.0f} (x{result.growth_after_warmup:.2f} after warm-up); "
            f"drained in {drained}; scheduled = terminal = {result.terminal}; 0 5xx; "
            f"{result.skipped} arrivals not sent ({MAX_IN_FLIGHT} requests in flight)"
        ),
    )


SCENARIOS = [Scenario("soak", soak_scenario)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 180)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 40)))
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql"],
        default=os.environ.get("SOAK_BACKEND", "sqlite"),
    )
    args = parser.parse_args(argv)
    with fresh_database(args.backend) as url:
        result = run_soak(url, seconds=args.seconds, rate=args.rate)
    print(result.summary())
    folder = ROOT / "results" / "local" / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    print(f"written to {path}")
    ok = (
        result.server_errors == 0
        and result.unfinished == 0
        and result.scheduled == result.terminal
        and result.accepted == result.scheduled
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
