"""A raw asyncio HTTP/1.1 load generator, run in worker processes so it is not the bottleneck.

Each connection is kept alive and carries one request at a time, built from
pre-encoded bytes. The response is read as a status line, headers and a
Content-Length (or chunked) body. Every request is recorded: when it was sent,
its latency (``perf_counter_ns``) and its status (0 for a transport error).

Two kinds of stream:

- closed loop (``rate=None``): each connection sends its next request as soon
  as the previous response is in, as fast as the server allows;
- fixed rate (``rate=R``): R requests per second in total at fixed intended
  times, spread over the connections. With ``from_intended=True`` latency is
  timed from the intended send time, so a server that falls behind cannot hide
  its delay by slowing the sender down (coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import queue
import resource
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HOST",
    "LoadResult",
    "RequestSpec",
    "Samples",
    "Stream",
    "percentile",
    "run_load",
    "uvloop_available",
]

HOST = "127.0.0.1"
# Stragglers still waiting this long after the load window are cut and counted as errors.
GRACE_SECONDS = 30.0
START_TIMEOUT_SECONDS = 60.0
_ERROR_PAUSE_SECONDS = 0.01


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request. In ``body``, ``%d`` is replaced by a number unique to each request."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    def builder(self, port: int) -> Callable[[int], bytes]:
        """A function from the request's number to its bytes on the wire."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {HOST}:{port}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body is None:
            fixed = ("\r\n".join(lines) + "\r\n\r\n").encode()
            return lambda n: fixed
        lines += ["Content-Type: application/json", "Content-Length: "]
        prefix = "\r\n".join(lines).encode()
        template = self.body
        if b"%d" not in template:
            fixed = b"%s%d\r\n\r\n%s" % (prefix, len(template), template)
            return lambda n: fixed

        def build(n: int) -> bytes:
            body = template % n
            return b"%s%d\r\n\r\n%s" % (prefix, len(body), body)

        return build


@dataclass(frozen=True, slots=True)
class Stream:
    """``connections`` keep-alive connections sending ``request``, closed loop or at ``rate``/s."""

    name: str
    request: RequestSpec
    connections: int
    rate: float | None = None
    from_intended: bool = True


@dataclass(frozen=True, slots=True)
class _WorkerSpec:
    port: int
    streams: tuple[Stream, ...]
    duration: float
    first_number: int


@dataclass(slots=True)
class Samples:
    """The requests of one stream, as parallel arrays (nanoseconds)."""

    sent_ns: array[int] = field(default_factory=lambda: array("q"))
    latency_ns: array[int] = field(default_factory=lambda: array("q"))
    status: array[int] = field(default_factory=lambda: array("H"))
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, sent_ns: int, latency_ns: int, status: int) -> None:
        self.sent_ns.append(sent_ns)
        self.latency_ns.append(latency_ns)
        self.status.append(status)

    def extend(self, other: Samples) -> None:
        self.sent_ns.extend(other.sent_ns)
        self.latency_ns.extend(other.latency_ns)
        self.status.extend(other.status)
        self.errors.update(other.errors)

    def summary(self, window: float) -> dict[str, Any]:
        """Count, rate (sent inside the window), statuses, errors and latency percentiles (ms)."""
        ns = sorted(self.latency_ns)
        sent_in_window = sum(1 for sent in self.sent_ns if sent < window * 1e9)
        return {
            "requests": len(ns),
            "per_second": round(sent_in_window / window, 1),
            "statuses": {str(k): v for k, v in sorted(Counter(self.status).items()) if k},
            "errors": dict(self.errors),
            **{f"p{q}_ms": _ms(percentile(ns, q)) if ns else None for q in (50, 95, 99)},
            "max_ms": _ms(ns[-1]) if ns else None,
        }

    def count(self, status: int, *, completed_within: float | None = None) -> int:
        """Responses with ``status``, optionally only those completed inside the window."""
        if completed_within is None:
            return sum(1 for s in self.status if s == status)
        limit = completed_within * 1e9
        rows = zip(self.sent_ns, self.latency_ns, self.status, strict=True)
        return sum(1 for sent, latency, s in rows if s == status and sent + latency <= limit)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What the workers recorded, merged, and what the load cost."""

    window_seconds: float
    started_at: float
    """Wall-clock time (``time.time()``) at which the workers were let go."""
    samples: dict[str, Samples]
    workers_cpu_in_window: float
    """CPU seconds the workers used between the start and the end of their load."""
    children_cpu: float
    """CPU seconds of the worker processes (``RUSAGE_CHILDREN``), start-up included."""
    wall_seconds: float
    """From the start signal until every worker reported."""
    watched_cpu: float | None
    """CPU seconds the watched process (the server) used over ``wall_seconds``."""


def _ms(ns: int) -> float:
    return round(ns / 1e6, 2)


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


# The client ------------------------------------------------------------------


class _Connection:
    """One kept-alive HTTP/1.1 connection, reopened after an error or ``Connection: close``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, data: bytes) -> int:
        """Send one request and read its whole response; return the status code."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        try:
            self.writer.write(data)
            status, keep_alive = await self._read_response(self.reader)
        except BaseException:
            self.close()
            raise
        if not keep_alive:
            self.close()
        return status

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, keep_alive = 0, False, True
        for line in head[:-4].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep_alive = value.strip().lower() != b"close"
        if chunked:
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")  # no trailers are sent to us
        elif length:
            await reader.readexactly(length)
        return status, keep_alive

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(
    conn: _Connection,
    build: Callable[[int], bytes],
    numbers: Iterator[int],
    samples: Samples,
    *,
    start: int,
    deadline: int,
    first_offset_ns: int,
    period_ns: int | None,
    from_intended: bool,
) -> None:
    """Send requests over ``conn`` until ``deadline``: back to back, or every ``period_ns``."""
    intended = start + first_offset_ns
    while True:
        if period_ns is not None:
            if intended >= deadline:
                return
            delay = intended - time.perf_counter_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
        sent = time.perf_counter_ns()
        if period_ns is None and sent >= deadline:
            return
        t0 = intended if period_ns is not None and from_intended else sent
        data = build(next(numbers))
        try:
            status = await conn.exchange(data)
        except asyncio.CancelledError:
            samples.errors["cut_at_grace_timeout"] += 1
            raise
        # EOFError covers IncompleteReadError; ValueError is a malformed response head.
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as exc:
            samples.add(sent - start, time.perf_counter_ns() - t0, 0)
            samples.errors[type(exc).__name__] += 1
            await asyncio.sleep(_ERROR_PAUSE_SECONDS)
        else:
            samples.add(sent - start, time.perf_counter_ns() - t0, status)
        if period_ns is not None:
            intended += period_ns


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def _run_worker(spec: _WorkerSpec, barrier: Any) -> dict[str, Any]:
    samples = {stream.name: Samples() for stream in spec.streams}
    numbers = itertools.count(spec.first_number)
    # Every worker starts at the same moment; connecting is part of the first request.
    await asyncio.to_thread(barrier.wait, START_TIMEOUT_SECONDS)
    cpu_before = _cpu_seconds(resource.RUSAGE_SELF)
    start = time.perf_counter_ns()
    deadline = start + int(spec.duration * 1e9)
    connections: list[_Connection] = []
    drivers: list[Awaitable[None]] = []
    for stream in spec.streams:
        build = stream.request.builder(spec.port)
        period = None if stream.rate is None else int(stream.connections / stream.rate * 1e9)
        for index in range(stream.connections):
            conn = _Connection(spec.port)
            connections.append(conn)
            offset = 0 if stream.rate is None else int(index / stream.rate * 1e9)
            drivers.append(
                _drive(
                    conn,
                    build,
                    numbers,
                    samples[stream.name],
                    start=start,
                    deadline=deadline,
                    first_offset_ns=offset,
                    period_ns=period,
                    from_intended=stream.from_intended,
                )
            )
    tasks = [asyncio.ensure_future(d) for d in drivers]
    try:
        async with asyncio.timeout(spec.duration + GRACE_SECONDS):
            await asyncio.gather(*tasks)
    except TimeoutError:
        pass
    finally:
        cpu_after = _cpu_seconds(resource.RUSAGE_SELF)
        for conn in connections:
            conn.close()
    return {"samples": samples, "cpu_in_window": cpu_after - cpu_before}


def _worker_main(spec: _WorkerSpec, barrier: Any, results: Any) -> None:
    """Process entry point: run the streams on uvloop when it is installed."""
    runner: Callable[[Any], Any] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    try:
        results.put((os.getpid(), runner(_run_worker(spec, barrier)), None))
    except BaseException as exc:
        barrier.abort()
        results.put((os.getpid(), None, repr(exc)))
        raise


def _read_cpu_of(pid: int) -> float | None:
    """utime + stime of ``pid`` from /proc (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(
    port: int,
    workers: list[tuple[Stream, ...]],
    *,
    duration: float,
    watch_pid: int | None = None,
) -> LoadResult:
    """Run each tuple of streams in its own spawned process, start them together, merge."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(workers) + 1)
    results = ctx.Queue()
    specs = [
        _WorkerSpec(port, streams, duration, first_number=i * 1_000_000_000)
        for i, streams in enumerate(workers)
    ]
    children_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
    processes = [
        ctx.Process(target=_worker_main, args=(spec, barrier, results), daemon=True)
        for spec in specs
    ]
    for process in processes:
        process.start()
    outputs: list[dict[str, Any]] = []
    try:
        barrier.wait(START_TIMEOUT_SECONDS)
        started_at = time.time()
        watched_before = None if watch_pid is None else _read_cpu_of(watch_pid)
        started = time.perf_counter()
        for _ in processes:
            try:
                pid, output, error = results.get(timeout=duration + GRACE_SECONDS + 30)
            except queue.Empty:
                raise RuntimeError("a load worker did not report back in time") from None
            if error is not None:
                raise RuntimeError(f"load worker {pid} failed: {error}")
            outputs.append(output)
        wall = time.perf_counter() - started
        watched_after = None if watch_pid is None else _read_cpu_of(watch_pid)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
    merged: dict[str, Samples] = {}
    for output in outputs:
        for name, part in output["samples"].items():
            merged.setdefault(name, Samples()).extend(part)
    watched = (
        None if watched_before is None or watched_after is None else watched_after - watched_before
    )
    return LoadResult(
        window_seconds=duration,
        started_at=started_at,
        samples=merged,
        workers_cpu_in_window=sum(o["cpu_in_window"] for o in outputs),
        children_cpu=_cpu_seconds(resource.RUSAGE_CHILDREN) - children_before,
        wall_seconds=wall,
        watched_cpu=watched,
    )
