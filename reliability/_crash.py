"""Crashes and shutdowns: SIGKILL mid-flight, and SIGTERM with a grace period.

Both start the app, accept tasks whose I/O keeps them running, stop the process
by PID, start a new one on the same database and wait until every accepted task
is terminal, reading the event log straight from the database.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

from reference_app.testing import LiveServer
from reliability._eventlog import Snapshot, observe
from reliability._fault_harness import FaultRun, client_for, submit_many, task_body
from reliability._hook_receiver import Receiver
from reliability._loop import run_async
from reliability._outcome import Outcome
from reliability._served import FAST_SETTINGS, backend_of, start_app, stop_all

__all__ = ["run_sigkill", "run_sigterm", "sigkill_mid_flight", "sigterm_graceful"]

CAPACITY = 32  # the app's default max_concurrent_tasks
QUICK_IO_MS = 200


def sigkill_mid_flight(database_url: str, *, long: bool = False) -> Outcome:
    """SIGKILL the server while tasks run; a new one on the same database finishes them all."""
    return run_sigkill(database_url, long=long).outcome


def sigterm_graceful(database_url: str, *, long: bool = False) -> Outcome:
    """SIGTERM: short tasks finish in the grace period, long ones are cut and rerun after."""
    return run_sigterm(database_url, long=long).outcome


def run_sigkill(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _sigkill(database_url, long=long))


def run_sigterm(database_url: str, *, long: bool = False) -> FaultRun:
    return run_async(lambda: _sigterm(database_url, long=long))


async def _sigkill(database_url: str, *, long: bool) -> FaultRun:
    # Long tasks (the API's maximum in the long run) keep many running while all are sent.
    # The bounded run stays under the runner's 32 slots: a quick task's webhook then starts
    # in the slot it frees, while the long tasks (started together) still run. Over the cap,
    # freed slots go to the older tasks still waiting first, and the webhooks could start
    # only as the long tasks end (the long run gets there as its overflow staggers them).
    count, io_ms = (200, 5000) if long else (30, 1500)
    settle_seconds = 300.0 if long else 90.0
    servers: list[LiveServer] = []
    # The receiver takes 1.5 s to answer, and every fifth task is quick: when the kill
    # comes, some webhooks are on the wire, and their rerun after the restart is a duplicate.
    with Receiver(slow_ok_seconds=1.5) as receiver:
        try:
            first = await asyncio.to_thread(start_app, database_url, FAST_SETTINGS)
            servers.append(first)
            hook = receiver.url("/slow-ok")
            bodies = [
                task_body(i, io_ms=QUICK_IO_MS if i % 5 == 0 else io_ms, webhook_url=hook)
                for i in range(count)
            ]
            async with client_for(first) as client:
                submitted = await submit_many(client, bodies)
            accepted = submitted.task_ids
            async with observe(database_url) as observer:
                # Kill once half the runner's slots (or half the tasks) are mid-flight and
                # a webhook is waiting for the receiver's answer.
                wanted = max(1, min(len(accepted), CAPACITY) // 2)
                await observer.wait_for(
                    lambda s: _running(s, accepted) >= wanted and receiver.holding > 0,
                    seconds=30,
                )
                first.kill()
                hooks_at_kill = receiver.holding
                at_kill = await observer.snapshot()  # the dead process changes nothing more
                killed = time.monotonic()
                second = await asyncio.to_thread(start_app, database_url, FAST_SETTINGS)
                servers.append(second)
                restarted = time.monotonic()
                snap, recovery = await observer.wait_settled(accepted, seconds=settle_seconds)
        finally:
            await asyncio.to_thread(stop_all, servers)
        deliveries = receiver.snapshot()
        duplicates = receiver.duplicates()
    running = _running(at_kill, accepted)
    restart_s = restarted - killed
    failed = sum(snap.tasks[i].status == "failed" for i in accepted if i in snap.tasks)
    outcome = Outcome(
        fault="SIGKILL mid-flight",
        backend=backend_of(database_url),
        load=f"{count} tasks, io {io_ms} ms (1 in 5: {QUICK_IO_MS} ms), webhook each",
        inputs=count,
        accepted=len(accepted),
        lost=len(snap.unfinished(accepted)),
        duplicates=duplicates,
        reruns=snap.reruns(accepted),
        recovery_s=recovery,
        notes=(
            f"{running} running at the kill; restart took {restart_s:.1f} s; "
            f"{failed} ended failed; {hooks_at_kill} webhooks on the wire at the kill, "
            f"{len(deliveries)} webhook POSTs in all"
        ),
    )
    return FaultRun(
        outcome,
        snap,
        accepted,
        deliveries,
        [s.logs() for s in servers],
        {"running_at_kill": running, "hooks_at_kill": hooks_at_kill, "submissions": submitted},
    )


async def _sigterm(database_url: str, *, long: bool) -> FaultRun:
    grace = 2
    short_count, long_count = (30, 20) if long else (8, 6)
    short_io, long_io = 1000, (5000 if long else 3000)  # 5000: the API's maximum io_ms
    settle_seconds = 300.0 if long else 90.0
    # Cut attempts are handed back at once; the lease is only the fallback if that fails.
    settings = {
        **FAST_SETTINGS,
        "shutdown_grace_seconds": str(grace),
        "max_concurrent_tasks": "64",
        "lease_seconds": "10",
    }
    args = ["--timeout-graceful-shutdown", str(grace)]
    servers: list[LiveServer] = []
    with Receiver() as receiver:
        try:
            first = await asyncio.to_thread(start_app, database_url, settings, args=args)
            servers.append(first)
            hook = receiver.url("/ok")
            # Interleaved, so both kinds are in flight when the signal comes.
            bodies = [
                task_body(
                    i,
                    io_ms=short_io if i % 2 or i // 2 >= long_count else long_io,
                    webhook_url=hook,
                )
                for i in range(short_count + long_count)
            ]
            async with client_for(first) as client:
                submitted = await submit_many(client, bodies)
            accepted = submitted.task_ids
            async with observe(database_url) as observer:
                # Signal once every task has started (on a slow machine the first short ones
                # may be done by then; the test checks those running at the signal).
                await observer.wait_for(
                    lambda s: all(s.tasks[i].status != "scheduled" for i in accepted),
                    seconds=30,
                )
                first.process.send_signal(signal.SIGTERM)
                at_signal = await observer.snapshot()  # the process is draining, not starting
                signalled = time.monotonic()
                await asyncio.to_thread(first.process.wait, grace + 30)
                exit_s = time.monotonic() - signalled
                at_exit = await observer.snapshot()
                second = await asyncio.to_thread(start_app, database_url, settings, args=args)
                servers.append(second)
                snap, recovery = await observer.wait_settled(accepted, seconds=settle_seconds)
        finally:
            await asyncio.to_thread(stop_all, servers)
        deliveries = receiver.snapshot()
        duplicates = receiver.duplicates()
    io_of = {task_id: _io_ms(at_exit, task_id) for task_id in accepted}
    finished = [i for i in accepted if at_exit.tasks[i].status == "succeeded"]
    cut = [i for i in accepted if _was_cut(at_exit, i)]
    left_running = [i for i in accepted if at_exit.tasks[i].status == "running"]
    outcome = Outcome(
        fault="SIGTERM, graceful",
        backend=backend_of(database_url),
        load=(
            f"{short_count} tasks of {short_io} ms and {long_count} of {long_io} ms, "
            f"grace {grace} s"
        ),
        inputs=short_count + long_count,
        accepted=len(accepted),
        lost=len(snap.unfinished(accepted)),
        duplicates=duplicates,
        reruns=snap.reruns(accepted),
        recovery_s=recovery,
        notes=(
            f"{_running(at_signal, accepted)} running at SIGTERM; "
            f"{len(finished)} finished in the grace period; {len(cut)} cut and handed back; "
            f"{len(left_running)} left running (lease expiry); exit after {exit_s:.1f} s "
            f"(code {first.process.returncode})"
        ),
    )
    return FaultRun(
        outcome,
        snap,
        accepted,
        deliveries,
        [s.logs() for s in servers],
        {
            "grace_s": grace,
            "running_at_signal": [i for i in accepted if at_signal.tasks[i].status == "running"],
            "exit_s": exit_s,
            "exit_code": first.process.returncode,
            "io_ms": io_of,
            "short_io_ms": short_io,
            "long_io_ms": long_io,
            "finished_in_grace": finished,
            "cut": cut,
            "left_running": left_running,
            "at_exit": at_exit,
            "submissions": submitted,
        },
    )


def _running(snap: Snapshot, task_ids: list[uuid.UUID]) -> int:
    return sum(snap.tasks[i].status == "running" for i in task_ids if i in snap.tasks)


def _io_ms(snap: Snapshot, task_id: uuid.UUID) -> int:
    return int(snap.tasks[task_id].params["io_ms"])


def _was_cut(snap: Snapshot, task_id: uuid.UUID) -> bool:
    """The attempt was interrupted by the shutdown and handed back for a retry."""
    return any(f.get("error_type") == "Cancelled" for f in snap.failures(task_id))
