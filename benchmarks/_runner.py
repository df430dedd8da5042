"""``make bench``: start the apps, run the scenario matrix headless, measure the work, report.

Each target app (``_apps``) runs under uvicorn on a free 127.0.0.1 port and is
stopped by PID. Every scenario (``_plan``) is one headless Locust process, with
the /health probe in another; after it, the runner waits for the work to drain
and reads it. Then the accept group (``_accept``) measures the same POST against a
plain route, the floor and the reference app with a raw asyncio client, and the
work finished. Results go to ``results/local/<timestamp>/``; the report ends with
the targets and a comparison with the committed reference run (``_compare``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks import _accept
from benchmarks._accept_report import evaluate_accept_targets
from benchmarks._apps import (
    App,
    StatsPoller,
    lab_app,
    lab_stats,
    reference_app,
    wait_for_quiet,
    warm_up,
)
from benchmarks._compare import compare, load_reference
from benchmarks._plan import BenchSettings, Scenario, ladder_users, locust_command, matrix
from benchmarks._report import capacity, evaluate_targets, format_report, overall_passed
from benchmarks._samples import Sample, read_samples
from benchmarks._stats import by_endpoint, percentile, summarize
from benchmarks._work import summarize_counters, summarize_tasks, write_tasks

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_SECONDS = 4.0  # per scenario: Locust's start and stop, the probe, a short drain
VERSIONS = (
    "locust", "gevent", "geventhttpclient", "fastapi", "starlette", "uvicorn", "uvloop",
    "httptools", "sqlalchemy", "aiosqlite", "asyncpg", "pydantic", "matplotlib",
)  # fmt: skip


def say(message: str) -> None:
    print(message, flush=True)


# One scenario ------------------------------------------------------------------------


def _cpu_seconds_of(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def health_probe(url: str, interval_ms: float, out: Path) -> Iterator[None]:
    """The /health probe in a process of its own, stopped by PID (SIGTERM: it writes its file)."""
    command = [sys.executable, "-m", "benchmarks._probe", "--url", url]
    command += ["--interval-ms", f"{interval_ms:g}", "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        time.sleep(0.3)  # let it import and send its first request
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Bench:
    def __init__(self, settings: BenchSettings, run_dir: Path, *, after: float = 0.0) -> None:
        self.settings = settings
        self.after = after  # seconds of work after the matrix (the accept group), for "left"
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands: dict[str, list[str]] = {}
        self.servers: dict[str, list[list[str]]] = {}
        self.databases: dict[str, str | None] = {}

    def run(self, scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        started = time.monotonic()
        for target in dict.fromkeys(s.target for s in scenarios):
            group = [s for s in scenarios if s.target == target]
            say(f"\n== {target}: starting the app")
            try:
                with self._app(target) as app:
                    self.servers[target] = app.commands
                    self.databases[target] = app.database
                    say(f"  {app.url} (pid {app.server.pid}); warming up")
                    warm_up(app)
                    for scenario in group:
                        index = len(results) + 1
                        left = _estimate(scenarios[index - 1 :]) + self.after
                        say(
                            f"[{index}/{len(scenarios)}] {scenario.id}: {scenario.title},"
                            f" {scenario.model} {scenario.load} for {scenario.seconds:g} s"
                            f" (about {_clock(left)} left, {_clock(time.monotonic() - started)}"
                            " so far)"
                        )
                        try:
                            result = self._scenario(scenario, app)
                        except Exception as exc:  # this scenario broke; the next may not
                            result = _broken(scenario, f"{type(exc).__name__}: {exc}")
                        results.append(result)
                        say(f"      {_one_line(result)}")
            except Exception as exc:  # the app did not start, or died: report and go on
                done = {r["id"] for r in results}
                for scenario in group:
                    if scenario.id not in done:
                        results.append(_broken(scenario, f"{type(exc).__name__}: {exc}"))
                say(f"  {target} failed: {type(exc).__name__}: {exc}")
        return results

    def _app(self, target: str) -> contextlib.AbstractContextManager[App]:
        if target == "lab":
            return lab_app(self.logs)
        return reference_app(target, self.settings, self.logs)

    def _scenario(self, s: Scenario, app: App) -> dict[str, Any]:
        prefix = self.run_dir / s.file_prefix
        receiver = f"{app.receiver.url}/hook" if app.receiver else None
        command = locust_command(
            s,
            self.settings,
            python=sys.executable,
            host=app.url,
            prefix=prefix,
            webhook_url=receiver,
        )
        self.commands[s.id] = command
        log = self.logs / f"{prefix.name}.locust.log"
        launched = time.time()
        cpu_before = _cpu_seconds_of(app.server.pid)
        wall_before = time.monotonic()
        poller = StatsPoller(app.url) if app.events is None else None
        baseline = lab_stats(app.url) if poller else None
        with contextlib.ExitStack() as stack:
            if poller is not None:
                stack.enter_context(poller)
            probe_csv = Path(f"{prefix}_probe.csv")
            with (
                health_probe(app.url, self.settings.probe_interval_ms, probe_csv),
                log.open("wb") as out,
            ):
                done = subprocess.run(  # noqa: S603 - locust_command builds it
                    command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=s.seconds + 180
                )
            cpu_after = _cpu_seconds_of(app.server.pid)
            wall = time.monotonic() - wall_before
            run_json = Path(f"{prefix}_locust.json")
            if done.returncode not in (0, 1) or not run_json.exists():
                tail = log.read_text(errors="replace").splitlines()[-15:]
                return _broken(s, f"locust exited with {done.returncode}: " + " | ".join(tail))
            report = json.loads(run_json.read_text())
            start = report["started_at"]
            load_end = start + s.seconds
            work = self._work(s, app, prefix, launched, load_end, poller, baseline)
        samples = list(read_samples(Path(f"{prefix}_requests.csv")))
        probe = [p for p in read_samples(probe_csv) if start <= p.start_s <= load_end]
        endpoints = {
            name: summarize(group, s.seconds).as_dict()
            for name, group in by_endpoint(samples).items()
        }
        gate = report["gate"]
        passed = None
        if s.gated:
            passed = done.returncode == 0 and bool(gate) and all(v["passed"] for v in gate)
        result: dict[str, Any] = {
            **_identity(s),
            "window": {"start": start, "end": load_end},
            "endpoints": endpoints,
            "endpoint": next(iter(endpoints), None),
            "latency": next(iter(endpoints.values()), None),
            "probe": summarize(probe, s.seconds).as_dict() if probe else None,
            "generator_lag_ms": _lag(samples),
            "gate": gate,
            "passed": passed,
            "exit_code": done.returncode,
            "locust_cpu_share": report.get("locust_cpu_share"),
            "locust_cpu_seconds": report.get("locust_cpu_seconds"),
            "app_cpu_share": (
                None
                if cpu_before is None or cpu_after is None
                else round((cpu_after - cpu_before) / wall, 3)
            ),
            "work": work,
            "ladder": None,
            "error": None,
        }
        if s.model == "ladder":
            result["ladder"] = _ladder_steps(s, self.settings, samples, prefix, start)
            result["capacity"] = capacity(result["ladder"], self.settings.budget_ms)
        return result

    def _work(
        self,
        s: Scenario,
        app: App,
        prefix: Path,
        launched: float,
        load_end: float,
        poller: StatsPoller | None,
        baseline: dict[str, int] | None,
    ) -> dict[str, Any] | None:
        if s.work is None:
            return None
        timeout = self.settings.drain_timeout
        if app.events is not None:
            quiet = wait_for_quiet(app, since=launched, timeout=timeout)
            tasks = app.events.task_times(launched, time.time() + 1)
            write_tasks(Path(f"{prefix}_tasks.csv"), tasks)
            summary = summarize_tasks(tasks, load_end=load_end, webhooks=s.webhooks)
            if quiet is None:
                summary["drain_s"] = None
            return summary
        assert poller is not None
        assert baseline is not None
        # Locust has exited, so every request has its answer; and the load has ended.
        answered = max(time.time(), load_end)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # until a sample taken since shows no backlog
            t, counts = poller.points[-1] if poller.points else (0.0, baseline)
            if t > answered and counts["backlog"] <= baseline["backlog"]:
                break
            time.sleep(0.1)
        points = list(poller.points)
        _write_backlog(Path(f"{prefix}_backlog.csv"), points, baseline)
        return summarize_counters(points, baseline, load_end=load_end) if points else None


def _lag(samples: Sequence[Sample]) -> dict[str, float] | None:
    """How late the open model sent its requests (timer resolution, a busy generator)."""
    lags = [s.lag_ms for s in samples if s.model == "open"]
    if not lags:
        return None
    return {f"p{q}": round(percentile(lags, q), 2) for q in (50, 99)} | {"max": max(lags)}


def _write_backlog(
    path: Path, points: list[tuple[float, dict[str, int]]], baseline: dict[str, int]
) -> None:
    lines = ["at_s,scheduled,running,finished,backlog"]
    for t, c in points:
        lines.append(
            f"{t:.3f},{c['scheduled'] - baseline['scheduled']},{c['running']},"
            f"{c['finished'] - baseline['finished']},{c['backlog'] - baseline['backlog']}"
        )
    path.write_text("\n".join(lines) + "\n")


def _ladder_steps(
    s: Scenario, settings: BenchSettings, samples: list[Sample], prefix: Path, start: float
) -> list[dict[str, Any]]:
    from benchmarks._work import read_tasks

    tasks_csv = Path(f"{prefix}_tasks.csv")
    tasks = read_tasks(tasks_csv) if tasks_csv.exists() else []
    probe = list(read_samples(Path(f"{prefix}_probe.csv")))
    length = settings.step_seconds
    steps = []
    for k, (rate, users) in enumerate(zip(s.ladder, ladder_users(s.ladder), strict=True)):
        lo, hi = start + k * length, start + (k + 1) * length
        window = [x for x in samples if lo <= x.start_s < hi]
        latency = summarize(window, length)
        probed = [p for p in probe if lo <= p.start_s < hi]
        done = sum(1 for t in tasks if t.finished_s is not None and lo <= t.finished_s < hi)
        steps.append(
            {
                "offered": rate,
                "users": users,
                **latency.as_dict(),
                "probe_p99_ms": summarize(probed, length).p99_ms if probed else None,
                "tasks_done_per_s": round(done / length, 1) if tasks else None,
            }
        )
    return steps


def _identity(s: Scenario) -> dict[str, Any]:
    return {
        "id": s.id,
        "target": s.target,
        "key": s.key,
        "title": s.title,
        "model": s.model,
        "user": s.user,
        "load": s.load,
        "users": s.users,
        "rate": s.rate,
        "ladder_rates": list(s.ladder),
        "seconds": s.seconds,
        "gated": s.gated,
    }


def _broken(s: Scenario, error: str) -> dict[str, Any]:
    return {
        **_identity(s),
        "latency": None,
        "probe": None,
        "work": None,
        "ladder": None,
        "gate": [],
        "passed": False if s.gated else None,
        "error": error,
    }


def _one_line(r: dict[str, Any]) -> str:
    if r.get("error"):
        return f"ERROR {r['error'][:300]}"
    lat = r["latency"] or {}
    parts = [
        f"p95 {lat.get('p95_ms')} ms at {lat.get('rps')} req/s, {lat.get('failures')} failed",
        f"probe p99 {(r['probe'] or {}).get('p99_ms')} ms",
        f"Locust CPU {r['locust_cpu_share']}",
    ]
    if r["work"]:
        w = r["work"]
        parts.append(f"backlog {w['backlog_at_stop']} at stop, drain {w['drain_s']} s")
    if r.get("capacity") is not None or r["model"] == "ladder":
        parts.append(f"carried up to {r.get('capacity')}/s")
    if r["passed"] is not None:
        parts.append("PASS" if r["passed"] else "FAIL")
    return "; ".join(parts)


def _estimate(scenarios: Sequence[Scenario]) -> float:
    return sum(s.seconds + OVERHEAD_SECONDS for s in scenarios)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


# Metadata and the main entry ------------------------------------------------------------


def _git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "reference_app", "lessons", "benchmarks"],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _settings_dict(settings: BenchSettings) -> dict[str, Any]:
    values = asdict(settings)
    values["results"] = str(settings.results)
    values["reference"] = str(settings.reference)
    if settings.database_url:
        values["database_url"] = make_url(settings.database_url).render_as_string(
            hide_password=True
        )
    return values


def main(argv: Sequence[str] | None = None) -> int:
    if argv:  # settings are BENCH_* environment variables (README, "Benchmarks"), not arguments
        print(
            __doc__, "\nSettings: BENCH_QUICK, BENCH_SECONDS, BENCH_DATABASE_URL, ... (see README)"
        )
        return 0 if set(argv) <= {"-h", "--help"} else 2
    settings = BenchSettings.from_env(os.environ)
    scenarios = matrix(settings)
    accept_runs = _accept.accept_ids(settings)
    if not scenarios and not accept_runs:
        say("BENCH_ONLY matches no scenario")
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = (ROOT / settings.results / stamp).resolve()
    run_dir.mkdir(parents=True)
    load_start = [round(x, 2) for x in os.getloadavg()]
    total = _estimate(scenarios) + _accept.estimate(settings)
    say(
        f"make bench: {len(scenarios)} scenarios and {len(accept_runs)} accept-group runs,"
        f" about {_clock(total)}; results in {run_dir}"
        f"\n{os.cpu_count()} CPUs, load average {load_start} (the machine may be shared)"
    )
    bench = Bench(settings, run_dir, after=_accept.estimate(settings))
    results = bench.run(scenarios)
    accept = _accept.run_accept_group(settings, bench.logs, say) if accept_runs else []
    for run in accept:
        if run.get("server_command"):
            bench.servers.setdefault(f"accept/{run['app']}", [run["server_command"]])
    machine = {
        "cpu_count": os.cpu_count(),
        "arch": platform.machine(),
        "platform": platform.platform(),
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    summary = {
        "settings": _settings_dict(settings),
        "machine": machine,
        "scenarios": results,
        "accept": accept,
        "targets": evaluate_targets(results, settings.budget_ms),
        "accept_targets": evaluate_accept_targets(accept),
        "passed": overall_passed(results),  # the accept group's targets are informational
    }
    summary["comparison"] = compare(summary, load_reference(ROOT / settings.reference))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": _git_revision(),
        "versions": _versions(),
        **machine,
        "settings": _settings_dict(settings),
        "databases": bench.databases,
        "command": [sys.executable, "-m", "benchmarks", *(argv or [])],
        "server_commands": bench.servers,
        "locust_commands": bench.commands,
    }
    (run_dir / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
        from benchmarks import _plots

        figures = _plots.render_all(run_dir)
        say(f"\nplots: {', '.join(p.name for p in figures)}")
    except Exception as exc:  # a plot that fails must not hide the numbers
        say(f"\nplots failed: {type(exc).__name__}: {exc}")
    say("\n" + format_report(summary))
    say(f"\nresults: {run_dir}")
    return 0 if summary["passed"] else 1
