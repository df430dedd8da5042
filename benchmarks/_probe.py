"""A separate process that samples GET /health on a fixed schedule: it catches a frozen event loop.

    python -m benchmarks._probe --url http://127.0.0.1:8000 [--interval-ms 50]
        [--seconds N] [--out probe.csv] [--live]

Every ``--interval-ms`` one request is due, whatever happened to the last one
(each waits on a connection of its own), and it is timed from when it was
due. It runs outside Locust so that a busy load generator cannot delay it.
It stops after ``--seconds`` or on SIGTERM/SIGINT, then writes its samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks._samples import Sample, write_samples
from benchmarks._stats import summarize

__all__ = ["Probe", "main"]

TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 2.0


class Probe:
    """GET ``path`` every ``interval`` seconds, each on a kept-alive connection of its own."""

    def __init__(self, host: str, port: int, path: str = "/health", interval: float = 0.05) -> None:
        self.host, self.port, self.path, self.interval = host, port, path, interval
        self.samples: list[Sample] = []
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

    async def run(self, stop: asyncio.Event, seconds: float = 0.0) -> None:
        """Sample until ``stop`` is set or ``seconds`` have passed (0: no limit)."""
        t0, wall0 = time.perf_counter(), time.time()
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while not stop.is_set() and (not seconds or n * self.interval < seconds):
            due = t0 + n * self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.perf_counter()))
            if stop.is_set():
                break
            task = asyncio.create_task(self._sample(due, wall0 + (due - t0)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
        for _, writer in self._idle:
            writer.close()

    async def _sample(self, due: float, start_s: float) -> None:
        lag_ms = (time.perf_counter() - due) * 1000
        ok = False
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                ok = await self._get() == 200
        except (OSError, EOFError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            ok = False
        ms = (time.perf_counter() - due) * 1000
        sample = Sample(start_s, "probe", "probe", "GET", self.path, ms, ok, False, lag_ms)
        self.samples.append(sample)

    async def _get(self) -> int:
        reader, writer = (
            self._idle.pop() if self._idle else await asyncio.open_connection(self.host, self.port)
        )
        try:
            writer.write(self._request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self._idle.append((reader, writer))
        return status


async def _report_live(probe: Probe, stop: asyncio.Event) -> None:
    seen = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        fresh, seen = probe.samples[seen:], len(probe.samples)
        if fresh:
            s = summarize(fresh, 1.0)
            print(
                f"probe {probe.path}: {s.count} in the last second, p50 {s.p50_ms} ms,"
                f" p99 {s.p99_ms} ms, max {s.max_ms} ms, {s.failures} failed",
                flush=True,
            )


async def _main(args: argparse.Namespace) -> Probe:
    url = urlsplit(args.url)
    probe = Probe(url.hostname or "127.0.0.1", url.port or 80, args.path, args.interval_ms / 1000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    live = asyncio.create_task(_report_live(probe, stop)) if args.live else None
    await probe.run(stop, args.seconds)
    stop.set()
    if live is not None:
        await live
    return probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument("--path", default="/health")
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=0.0, help="0: until SIGTERM or Ctrl-C")
    parser.add_argument("--out", type=Path, help="write every sample here (CSV)")
    parser.add_argument("--live", action="store_true", help="print a summary every second")
    args = parser.parse_args(argv)
    probe = asyncio.run(_main(args))
    if args.out is not None:
        write_samples(args.out, sorted(probe.samples, key=lambda s: s.start_s))
    if probe.samples:
        window = max(probe.interval, len(probe.samples) * probe.interval)
        print(f"probe {args.path}: {summarize(probe.samples, window)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
