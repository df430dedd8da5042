"""What ``make bench`` runs: its settings (from ``BENCH_*`` variables) and its scenario matrix."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

__all__ = ["BenchSettings", "Scenario", "file_prefix", "ladder_users", "locust_command", "matrix"]

Model = Literal["closed", "open", "ladder"]
Target = Literal["sqlite", "postgres", "lab"]

# The lab's anti-pattern workloads: each needs its own rate to show its point.
THREADPOOL_TOKENS = 40  # anyio's default CapacityLimiter: def tasks beyond it wait
SATURATION_RATE, SATURATION_WORK_MS = 40.0, 2000  # 80 def tasks wanted at once
BOUNDED_RATE, BOUNDED_WORK_MS = 20.0, 500  # 16 tasks/s fit under the semaphore of 8
# Back-to-back accepts: enough users to keep one uvicorn process busy, few enough that
# the latency is the accept's cost rather than a queue.
ACCEPT_USERS = 4


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """Every knob of a run; ``from_env`` documents the variable behind each."""

    quick: bool = False
    seconds: float = 12.0
    lab_seconds: float = 8.0
    users: int = 10
    rate: float = 50.0
    budget_ms: float = 200.0
    io_ms: int = 300
    ladder: tuple[float, ...] = (50.0, 100.0, 200.0, 400.0, 600.0)
    step_seconds: float = 4.0
    lab_rate: float = 5.0
    lab_work_ms: int = 150
    database_url: str | None = None
    processes: int = 0
    results: Path = Path("results/local")
    only: tuple[str, ...] = ()
    drain_timeout: float = 120.0
    probe_interval_ms: float = 50.0
    # The accept group (``_accept``): the raw asyncio client, not Locust.
    accept: bool = True
    accept_seconds: float = 8.0
    accept_connections: int = 50
    accept_rate: float = 300.0
    finish_seconds: float = 20.0
    overload_seconds: float = 10.0
    overload_backlog: int = 2000
    reference: Path = Path("results/reference")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BenchSettings:
        """Defaults give a run of about five minutes on 2 cores; ``BENCH_QUICK=1`` about one."""
        quick = _flag(env.get("BENCH_QUICK"))
        base = (
            cls(quick=True, seconds=4.0, lab_seconds=3.0, drain_timeout=30.0, accept_seconds=3.0,
                finish_seconds=5.0, overload_seconds=4.0, overload_backlog=600)
            if quick
            else cls()
        )  # fmt: skip

        def number(name: str, default: float) -> float:
            value = env.get(name, "").strip()
            return float(value) if value else default

        ladder = env.get("BENCH_LADDER", "").strip()
        settings = cls(
            quick=quick,
            seconds=number("BENCH_SECONDS", base.seconds),
            lab_seconds=number("BENCH_LAB_SECONDS", base.lab_seconds),
            users=int(number("BENCH_USERS", base.users)),
            rate=number("BENCH_RATE", base.rate),
            budget_ms=number("BENCH_P95_BUDGET_MS", base.budget_ms),
            io_ms=int(number("BENCH_IO_MS", base.io_ms)),
            ladder=tuple(float(x) for x in ladder.split(",")) if ladder else base.ladder,
            step_seconds=number("BENCH_STEP_SECONDS", base.step_seconds),
            lab_rate=number("BENCH_LAB_RATE", base.lab_rate),
            lab_work_ms=int(number("BENCH_LAB_WORK_MS", base.lab_work_ms)),
            database_url=env.get("BENCH_DATABASE_URL") or None,
            processes=int(number("BENCH_PROCESSES", base.processes)),
            results=Path(env.get("BENCH_RESULTS") or base.results),
            only=tuple(x.strip() for x in env.get("BENCH_ONLY", "").split(",") if x.strip()),
            drain_timeout=number("BENCH_DRAIN_TIMEOUT", base.drain_timeout),
            accept=_flag(env.get("BENCH_ACCEPT", "1")),
            accept_seconds=number("BENCH_ACCEPT_SECONDS", base.accept_seconds),
            accept_connections=int(number("BENCH_ACCEPT_CONNECTIONS", base.accept_connections)),
            accept_rate=number("BENCH_ACCEPT_RATE", base.accept_rate),
            finish_seconds=number("BENCH_FINISH_SECONDS", base.finish_seconds),
            overload_seconds=number("BENCH_OVERLOAD_SECONDS", base.overload_seconds),
            overload_backlog=int(number("BENCH_OVERLOAD_BACKLOG", base.overload_backlog)),
            reference=Path(env.get("BENCH_REFERENCE") or base.reference),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.seconds <= 0 or self.lab_seconds <= 0 or self.step_seconds <= 0:
            raise ValueError("BENCH_SECONDS, BENCH_LAB_SECONDS and BENCH_STEP_SECONDS must be > 0")
        if self.users < 1 or self.rate <= 0 or self.lab_rate <= 0:
            raise ValueError("BENCH_USERS, BENCH_RATE and BENCH_LAB_RATE must be positive")
        if self.ladder:
            ladder_users(self.ladder)
        accept = (self.accept_seconds, self.accept_rate, self.finish_seconds, self.overload_seconds)
        if min(accept) <= 0 or self.accept_connections < 1 or self.overload_backlog < 1:
            raise ValueError(
                "the BENCH_ACCEPT_*, BENCH_FINISH_* and BENCH_OVERLOAD_* settings must be > 0"
            )

    @property
    def targets(self) -> tuple[Target, ...]:
        return ("sqlite", "postgres", "lab") if self.database_url else ("sqlite", "lab")


def file_prefix(scenario_id: str) -> str:
    """``sqlite/background-open`` -> ``sqlite-background-open`` (+ ``_requests.csv``, ...)."""
    return scenario_id.replace("/", "-")


def ladder_users(rates: tuple[float, ...]) -> list[int]:
    """Users per step when each open-model user arrives ``rates[0]`` times a second."""
    base = rates[0]
    users = [r / base for r in rates]
    if base <= 0 or any(u != math.floor(u) for u in users) or users != sorted(users):
        raise ValueError(f"BENCH_LADDER must rise in multiples of its first rate, got {rates}")
    return [int(u) for u in users]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One headless Locust run against one target."""

    target: Target
    key: str
    title: str
    locustfile: str
    user: str
    model: Model
    seconds: float
    users: int = 1
    rate: float = 0.0
    """Open model: total arrivals per second. Closed loop: the users' pace in total (0: none)."""
    options: tuple[str, ...] = ()
    gated: bool = False
    work: Literal["events", "stats"] | None = None
    webhooks: bool = False
    ladder: tuple[float, ...] = ()
    quick: bool = False
    """Part of the BENCH_QUICK run."""

    @property
    def id(self) -> str:
        return f"{self.target}/{self.key}"

    @property
    def file_prefix(self) -> str:
        """What this scenario's files in the results folder start with."""
        return file_prefix(self.id)

    @property
    def load(self) -> str:
        if self.model == "ladder":
            return "/".join(f"{r:g}" for r in self.ladder) + "/s"
        if self.model == "open":
            return f"{self.rate:g}/s"
        return f"{self.users}u" + (f"@{self.rate:g}/s" if self.rate else "")


HEALTH = "benchmarks/health.py"
INLINE_VS_BACKGROUND = "benchmarks/inline_vs_background.py"
DURABLE_ACCEPT = "benchmarks/durable_accept.py"
WEBHOOK_FANOUT = "benchmarks/webhook_fanout.py"
ANTI_PATTERNS = "benchmarks/anti_patterns.py"


def _reference(s: BenchSettings, target: Target) -> list[Scenario]:
    io = ("--io-ms", str(s.io_ms), "--cpu-ms", "0")
    # Closed-loop users are paced to the open model's rate, so both offer the same load.
    paced = Scenario(target, "", "", "", "", "closed", s.seconds, users=s.users, rate=s.rate)
    fixed = replace(paced, model="open", users=1)
    background, inline = f"background, {s.io_ms} ms I/O", f"inline, {s.io_ms} ms I/O"
    cpu = ("--io-ms", "0", "--cpu-ms", str(s.lab_work_ms))
    scenarios = [
        replace(paced, key="health-closed", title="GET /health", locustfile=HEALTH,
                user="HealthUser", gated=True, quick=True),
        replace(fixed, key="health-open", title="GET /health", locustfile=HEALTH,
                user="HealthOpenUser", gated=True, quick=True),
        replace(paced, key="background-closed", title=background, user="BackgroundUser",
                locustfile=INLINE_VS_BACKGROUND, options=io, gated=True, work="events",
                quick=True),
        replace(fixed, key="background-open", title=background, user="BackgroundOpenUser",
                locustfile=INLINE_VS_BACKGROUND, options=io, gated=True, work="events",
                quick=True),
        replace(paced, key="inline-closed", title=inline, user="InlineUser",
                locustfile=INLINE_VS_BACKGROUND, options=io, work="events", quick=True),
        replace(fixed, key="inline-open", title=inline, user="InlineOpenUser",
                locustfile=INLINE_VS_BACKGROUND, options=io, work="events", quick=True),
        replace(paced, key="accept-capacity", title="durable accept (no work), back to back",
                locustfile=DURABLE_ACCEPT, user="DurableAcceptUser", users=ACCEPT_USERS,
                rate=0.0, gated=True, work="events"),
        replace(fixed, key="webhook-open", title="webhook fan-out, 20 ms receiver",
                locustfile=WEBHOOK_FANOUT, user="WebhookFanoutUser", gated=True,
                options=("--io-ms", "0", "--cpu-ms", "0"), work="events", webhooks=True),
        replace(fixed, key="cpu-offloaded-open", title=f"{s.lab_work_ms} ms CPU, process pool",
                locustfile=INLINE_VS_BACKGROUND, user="BackgroundOpenUser", rate=s.lab_rate,
                seconds=s.lab_seconds, options=cpu, gated=True, work="events"),
    ]  # fmt: skip
    if s.ladder:
        ladder = replace(fixed, key="ladder", title=f"{background}, rising rate", model="ladder",
                         locustfile=INLINE_VS_BACKGROUND, user="BackgroundOpenUser", rate=0.0,
                         seconds=s.step_seconds * len(s.ladder), options=io, work="events",
                         ladder=s.ladder)  # fmt: skip
        scenarios.append(ladder)
    return scenarios


def _lab(s: BenchSettings) -> list[Scenario]:
    work = ("--work-ms", str(s.lab_work_ms))
    fixed = Scenario("lab", "", "", ANTI_PATTERNS, "", "open", s.lab_seconds, rate=s.lab_rate,
                     options=work, work="stats")  # fmt: skip
    ms = s.lab_work_ms
    return [
        replace(fixed, key="accept-capacity", title="non-durable accept (memory), back to back",
                locustfile=DURABLE_ACCEPT, user="NonDurableAcceptUser", model="closed",
                users=ACCEPT_USERS, rate=0.0, seconds=s.seconds, options=(), gated=True),
        replace(fixed, key="async-io-open", title=f"async def, {ms} ms awaited",
                user="LabAsyncIoUser"),
        replace(fixed, key="blocking-open", title=f"ANTI: time.sleep {ms} ms in async def",
                user="LabBlockingInAsyncUser", quick=True),
        replace(fixed, key="blocking-closed", title=f"ANTI: time.sleep {ms} ms in async def",
                user="LabBlockingInAsyncClosedUser", model="closed",
                users=max(1, round(s.lab_rate))),
        replace(fixed, key="cpu-in-async-open", title=f"ANTI: {ms} ms CPU in async def",
                user="LabCpuInAsyncUser"),
        replace(fixed, key="cpu-offloaded-open", title=f"{ms} ms CPU, process pool",
                user="LabCpuOffloadedUser", quick=True),
        replace(fixed, key="threadpool-saturation", title=f"def tasks, {SATURATION_WORK_MS} ms",
                user="LabSyncIoUser", rate=SATURATION_RATE,
                options=("--work-ms", str(SATURATION_WORK_MS))),
        replace(fixed, key="bounded-open", title=f"semaphore of 8, {BOUNDED_WORK_MS} ms",
                user="LabBoundedUser", rate=BOUNDED_RATE,
                options=("--work-ms", str(BOUNDED_WORK_MS))),
    ]  # fmt: skip


def matrix(settings: BenchSettings) -> list[Scenario]:
    """Every scenario of this run, in order, grouped by target."""
    scenarios: list[Scenario] = []
    for target in settings.targets:
        scenarios += _lab(settings) if target == "lab" else _reference(settings, target)
    if settings.quick:
        scenarios = [s for s in scenarios if s.quick]
    if settings.only:
        scenarios = [s for s in scenarios if any(part in s.id for part in settings.only)]
    return scenarios


SHAPE_FILE = "benchmarks_shapes/steps.py"
OPEN_GRACE_SECONDS = 3.0
CLOSED_STOP_TIMEOUT_SECONDS = 10
SPAWN_AT_ONCE = "1000"  # users per second: -r N would spread N users over a second


def locust_command(
    scenario: Scenario,
    settings: BenchSettings,
    *,
    python: str,
    host: str,
    prefix: Path,
    webhook_url: str | None = None,
) -> list[str]:
    """The headless Locust command line of one scenario; its files all start with ``prefix``."""
    s = scenario
    processes = settings.processes
    command = [python, "-m", "locust", "-f", s.locustfile, "--headless", "--host", host]
    if s.webhooks and webhook_url:
        command += ["--webhook-url", webhook_url]
    command += ["--csv", str(prefix), "--requests-csv", f"{prefix}_requests.csv"]
    command += ["--run-json", f"{prefix}_locust.json", "--p95-budget-ms", f"{settings.budget_ms:g}"]
    # The gate decides the exit code; failures count in it for gated endpoints.
    command += ["--exit-code-on-error", "0", "--only-summary", *s.options]
    if processes > 1:
        command += ["--processes", str(processes)]
    if s.model == "closed":
        command += ["-u", str(s.users), "-r", SPAWN_AT_ONCE, "-t", f"{s.seconds:g}s"]
        command += ["--stop-timeout", str(CLOSED_STOP_TIMEOUT_SECONDS)]
        if s.rate:
            command += ["--user-rate", f"{s.rate / s.users:g}"]
    elif s.model == "open":
        # One open-model user per process, the rate shared among them.
        users = max(1, processes)
        run_time = s.seconds + OPEN_GRACE_SECONDS + 10  # a local run ends itself sooner
        command += ["-u", str(users), "-r", SPAWN_AT_ONCE, "-t", f"{run_time:g}s"]
        command += ["--arrival-rate", f"{s.rate / users:g}", "--arrivals-for", f"{s.seconds:g}"]
        command += ["--open-grace", f"{OPEN_GRACE_SECONDS:g}"]
    else:
        steps = ",".join(str(u) for u in ladder_users(s.ladder))
        command[4] = f"{s.locustfile},{SHAPE_FILE}"
        command += ["--steps", steps, "--step-seconds", f"{settings.step_seconds:g}"]
        command += ["--arrival-rate", f"{s.ladder[0]:g}", "--arrivals-for", f"{s.seconds:g}"]
        command += ["--open-grace", f"{OPEN_GRACE_SECONDS:g}"]
    command.append(s.user)
    return command
