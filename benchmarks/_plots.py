"""Figures from a ``make bench`` results folder, for ``make bench`` and for the notebooks.

    from benchmarks._plots import BenchRun, percentile_bars
    run = BenchRun.load("results/local/20261128T163315Z")
    percentile_bars(run)              # a matplotlib Figure; Jupyter shows it
    render_all(run.path)              # every figure as PNG into the folder

Each function draws one idea, with units on the axes, a log scale where
latencies span orders of magnitude, the p95 budget on every latency axis, and
the Okabe-Ito palette (colour-blind safe). Figures are built without pyplot,
so nothing here depends on a display or on global state.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from benchmarks._plan import file_prefix
from benchmarks._samples import Sample, read_samples
from benchmarks._stats import percentile
from benchmarks._work import TaskTimes, backlog_over_time, read_tasks

__all__ = [
    "OKABE_ITO",
    "BenchRun",
    "durable_accept",
    "ladder",
    "latency_spectrum",
    "percentile_bars",
    "probe_timeline",
    "render_all",
    "response_vs_finish",
]

# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
BUDGET_COLOR = "#D55E00"
STYLE: dict[str, Any] = {
    "font.size": 14,
    "axes.titlesize": 17,
    "axes.labelsize": 15,
    "legend.fontsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 13,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(cast(Any, STYLE)):
        yield


@dataclass(frozen=True)
class BenchRun:
    """One results folder: ``summary.json`` plus each scenario's CSV files."""

    path: Path
    summary: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> BenchRun:
        path = Path(path)
        return cls(path, json.loads((path / "summary.json").read_text()))

    @property
    def budget_ms(self) -> float:
        return float(self.summary["settings"]["budget_ms"])

    @property
    def scenarios(self) -> list[dict[str, Any]]:
        return [s for s in self.summary["scenarios"] if not s.get("error")]

    def scenario(self, scenario_id: str) -> dict[str, Any]:
        for s in self.scenarios:
            if s["id"] == scenario_id:
                return s
        raise KeyError(f"no scenario {scenario_id!r} in {self.path}")

    def has(self, scenario_id: str) -> bool:
        return any(s["id"] == scenario_id for s in self.scenarios)

    def ids(self, *keys: str, targets: Sequence[str] = ()) -> list[str]:
        """Scenario ids with one of ``keys`` (all when none), in run order."""
        return [
            s["id"]
            for s in self.scenarios
            if (not keys or s["key"] in keys) and (not targets or s["target"] in targets)
        ]

    def _file(self, scenario_id: str, suffix: str) -> Path:
        return self.path / f"{file_prefix(scenario_id)}_{suffix}"

    def requests(self, scenario_id: str) -> list[Sample]:
        """Every request of the scenario (its per-request data)."""
        return list(read_samples(self._file(scenario_id, "requests.csv")))

    def probe(self, scenario_id: str) -> list[Sample]:
        """The /health probe's samples during the scenario."""
        return list(read_samples(self._file(scenario_id, "probe.csv")))

    def tasks(self, scenario_id: str) -> list[TaskTimes]:
        """Per-task times from the event log (reference app scenarios with work)."""
        path = self._file(scenario_id, "tasks.csv")
        return read_tasks(path) if path.exists() else []

    def backlog(self, scenario_id: str) -> list[tuple[float, int]]:
        """(seconds since the load started, tasks accepted and not finished)."""
        start = self.scenario(scenario_id)["window"]["start"]
        lab = self._file(scenario_id, "backlog.csv")
        if lab.exists():
            with lab.open(newline="") as handle:
                return [
                    (round(float(row["at_s"]) - start, 3), int(row["backlog"]))
                    for row in csv.DictReader(handle)
                ]
        tasks = self.tasks(scenario_id)
        if not tasks:
            return []
        end = max(t.finished_s or t.scheduled_s for t in tasks)
        return backlog_over_time(tasks, start=start, end=end + 0.5)


def label(scenario: dict[str, Any]) -> str:
    """``background-open`` on one line, ``sqlite, 50/s`` below."""
    return f"{scenario['key']}\n{scenario['target']}, {scenario['load']}"


def _budget(ax: Axes, budget_ms: float, *, horizontal: bool = True) -> None:
    draw = ax.axhline if horizontal else ax.axvline
    draw(
        budget_ms, color=BUDGET_COLOR, linestyle="--", linewidth=2, label=f"budget {budget_ms:g} ms"
    )


def _log_ms(ax: Axes, axis: str = "y") -> None:
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    formatter = FuncFormatter(lambda v, _: f"{v:g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def _figure(width: float = 12, height: float = 6.5, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def _default_comparison(run: BenchRun) -> list[str]:
    keys = ("health-closed", "health-open", "background-closed", "background-open")
    return run.ids(*keys, "inline-closed", "inline-open", targets=("sqlite", "postgres"))


# 1. Percentiles per scenario ------------------------------------------------------------


def percentile_bars(run: BenchRun, ids: Sequence[str] | None = None) -> Figure:
    """p50, p95 and p99 per scenario with the budget drawn, and the achieved rate on top."""
    ids = list(ids or _default_comparison(run))
    with _style():
        figure, (ax,) = _figure(max(10, 1.6 * len(ids) + 3))
        width = 0.26
        for n, (q, color) in enumerate(zip(("p50", "p95", "p99"), OKABE_ITO, strict=False)):
            values = [run.scenario(i)["latency"][f"{q}_ms"] or math.nan for i in ids]
            xs = [x + (n - 1) * width for x in range(len(ids))]
            ax.bar(xs, values, width, label=q, color=color)
        _budget(ax, run.budget_ms)
        _log_ms(ax)
        top = max([run.budget_ms] + [run.scenario(i)["latency"]["p99_ms"] or 0.0 for i in ids])
        ax.set_ylim(top=top * 4)
        for x, scenario_id in enumerate(ids):
            rps = run.scenario(scenario_id)["latency"]["rps"]
            ax.annotate(f"{rps:g}/s", (x, top * 1.6), ha="center", fontsize=12)
        ax.set_xticks(range(len(ids)), [label(run.scenario(i)) for i in ids], fontsize=11)
        ax.set_ylabel("response time (ms, log scale)")
        ax.set_title("Response time per scenario, with the achieved request rate")
        ax.legend(loc="upper left", ncols=4)
    return figure


# 2. The latency distribution: closed loop against open model ---------------------------

_NINES = (50.0, 90.0, 99.0, 99.9, 99.99)


def _nines(q: float) -> float:
    return -math.log10(1 - min(q, 99.999) / 100)


def latency_spectrum(run: BenchRun, ids: Sequence[str] | None = None) -> Figure:
    """Every percentile from the per-request data: closed-loop dashed, open-model solid."""
    ids = list(ids or _default_comparison(run))
    with _style():
        figure, (ax,) = _figure()
        for n, scenario_id in enumerate(ids):
            scenario = run.scenario(scenario_id)
            times = sorted(s.ms for s in run.requests(scenario_id) if s.model != "probe")
            if not times:
                continue
            qs = [q for q in _spectrum_points(len(times))]
            ax.plot(
                [_nines(q) for q in qs],
                [percentile(times, q) for q in qs],
                color=OKABE_ITO[n // 2 % len(OKABE_ITO)] if len(ids) > 1 else OKABE_ITO[0],
                linestyle="--" if scenario["model"] == "closed" else "-",
                linewidth=2.5,
                label=f"{scenario['target']} {scenario['key']} ({scenario['latency']['rps']:g}/s)",
            )
        _budget(ax, run.budget_ms)
        _log_ms(ax)
        ax.xaxis.set_major_locator(FixedLocator([_nines(q) for q in _NINES]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"p{100 - 100 * 10**-v:g}"))
        ax.set_xlabel("percentile")
        ax.set_ylabel("response time (ms, log scale)")
        ax.set_title("Latency by percentile: closed loop (dashed) against open model (solid)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=11)
    return figure


def _spectrum_points(count: int) -> list[float]:
    top = 100 * (1 - 1 / max(count, 2))  # no percentile finer than the data can tell
    points, q = [], 0.0
    while q < top:
        points.append(q if q > 0 else 0.1)
        q = 100 - (100 - q) / 1.15
    return [*points, top]


# 3. Load against latency -------------------------------------------------------------


def ladder(run: BenchRun, scenario_id: str | None = None) -> Figure:
    """p50/p95/p99 and achieved rate as the arrival rate steps up; the knee and the budget."""
    scenario_id = scenario_id or run.ids("ladder")[0]
    scenario = run.scenario(scenario_id)
    steps = scenario["ladder"]
    offered = [s["offered"] for s in steps]
    with _style():
        figure, (latency_ax, rate_ax) = _figure(15, 6.5, ncols=2)
        for q, color in zip(("p50", "p95", "p99"), OKABE_ITO, strict=False):
            values = [s[f"{q}_ms"] if s[f"{q}_ms"] is not None else math.nan for s in steps]
            latency_ax.plot(offered, values, marker="o", linewidth=2.5, color=color, label=q)
        _budget(latency_ax, run.budget_ms)
        _log_ms(latency_ax)
        carried = scenario.get("capacity")
        for ax in (latency_ax, rate_ax):
            ax.set_xlabel("offered arrival rate (requests/s)")
            if carried:
                ax.axvline(carried, color="#000000", linestyle=":", linewidth=2,
                           label=f"carried: {carried:g}/s")  # fmt: skip
        latency_ax.set_ylabel("response time (ms, log scale)")
        latency_ax.set_title("Response time as the rate steps up")
        latency_ax.legend(loc="upper left")
        rate_ax.plot(offered, offered, color="#999999", linestyle="--", label="offered")
        rate_ax.plot(offered, [s["rps"] for s in steps], marker="o", linewidth=2.5,
                     color=OKABE_ITO[0], label="requests answered/s")  # fmt: skip
        done = [s.get("tasks_done_per_s") for s in steps]
        if any(d is not None for d in done):
            rate_ax.plot(offered, [d if d is not None else math.nan for d in done], marker="s",
                         linewidth=2.5, color=OKABE_ITO[2], label="tasks finished/s")  # fmt: skip
        rate_ax.set_ylabel("per second")
        rate_ax.set_title("What was answered, and what was finished")
        rate_ax.legend(loc="upper left")
        figure.suptitle(f"{scenario['target']}: {scenario['title']}")
    return figure


# 4. The fast 202 against the slow finish -------------------------------------------------


def response_vs_finish(run: BenchRun, scenario_id: str | None = None) -> Figure:
    """Response time next to queue delay and completion latency, and the backlog over time."""
    scenario_id = scenario_id or run.ids("background-open")[0]
    scenario = run.scenario(scenario_id)
    work = scenario["work"] or {}
    with _style():
        figure, (bars_ax, backlog_ax) = _figure(15, 6.5, ncols=2)
        metrics = [("response", {q: scenario["latency"][f"{q}_ms"] for q in ("p50", "p95", "p99")})]
        for name, key in (("queue delay", "queue_delay_ms"), ("completion", "completion_ms")):
            if work.get(key):
                metrics.append((name, work[key]))
        width = 0.26
        for n, q in enumerate(("p50", "p95", "p99")):
            xs = [x + (n - 1) * width for x in range(len(metrics))]
            bars_ax.bar(xs, [m[q] for _, m in metrics], width, label=q, color=OKABE_ITO[n])
        _budget(bars_ax, run.budget_ms)
        _log_ms(bars_ax)
        bars_ax.set_xticks(range(len(metrics)), [name for name, _ in metrics])
        bars_ax.set_ylabel("ms after the request (log scale)")
        bars_ax.set_title("The answer, the start of the work, its end")
        bars_ax.legend(loc="upper left")
        points = run.backlog(scenario_id)
        if points:
            backlog_ax.plot([t for t, _ in points], [b for _, b in points], linewidth=2.5,
                            color=OKABE_ITO[0])  # fmt: skip
        backlog_ax.axvspan(0, scenario["seconds"], color="#999999", alpha=0.2, label="load on")
        backlog_ax.set_xlabel("seconds since the load started")
        backlog_ax.set_ylabel("tasks accepted, not finished")
        backlog_ax.set_title("Backlog over time")
        backlog_ax.legend(loc="upper right")
        figure.suptitle(f"{scenario['target']} {scenario['key']}: {scenario['title']}")
    return figure


# 5. The event loop under anti-patterns --------------------------------------------------


def probe_timeline(run: BenchRun, ids: Sequence[str] | None = None) -> Figure:
    """The /health probe's latency over time while each scenario ran."""
    keys = ("blocking-open", "cpu-in-async-open", "cpu-offloaded-open", "async-io-open")
    ids = list(ids or run.ids(*keys))
    with _style():
        figure, (ax,) = _figure()
        for n, scenario_id in enumerate(ids):
            scenario = run.scenario(scenario_id)
            start = scenario["window"]["start"]
            samples = sorted(
                (p for p in run.probe(scenario_id) if p.start_s >= start - 1),
                key=lambda p: p.start_s,
            )
            ax.plot([p.start_s - start for p in samples], [p.ms for p in samples], linewidth=1.8,
                    marker=".", color=OKABE_ITO[n % len(OKABE_ITO)],
                    label=f"{scenario['target']} {scenario['key']}")  # fmt: skip
        _budget(ax, run.budget_ms)
        ax.axhline(50, color="#000000", linestyle=":", linewidth=1.5, label="probe target 50 ms")
        _log_ms(ax)
        ax.set_xlabel("seconds since the load started")
        ax.set_ylabel("GET /health (ms, log scale)")
        ax.set_title("Is the event loop free? /health while background work runs")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=11)
    return figure


# 6. The cost of a durable accept --------------------------------------------------------


def durable_accept(run: BenchRun, ids: Sequence[str] | None = None) -> Figure:
    """The accept with no work: committed on SQLite, on PostgreSQL, and kept in memory only."""
    ids = list(ids or run.ids("accept-capacity"))
    with _style():
        figure, (latency_ax, rate_ax) = _figure(15, 6.5, ncols=2)
        names = [
            "memory only (lab)" if run.scenario(i)["target"] == "lab" else run.scenario(i)["target"]
            for i in ids
        ]
        width = 0.26
        for n, q in enumerate(("p50", "p95", "p99")):
            xs = [x + (n - 1) * width for x in range(len(ids))]
            values = [run.scenario(i)["latency"][f"{q}_ms"] for i in ids]
            latency_ax.bar(xs, values, width, label=q, color=OKABE_ITO[n])
        _budget(latency_ax, run.budget_ms)
        _log_ms(latency_ax)
        latency_ax.set_xticks(range(len(ids)), names)
        latency_ax.set_ylabel("response time (ms, log scale)")
        latency_ax.set_title("Accept latency, users sending back to back")
        latency_ax.legend(loc="upper left", ncols=4)
        rate_ax.bar(range(len(ids)), [run.scenario(i)["latency"]["rps"] for i in ids],
                    color=OKABE_ITO[5])  # fmt: skip
        rate_ax.set_xticks(range(len(ids)), names)
        rate_ax.set_ylabel("accepts per second")
        rate_ax.set_title("Accept throughput")
        users = {run.scenario(i)["users"] for i in ids}
        figure.suptitle(
            f"The cost of committing task_scheduled ({', '.join(map(str, users))} users)"
        )
    return figure


# All of them ------------------------------------------------------------------------------


def render_all(path: str | Path) -> list[Path]:
    """Save every figure the folder has data for as PNG, next to the data; return the files."""
    run = BenchRun.load(path)
    figures: list[tuple[str, Figure]] = []
    if _default_comparison(run):
        figures += [
            ("percentiles.png", percentile_bars(run)),
            ("latency_spectrum.png", latency_spectrum(run)),
        ]
    for scenario_id in run.ids("ladder"):
        figures.append((f"ladder-{file_prefix(scenario_id)}.png", ladder(run, scenario_id)))
    for scenario_id in run.ids("background-open", "threadpool-saturation", "bounded-open"):
        if run.scenario(scenario_id).get("work"):
            name = f"work-{file_prefix(scenario_id)}.png"
            figures.append((name, response_vs_finish(run, scenario_id)))
    if run.ids("blocking-open", "cpu-in-async-open", "cpu-offloaded-open", "async-io-open"):
        figures.append(("probe_timeline.png", probe_timeline(run)))
    if run.ids("accept-capacity"):
        figures.append(("durable_accept.png", durable_accept(run)))
    written = []
    for name, figure in figures:
        target = run.path / name
        with _style():
            figure.savefig(target)
        written.append(target)
    return written
