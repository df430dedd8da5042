"""Figures from a ``make bench`` results folder, for ``make bench`` and for the notebooks.

    from benchmarks._plots import BenchRun, percentile_bars
    run = BenchRun.load("results/local/20261128T163315Z")  # relative to the repository
    percentile_bars(run)              # a matplotlib Figure
    render_all(run.path)              # every figure as PNG into the folder
    show(percentile_bars(run))        # in a notebook: the figure as PNG, no pyplot needed
    export(percentile_bars(run), "docs/figures", "percentiles.png")

Each function draws one idea, with units on the axes, a log scale where
latencies span orders of magnitude, the p95 budget on every latency axis, and
the Okabe-Ito palette (colour-blind safe). Figures are built without pyplot,
so nothing here depends on a display or on global state.
"""

from __future__ import annotations

import csv
import io
import itertools
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
    "REFERENCE",
    "ROOT",
    "BenchRun",
    "budget_break",
    "durable_accept",
    "export",
    "fifo_delays_ms",
    "knee",
    "ladder",
    "latency_spectrum",
    "omission_gap",
    "percentile_bars",
    "png",
    "probe_timeline",
    "render_all",
    "response_vs_finish",
    "results_path",
    "show",
]

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
"""The committed results the notebooks plot unless told otherwise (``benchmarks.reference``)."""

# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
BUDGET_COLOR = "#D55E00"
SERIES = tuple(c for c in OKABE_ITO if c != BUDGET_COLOR)
"""Colours for data series: the palette less the budget line's vermillion."""
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


def results_path(path: str | Path) -> Path:
    """A results folder; a relative path that is not found here is taken from the repository."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else ROOT / path


@dataclass(frozen=True)
class BenchRun:
    """One results folder: ``summary.json`` plus each scenario's CSV files."""

    path: Path
    summary: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> BenchRun:
        path = results_path(path)
        return cls(path, json.loads((path / "summary.json").read_text()))

    @property
    def budget_ms(self) -> float:
        return float(self.summary["settings"]["budget_ms"])

    @property
    def metadata(self) -> dict[str, Any]:
        """``metadata.json``: when, where and how the run was made ({} when missing)."""
        path = self.path / "metadata.json"
        return cast(dict[str, Any], json.loads(path.read_text())) if path.is_file() else {}

    def describe(self) -> str:
        """One paragraph on where the data comes from, to print above the figures."""
        meta = self.metadata
        versions = meta.get("versions", {})
        lines = [
            f"{self.path.name}: make bench of {meta.get('date', '?')}"
            f" at revision {meta.get('revision', '?')}, {meta.get('cpu_count', '?')} CPUs,"
            f" load average {meta.get('loadavg_start', '?')} -> {meta.get('loadavg_end', '?')};"
            f" Python {versions.get('python', '?')}, FastAPI {versions.get('fastapi', '?')},"
            f" uvicorn {versions.get('uvicorn', '?')}; p95 budget {self.budget_ms:g} ms."
        ]
        reference = meta.get("reference")
        if reference:
            folders = ", ".join(r["folder"] for r in reference["runs"])
            lines.append(f"Reduced from {folders} by benchmarks.reference. {reference['note']}")
        return "\n".join(lines)

    def latency(self, scenario_id: str) -> dict[str, Any]:
        """Count, failures, rps and p50/p95/p99/max in ms of every request of the scenario."""
        return cast(dict[str, Any], self.scenario(scenario_id)["latency"])

    @property
    def scenarios(self) -> list[dict[str, Any]]:
        return [s for s in self.summary["scenarios"] if not s.get("error")]

    def scenario(self, scenario_id: str) -> dict[str, Any]:
        for s in self.scenarios:
            if s["id"] == scenario_id:
                return s
        raise KeyError(f"no scenario {scenario_id!r} in {self.path}")

    def require(self, *scenario_ids: str) -> None:
        """Fail with a clear message when the run lacks one of these scenarios."""
        missing = [i for i in scenario_ids if not self.has(i)]
        if missing:
            raise LookupError(
                f"{self.path} has no {', '.join(missing)}: this needs a full `make bench`"
                " (BENCH_QUICK and BENCH_ONLY leave scenarios out; a failed scenario has no data)"
            )

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

    def counters(self, scenario_id: str) -> list[dict[str, float]]:
        """The lab's GET /stats over time: ``at_s`` (since the load started), ``scheduled``,
        ``running``, ``finished`` and ``backlog`` (counted from before the scenario)."""
        path = self._file(scenario_id, "backlog.csv")
        if not path.exists():
            return []
        start = self.scenario(scenario_id)["window"]["start"]
        with path.open(newline="") as handle:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
        return [row | {"at_s": round(row["at_s"] - start, 3)} for row in rows]

    def backlog(self, scenario_id: str) -> list[tuple[float, int]]:
        """(seconds since the load started, tasks accepted and not finished)."""
        start = self.scenario(scenario_id)["window"]["start"]
        counters = self.counters(scenario_id)
        if counters:
            return [(row["at_s"], int(row["backlog"])) for row in counters]
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


def _rate(per_second: float) -> str:
    """``15/s``, ``47/s``, ``7,441/s``, ``4.6/s``: as many digits as a reader needs."""
    return f"{per_second:,.0f}/s" if per_second >= 10 else f"{per_second:.2g}/s"


def _headroom(ax: Axes, values: Sequence[float], budget_ms: float) -> None:
    """Room above the tallest bar (and the budget) for the legend, on a log axis."""
    shown = [v for v in values if v and v > 0]
    ax.set_ylim(min(shown) / 2, max([*shown, budget_ms]) * 5)


def _figure(width: float = 12, height: float = 6.5, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes, as ``export`` saves it."""
    buffer = io.BytesIO()
    with _style():
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def show(figure: Figure) -> None:
    """Show the figure in Jupyter (the module never uses pyplot, so it needs no backend)."""
    from IPython.display import Image, display

    display(Image(data=png(figure)))  # type: ignore[no-untyped-call]


def export(figure: Figure, folder: str | Path | None, name: str) -> Path | None:
    """Save ``figure`` as ``folder/name`` (PNG), relative to the repository; None: don't."""
    if folder is None or str(folder) == "":
        return None
    folder = Path(folder)
    target = (folder if folder.is_absolute() else ROOT / folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png(figure))
    return target


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
        _headroom(ax, [run.latency(i)[f"{q}_ms"] or 0.0 for i in ids for q in ("p50", "p99")],
                  run.budget_ms)  # fmt: skip
        for x, scenario_id in enumerate(ids):
            rps = run.scenario(scenario_id)["latency"]["rps"]
            ax.annotate(_rate(rps), (x, top * 1.6), ha="center", fontsize=12)
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
                color=SERIES[n // 2 % len(SERIES)] if len(ids) > 1 else SERIES[0],
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


def omission_gap(run: BenchRun, closed_id: str, open_id: str) -> Figure:
    """One workload measured twice: the closed loop's spectrum, the open model's, the gap."""
    closed, opened = run.scenario(closed_id), run.scenario(open_id)
    with _style():
        figure, (ax,) = _figure()
        curves = []
        for scenario, style, color in ((closed, "--", OKABE_ITO[0]), (opened, "-", OKABE_ITO[1])):
            times = sorted(s.ms for s in run.requests(scenario["id"]) if s.model != "probe")
            qs = _spectrum_points(len(times))
            xs, ys = [_nines(q) for q in qs], [percentile(times, q) for q in qs]
            curves.append((xs, ys))
            sent = f"{scenario['latency']['count']} requests"
            ax.plot(xs, ys, linestyle=style, linewidth=3, color=color,
                    label=f"{scenario['model']}: {scenario['load']}, {sent}")  # fmt: skip
        (closed_x, closed_y), (open_x, open_y) = curves
        top = min(closed_x[-1], open_x[-1])
        xs = [x for x in open_x if x <= top]
        lower = [_interpolate(closed_x, closed_y, x) for x in xs]
        upper = [_interpolate(open_x, open_y, x) for x in xs]
        ax.fill_between(xs, lower, upper, color=OKABE_ITO[1], alpha=0.2,
                        label="what the closed loop did not see")  # fmt: skip
        p99_closed, p99_open = closed["latency"]["p99_ms"], opened["latency"]["p99_ms"]
        ax.annotate(
            f"p99: {p99_closed:.0f} ms closed, {p99_open:.0f} ms open",
            (_nines(99), p99_open),
            xytext=(-20, 30),
            textcoords="offset points",
            ha="right",
            fontsize=13,
            arrowprops={"arrowstyle": "->"},
        )
        _budget(ax, run.budget_ms)
        _log_ms(ax)
        ax.xaxis.set_major_locator(FixedLocator([_nines(q) for q in _NINES]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"p{100 - 100 * 10**-v:g}"))
        ax.set_xlabel("percentile")
        ax.set_ylabel("response time (ms, log scale)")
        ax.set_title(f"Coordinated omission: {closed['title']} ({closed['target']})")
        ax.legend(loc="upper left")
    return figure


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """``ys`` at ``x``, linear between the points (``xs`` rising)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(zip(xs, ys, strict=True)):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1] if x > xs[-1] else ys[0]


# 3. Load against latency -------------------------------------------------------------

KNEE_FACTOR = 2.0
"""The knee: the last rate before p95 first exceeds this multiple of p95 at the lowest rate."""


def knee(steps: Sequence[dict[str, Any]]) -> float | None:
    """The offered rate after which p95 climbs (None: it never does, or from the first step)."""
    if not steps or steps[0]["p95_ms"] is None:
        return None
    base = steps[0]["p95_ms"]
    for before, step in itertools.pairwise(steps):
        if step["p95_ms"] is None or step["p95_ms"] > KNEE_FACTOR * base:
            return float(before["offered"])
    return None


def budget_break(steps: Sequence[dict[str, Any]], budget_ms: float) -> float | None:
    """The first offered rate with p95 at or over the budget (None: none in the ladder)."""
    for step in steps:
        if step["p95_ms"] is None or step["p95_ms"] >= budget_ms:
            return float(step["offered"])
    return None


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
        bent, broken = knee(steps), budget_break(steps, run.budget_ms)
        if bent is not None:
            latency_ax.axvline(bent, color=OKABE_ITO[4], linestyle="-.", linewidth=2,
                               label=f"knee: {bent:g}/s")  # fmt: skip
        if broken is not None:
            latency_ax.axvline(broken, color=BUDGET_COLOR, linestyle=":", linewidth=2.5,
                               label=f"over budget from {broken:g}/s")  # fmt: skip
        for ax in (latency_ax, rate_ax):
            ax.set_xlabel("offered arrival rate (requests/s)")
        if carried:  # under budget, without failures, at 90 % of the offered rate
            rate_ax.axvline(carried, color="#000000", linestyle=":", linewidth=2,
                            label=f"carried: {carried:g}/s")  # fmt: skip
        latency_ax.set_ylabel("response time (ms, log scale)")
        latency_ax.set_title("Response time as the rate steps up")
        latency_ax.legend(loc="lower right")  # rising curves leave it empty
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


def fifo_delays_ms(counters: Sequence[dict[str, float]]) -> tuple[list[float], list[float]]:
    """Queue delays and completion latencies in ms, estimated from counters sampled over time
    (the lab keeps no event log): the k-th task scheduled is taken to be the k-th to start
    (``running + finished`` reaching k) and the k-th to finish, as in a first-in-first-out
    queue of equal tasks. Accurate to the sampling interval; unfinished tasks are left out."""
    rows = sorted(counters, key=lambda row: row["at_s"])

    def first_reaching(values: list[tuple[float, float]]) -> list[float]:
        times, k = [], 1
        for at_s, count in values:
            while k <= count:
                times.append(at_s)
                k += 1
        return times

    scheduled = first_reaching([(r["at_s"], r["scheduled"]) for r in rows])
    started = first_reaching([(r["at_s"], r["running"] + r["finished"]) for r in rows])
    finished = first_reaching([(r["at_s"], r["finished"]) for r in rows])
    queue = [1000 * (b - a) for a, b in zip(scheduled, started, strict=False)]
    completion = [1000 * (b - a) for a, b in zip(scheduled, finished, strict=False)]
    return queue, completion


def _three(values_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {q: percentile(ordered, float(q[1:])) for q in ("p50", "p95", "p99")}


def response_vs_finish(
    run: BenchRun, scenario_id: str | None = None, *, workers: int | None = None
) -> Figure:
    """Response time next to queue delay and completion latency, and the backlog over time.

    The reference app's times come from its event log; the lab's are estimated from its
    counters (``fifo_delays_ms``). ``workers`` draws the number of tasks that can run at
    once (the threadpool's 40 tokens for ``def`` tasks) on the backlog.
    """
    scenario_id = scenario_id or run.ids("background-open")[0]
    scenario = run.scenario(scenario_id)
    work = scenario["work"] or {}
    counters = run.counters(scenario_id)
    with _style():
        figure, (bars_ax, backlog_ax) = _figure(15, 6.5, ncols=2)
        metrics = [("response", {q: scenario["latency"][f"{q}_ms"] for q in ("p50", "p95", "p99")})]
        for name, key in (("queue delay", "queue_delay_ms"), ("completion", "completion_ms")):
            if work.get(key):
                metrics.append((name, work[key]))
        if len(metrics) == 1 and counters:
            queue, completion = fifo_delays_ms(counters)
            if completion:
                metrics.append(("queue delay\n(estimated)", _three(queue)))
                metrics.append(("completion\n(estimated)", _three(completion)))
        width = 0.26
        for n, q in enumerate(("p50", "p95", "p99")):
            xs = [x + (n - 1) * width for x in range(len(metrics))]
            # A zero bar vanishes on a log axis; 0.1 ms shows it as "nothing to speak of".
            values = [max(m[q], 0.1) for _, m in metrics]
            bars_ax.bar(xs, values, width, label=q, color=OKABE_ITO[n])
        _budget(bars_ax, run.budget_ms)
        _log_ms(bars_ax)
        _headroom(bars_ax, [max(m[q], 0.1) for _, m in metrics for q in m], run.budget_ms)
        bars_ax.set_xticks(range(len(metrics)), [name for name, _ in metrics])
        bars_ax.set_ylabel("ms after the request (log scale)")
        bars_ax.set_title("The answer, the start of the work, its end")
        bars_ax.legend(loc="upper left")
        points = run.backlog(scenario_id)
        if points:
            backlog_ax.plot([t for t, _ in points], [b for _, b in points], linewidth=2.5,
                            color=OKABE_ITO[0], label="accepted, not finished")  # fmt: skip
        if counters:
            backlog_ax.plot([r["at_s"] for r in counters], [r["running"] for r in counters],
                            linewidth=2.5, color=OKABE_ITO[2], label="running")  # fmt: skip
        if workers:
            backlog_ax.axhline(workers, color="#000000", linestyle=":", linewidth=2,
                               label=f"can run at once: {workers}")  # fmt: skip
        backlog_ax.axvspan(0, scenario["seconds"], color="#999999", alpha=0.2, label="load on")
        backlog_ax.set_xlabel("seconds since the load started")
        backlog_ax.set_ylabel("tasks")
        backlog_ax.set_title("Backlog over time")
        backlog_ax.set_ylim(0, max([b for _, b in points] + [workers or 0, 1]) * 1.45)
        backlog_ax.legend(loc="upper right", ncols=2)
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
                    marker=".", color=SERIES[n % len(SERIES)],
                    label=f"{scenario['title']} ({scenario['target']})")  # fmt: skip
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
        _headroom(latency_ax, [run.latency(i)[f"{q}_ms"] for i in ids for q in ("p50", "p99")],
                  run.budget_ms)  # fmt: skip
        latency_ax.set_xticks(range(len(ids)), names)
        latency_ax.set_ylabel("response time (ms, log scale)")
        latency_ax.set_title("Accept latency, users sending back to back")
        latency_ax.legend(loc="upper left", ncols=4)
        rates = [run.latency(i)["rps"] for i in ids]
        rate_ax.bar(range(len(ids)), rates, color=OKABE_ITO[5])
        for x, rate in enumerate(rates):
            rate_ax.annotate(_rate(rate), (x, rate), xytext=(0, 4), textcoords="offset points",
                             ha="center", fontsize=13)  # fmt: skip
        rate_ax.set_xticks(range(len(ids)), names)
        if min(rates) > 0 and max(rates) / min(rates) > 20:  # orders of magnitude apart
            _log_ms(rate_ax)
            rate_ax.set_ylim(top=max(rates) * 3)
            rate_ax.set_ylabel("accepts per second (log scale)")
        else:
            rate_ax.set_ylim(top=max(rates) * 1.15)
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
