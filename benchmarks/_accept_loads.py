"""The accept group's two loads on the raw asyncio client (``_loadgen``), and what each saw.

Closed loop: C keep-alive connections send back to back for N seconds. Fixed rate:
R requests a second at fixed intended times (an open model), each timed from its
intended send time, so a server that falls behind cannot hide it. The request is
the same bytes for every app: ``POST /process-data`` with the reference app's body.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmarks._loadgen import LoadResult, RequestSpec, Stream, run_load

__all__ = [
    "AUTH",
    "HEALTH",
    "closed_loop",
    "fixed_rate",
    "fixed_rate_connections",
    "process_data",
    "split",
]

AUTH = ("Authorization", "Bearer demo-key-org-a")
HEALTH = RequestSpec("GET", "/health")
SENDS_PER_CONNECTION = 10
"""Fixed rate: sends a second per connection, room for answers up to 100 ms before they queue."""


def process_data(*, io_ms: int, cpu_ms: int = 0) -> RequestSpec:
    """The background POST; ``%d`` in the body numbers each request."""
    body = b'{"data": {"n": %%d}, "io_ms": %d, "cpu_ms": %d}' % (io_ms, cpu_ms)
    return RequestSpec("POST", "/process-data?mode=background", (AUTH,), body)


def split(total: int, parts: int) -> list[int]:
    """``total`` connections over ``parts`` load processes, as evenly as they go."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def fixed_rate_connections(rate: float) -> int:
    return max(2, math.ceil(rate / SENDS_PER_CONNECTION))


def _server_cpu_share(result: LoadResult) -> float | None:
    if result.watched_cpu is None or not result.wall_seconds:
        return None
    return round(result.watched_cpu / result.wall_seconds, 3)


def _seen(result: LoadResult, seconds: float) -> dict[str, Any]:
    posts = result.samples["post"]
    latency = posts.summary(seconds)
    last = max((s + lat for s, lat in zip(posts.sent_ns, posts.latency_ns, strict=True)), default=0)
    return {
        "seconds": seconds,
        "started_at": result.started_at,
        "last_answer_at": result.started_at + last / 1e9,
        "requests": latency["requests"],
        "sent_per_s": latency["per_second"],
        "accepted": posts.count(202),
        # 202s answered inside the window, so stragglers after it do not inflate the rate.
        "accepted_per_s": round(posts.count(202, completed_within=seconds) / seconds, 1),
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "p99_ms": latency["p99_ms"],
        "max_ms": latency["max_ms"],
        "statuses": latency["statuses"],
        "errors": latency["errors"],
        "server_cpu_share": _server_cpu_share(result),
    }


def closed_loop(
    port: int,
    request: RequestSpec,
    *,
    connections: int,
    seconds: float,
    workers: int = 1,
    watch_pid: int | None = None,
) -> dict[str, Any]:
    """``connections`` connections back to back for ``seconds``; what they saw."""
    streams: list[tuple[Stream, ...]] = [
        (Stream("post", request, n),) for n in split(connections, workers) if n
    ]
    result = run_load(port, streams, duration=seconds, watch_pid=watch_pid)
    return {"model": "closed", "connections": connections, **_seen(result, seconds)}


def fixed_rate(
    port: int,
    request: RequestSpec,
    *,
    rate: float,
    seconds: float,
    connections: int | None = None,
    from_intended: bool = True,
    watch_pid: int | None = None,
    beside: Sequence[Stream] = (),
) -> dict[str, Any]:
    """``rate`` requests a second for ``seconds`` (``rate * seconds`` in all); what they saw.
    ``beside``: other streams sent meanwhile from the same process (a probe, a scraper), each
    summarised under ``"beside"`` by its name."""
    conns = connections or fixed_rate_connections(rate)
    stream = Stream("post", request, conns, rate=rate, from_intended=from_intended)
    result = run_load(port, [(stream, *beside)], duration=seconds, watch_pid=watch_pid)
    seen = {"model": "open", "rate": rate, "connections": conns, **_seen(result, seconds)}
    if beside:
        seen["beside"] = {b.name: result.samples[b.name].summary(seconds) for b in beside}
    return seen
