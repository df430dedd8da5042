"""``make bench``'s accept group: the same POST against three apps, then finished work.

Each app runs alone under uvicorn (one worker, access log off) on 127.0.0.1 and is
stopped by PID; the load is the raw asyncio client (``_accept_loads``), not Locust,
which cannot keep 50 connections busy on two cores.

1. ``plain``: a plain FastAPI route (``_plain_app``), a non-durable BackgroundTasks task;
2. ``floor``: the reference app with a store that keeps nothing (``_accept_floor``),
   swapped in through ``dependency_overrides``; and ``floor-state``, the same swapped on
   ``app.state``, without what an override costs FastAPI on every request;
3. ``<backend>/accept-*``: the reference app on the bench database, io_ms=0, so every
   task runs too; after each load, a bounded wait for the backlog, and the event log's
   word that every 202 became a task that finished. After the fixed-rate run, the
   bench process commits one row at a time at the same rate on the app's database and
   engine (``_commit_alone``): what the database alone adds to a durable 202. Then the
   same fixed rate twice more with a /health probe beside it, without and with a 1 Hz
   ``GET /metrics`` scrape (``<backend>/scrape-none``, ``scrape-1hz``: ``_accept_scrape``).

Each of them: closed loop (C connections back to back) and fixed rate (R/s, open model).
Then, on the reference app:

4. ``<backend>/finished-work``: io_ms=300 at R/s for N s; tasks finished per second
   while the load ran (its first second left out, ``_finish.RAMP_SECONDS``) and after it;
5. ``<backend>/overload``: first the unloaded maximum, a backlog of N io_ms=300 tasks
   accepted as fast as the server takes them and then left to the worker and its sweeper,
   nothing else arriving; then 3x that rate for N s, and the finish rate meanwhile.
   "Sustainable" is the unloaded maximum, not run 4's rate: run 4 finishes only what it
   is offered, so when R is under capacity it says nothing about the capacity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._accept_loads import closed_loop, fixed_rate, process_data
from benchmarks._accept_scrape import SCRAPE_RUNS, scrape_run
from benchmarks._apps import App, floor_app, plain_app, reference_app, wait_for_quiet
from benchmarks._commit_alone import commit_alone
from benchmarks._finish import RAMP_SECONDS, accounted, drain_rate, rate_between, succeeded_times
from benchmarks._plan import BenchSettings

__all__ = ["BASELINES", "accept_ids", "estimate", "one_line", "run_accept_group"]

BASELINES = ("plain", "floor", "floor-state")
DURABLE = ("accept-closed", "accept-fixed", *SCRAPE_RUNS, "finished-work", "overload")
WARM_SECONDS = 1.0
PREFILL_RATE = 2000.0
"""The overload's backlog is sent at up to this rate: as fast as the server takes it."""
OVERLOAD_FACTOR = 3.0
MAX_OVERLOAD_RATE = 3000.0
"""However fast the worker drains, the overload never offers more than this (bounded load)."""

Say = Callable[[str], None]


def _backends(settings: BenchSettings) -> list[str]:
    return [t for t in settings.targets if t != "lab"]


def accept_ids(settings: BenchSettings) -> list[str]:
    """The group's runs this time, in order. ``BENCH_ONLY`` picks them by id like scenarios;
    the plain and floor runs come with any ``<backend>/accept-*``: they are its yardsticks."""
    if not settings.accept:
        return []
    durable = [f"{b}/{key}" for b in _backends(settings) for key in DURABLE]
    base = [f"{app}/accept-{load}" for app in BASELINES for load in ("closed", "fixed")]
    if not settings.only:
        return base + durable
    durable = [i for i in durable if any(part in i for part in settings.only)]
    wanted = any("/accept-" in i for i in durable)
    base = [i for i in base if wanted or any(part in i for part in settings.only)]
    return base + durable


def estimate(settings: BenchSettings) -> float:
    """Seconds the group takes, roughly (server starts, warm-ups and drains included)."""
    ids = accept_ids(settings)
    two_loads = 2 * settings.accept_seconds + 2 * WARM_SECONDS + 2
    seconds = 0.0
    for run in ids:
        if run.endswith("accept-closed"):
            seconds += two_loads + 4
        elif run.endswith(SCRAPE_RUNS):
            seconds += settings.accept_seconds + 2
        elif run.endswith("finished-work"):
            seconds += settings.finish_seconds * 2.5
        elif run.endswith("overload"):
            seconds += settings.overload_backlog / 100 + settings.overload_seconds * 3
    return seconds


def run_accept_group(settings: BenchSettings, logs: Path, say: Say) -> list[dict[str, Any]]:
    """Every run of the group; a run that broke is ``{"id", "error"}``, and the next goes on."""
    ids = accept_ids(settings)
    runs: list[dict[str, Any]] = []
    starts: list[tuple[str, Callable[[], AbstractContextManager[App]]]] = [
        ("plain", lambda: plain_app(logs)),
        ("floor", lambda: floor_app(logs)),
        ("floor-state", lambda: floor_app(logs, "floor-state")),
    ]
    for backend in _backends(settings):
        log_name = f"{backend}.accept.log"
        starts.append((backend, partial(reference_app, backend, settings, logs, log_name=log_name)))
    for name, start in starts:
        mine = [i for i in ids if i.startswith(f"{name}/")]
        if not mine:
            continue
        say(f"\n== accept group, {name}: starting the app")
        try:
            with start() as app:
                say(f"  {app.url} (pid {app.server.pid}); warming up")
                _warm(app, settings)
                for run_id in mine:
                    say(f"[accept] {run_id}")
                    runs.append(_one(run_id, app, settings))
                    say(f"      {one_line(runs[-1])}")
        except Exception as exc:  # the app did not start, or died: report and go on
            done = {r["id"] for r in runs}
            runs += [_broken(i, exc) for i in mine if i not in done]
            say(f"  {name} failed: {type(exc).__name__}: {exc}")
    return runs


def _broken(run_id: str, exc: BaseException) -> dict[str, Any]:
    return {"id": run_id, "error": f"{type(exc).__name__}: {exc}"}


def _one(run_id: str, app: App, s: BenchSettings) -> dict[str, Any]:
    key = run_id.split("/", 1)[1]
    try:
        if key == "finished-work":
            result = _finished_work(app, s)
        elif key == "overload":
            result = _overload(app, s)
        elif key in SCRAPE_RUNS:
            result = _scraped(app, s, scrape=key == "scrape-1hz")
        else:
            result = _accept(app, s, closed=key == "accept-closed")
    except Exception as exc:  # this run broke; the next may not
        return _broken(run_id, exc)
    return {"id": run_id, "app": app.target, "server_command": app.server.command,
            **result, "error": None}  # fmt: skip


def _warm(app: App, s: BenchSettings) -> None:
    """Open connections and fill caches with the run's own request; then let the work end."""
    closed_loop(app.server.port, process_data(io_ms=0), connections=s.accept_connections,
                seconds=WARM_SECONDS)  # fmt: skip
    if app.events is not None:
        wait_for_quiet(app, since=0.0, timeout=s.drain_timeout)


def _accept(app: App, s: BenchSettings, *, closed: bool) -> dict[str, Any]:
    request = process_data(io_ms=0)
    launched = time.time()
    if closed:
        seen = closed_loop(app.server.port, request, connections=s.accept_connections,
                           seconds=s.accept_seconds, watch_pid=app.server.pid)  # fmt: skip
    else:
        seen = fixed_rate(app.server.port, request, rate=s.accept_rate, seconds=s.accept_seconds,
                          watch_pid=app.server.pid)  # fmt: skip
    result = {"io_ms": 0, **seen}
    if app.events is not None:  # the reference app: did every 202 become finished work?
        tasks, drain = _drained(app, s, launched, seen)
        result |= {"drain_s": drain, "tasks": accounted(tasks, seen["accepted"])}
    if not closed and app.database_url is not None:  # the commit alone, at the same rate
        result |= commit_alone(app.database_url, rate=s.accept_rate, seconds=s.accept_seconds / 2)
    return result


def _scraped(app: App, s: BenchSettings, *, scrape: bool) -> dict[str, Any]:
    launched = time.time()
    seen = scrape_run(app.server.port, s, scrape=scrape, watch_pid=app.server.pid)
    tasks, drain = _drained(app, s, launched, seen)
    return seen | {"drain_s": drain, "tasks": accounted(tasks, seen["accepted"])}


def _drained(
    app: App, s: BenchSettings, launched: float, seen: dict[str, Any]
) -> tuple[list[Any], float | None]:
    """Wait (bounded) for the work accepted since ``launched``; its tasks, and how long after
    the last answer the backlog was gone (None: not within the drain timeout)."""
    assert app.events is not None
    quiet = wait_for_quiet(app, since=launched, timeout=s.drain_timeout)
    tasks = app.events.task_times(launched, time.time() + 1)
    drain = None if quiet is None else round(max(0.0, quiet - seen["last_answer_at"]), 1)
    return tasks, drain


def _finished_work(app: App, s: BenchSettings) -> dict[str, Any]:
    launched = time.time()
    seen = fixed_rate(app.server.port, process_data(io_ms=s.io_ms), rate=s.accept_rate,
                      seconds=s.finish_seconds, watch_pid=app.server.pid)  # fmt: skip
    tasks, drain = _drained(app, s, launched, seen)
    done = succeeded_times(tasks)
    start, end = seen["started_at"], seen["started_at"] + s.finish_seconds
    return {
        "io_ms": s.io_ms,
        **seen,
        "offered_per_s": s.accept_rate,
        "finished_during_per_s": rate_between(done, start + RAMP_SECONDS, end),
        "finished_after_per_s": drain_rate(done, end),
        "finished_at_stop": sum(1 for t in done if t < end),
        "drain_s": drain,
        "tasks": accounted(tasks, seen["accepted"]),
    }


def _overload(app: App, s: BenchSettings) -> dict[str, Any]:
    port, pid = app.server.port, app.server.pid
    request = process_data(io_ms=s.io_ms)
    launched = time.time()
    fill = fixed_rate(port, request, rate=PREFILL_RATE, seconds=s.overload_backlog / PREFILL_RATE,
                      connections=s.accept_connections, from_intended=False)  # fmt: skip
    filled, fill_drain = _drained(app, s, launched, fill)
    last_accepted = max((t.scheduled_s for t in filled), default=launched)
    unloaded = drain_rate(succeeded_times(filled), last_accepted)
    result: dict[str, Any] = {
        "io_ms": s.io_ms,
        "backlog": s.overload_backlog,
        "backlog_accepted": fill["accepted"],
        "backlog_drain_s": fill_drain,
        "unloaded_max_per_s": unloaded,
        "sustainable_per_s": unloaded,
        "sustainable_from": "the unloaded maximum",
    }
    if unloaded is None:
        raise RuntimeError(
            f"the backlog of {s.overload_backlog} drained too fast to time: raise"
            " BENCH_OVERLOAD_BACKLOG"
        )
    offered = round(min(OVERLOAD_FACTOR * unloaded, MAX_OVERLOAD_RATE), 1)
    launched = time.time()
    seen = fixed_rate(port, request, rate=offered, seconds=s.overload_seconds, watch_pid=pid)
    tasks, drain = _drained(app, s, launched, seen)
    done = succeeded_times(tasks)
    start, end = seen["started_at"], seen["started_at"] + s.overload_seconds
    return result | {
        **seen,
        "offered_per_s": offered,
        "finished_during_per_s": rate_between(done, start + RAMP_SECONDS, end),
        "finished_after_per_s": drain_rate(done, end),
        "drain_s": drain,
        "tasks": accounted(tasks, seen["accepted"]),
    }


def one_line(run: dict[str, Any]) -> str:
    """A run in a line, for the progress log."""
    if run.get("error"):
        return f"ERROR {run['error'][:300]}"
    parts = [f"{run['accepted_per_s']} 202/s", f"p95 {run['p95_ms']} ms"]
    if "health_p99_ms" in run:
        parts.append(f"/health p99 {run['health_p99_ms']} ms, {run['scrapes']} scrapes")
    if "finished_during_per_s" in run:
        parts.append(f"finished {run['finished_during_per_s']}/s during, "
                     f"{run['finished_after_per_s']}/s after")  # fmt: skip
    if "unloaded_max_per_s" in run:
        parts.append(
            f"unloaded max {run['unloaded_max_per_s']}/s, offered {run['offered_per_s']}/s"
        )
    if "tasks" in run:
        t = run["tasks"]
        parts.append(
            f"{t['succeeded']}/{t['tasks_in_db']} tasks finished, drain {run['drain_s']} s"
        )
    return "; ".join(parts)
