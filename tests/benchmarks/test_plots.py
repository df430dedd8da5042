"""benchmarks._plots: figures from a results folder, checked by what they draw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from benchmarks._plots import (
    BenchRun,
    durable_accept,
    ladder,
    latency_spectrum,
    percentile_bars,
    probe_timeline,
    render_all,
    response_vs_finish,
)
from benchmarks._samples import Sample, write_samples
from benchmarks._stats import summarize
from benchmarks._work import TaskTimes, summarize_tasks, write_tasks

START = 1_800_000_000.0
SECONDS = 4.0


def scenario(target: str, key: str, model: str, ms: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"{target}/{key}",
        "target": target,
        "key": key,
        "title": key,
        "model": model,
        "load": "20/s",
        "users": 1,
        "rate": 20.0,
        "seconds": SECONDS,
        "window": {"start": START, "end": START + SECONDS},
        "error": None,
        "work": None,
        "ladder": None,
        **extra,
    }


def write_run(path: Path) -> BenchRun:
    """A small results folder in the format ``make bench`` writes."""
    scenarios = []

    def add(target: str, key: str, model: str, ms: list[float], **extra: Any) -> dict[str, Any]:
        prefix = path / f"{target}-{key}"
        samples = [
            Sample(START + n * 0.05, model, "U", "GET", "/x", v, True, True)
            for n, v in enumerate(ms)
        ]
        write_samples(Path(f"{prefix}_requests.csv"), samples)
        probe = [
            Sample(START + n * 0.05, "probe", "probe", "GET", "/health", 2.0 + n, True, False)
            for n in range(10)
        ]
        write_samples(Path(f"{prefix}_probe.csv"), probe)
        result = scenario(target, key, model, ms, **extra)
        result["latency"] = summarize(samples, SECONDS).as_dict()
        scenarios.append(result)
        return result

    add("sqlite", "health-closed", "closed", [1.0, 2.0, 3.0] * 20)
    add("sqlite", "health-open", "open", [1.0, 1.5, 2.0] * 20)
    tasks = [TaskTimes(START + n * 0.05, START + n * 0.05 + 0.01, START + n * 0.05 + 0.31,
                       "succeeded") for n in range(80)]  # fmt: skip
    write_tasks(path / "sqlite-background-open_tasks.csv", tasks)
    add("sqlite", "background-open", "open", [5.0, 8.0, 12.0] * 20,
        work=summarize_tasks(tasks, load_end=START + SECONDS))  # fmt: skip
    steps = [
        {"offered": rate, "rps": rate, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 2,
         "failures": 0, "probe_p99_ms": 3.0, "tasks_done_per_s": min(rate, 100.0)}
        for rate, p95 in ((25, 5.0), (50, 8.0), (100, 90.0), (200, 400.0))
    ]  # fmt: skip
    add("sqlite", "ladder", "ladder", [5.0] * 60, ladder=steps, capacity=100.0)
    add("sqlite", "accept-capacity", "closed", [3.0, 4.0] * 30)
    add("lab", "accept-capacity", "closed", [1.0, 1.2] * 30)
    add("lab", "blocking-open", "open", [2.0] * 20)
    (path / "lab-blocking-open_backlog.csv").write_text(
        "at_s,scheduled,running,finished,backlog\n"
        f"{START + 0.5},2,1,1,1\n{START + 1.0},5,1,2,3\n{START + 5.0},20,0,20,0\n"
    )
    summary = {"settings": {"budget_ms": 200.0}, "scenarios": scenarios}
    (path / "summary.json").write_text(json.dumps(summary))
    return BenchRun.load(path)


@pytest.fixture
def run(tmp_path: Path) -> BenchRun:
    return write_run(tmp_path)


def ydata(line: Line2D) -> list[float]:
    return [float(v) for v in np.asarray(line.get_ydata(), dtype=float)]


def heights(ax: Axes) -> list[float]:
    return [cast(Rectangle, p).get_height() for p in ax.patches]


def budget_lines(figure: Figure) -> list[float]:
    return [
        ydata(line)[0]
        for ax in figure.axes
        for line in ax.lines
        if str(line.get_label()).startswith("budget")
    ]


def test_render_all_writes_a_png_per_figure_that_has_data(run: BenchRun) -> None:
    written = {p.name for p in render_all(run.path)}
    assert written == {
        "percentiles.png",
        "latency_spectrum.png",
        "ladder-sqlite-ladder.png",
        "work-sqlite-background-open.png",
        "probe_timeline.png",
        "durable_accept.png",
    }
    for name in written:
        assert (run.path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_percentile_bars_draw_three_bars_per_scenario_the_budget_and_the_rate(
    run: BenchRun,
) -> None:
    figure = percentile_bars(run)
    (ax,) = figure.axes
    ids = ["sqlite/health-closed", "sqlite/health-open", "sqlite/background-open"]
    assert len(ax.patches) == 3 * len(ids)
    assert max(heights(ax)) == 12.0  # background p99
    assert budget_lines(figure) == [200.0]
    assert ax.get_yscale() == "log"
    assert "ms" in ax.get_ylabel()
    assert {t.get_text() for t in ax.texts} == {"15/s"}  # 60 requests in 4 s


def test_the_spectrum_dashes_closed_loop_and_draws_open_model_solid(run: BenchRun) -> None:
    figure = latency_spectrum(run)
    styles = {
        str(line.get_label()).split(" (")[0]: line.get_linestyle()
        for line in figure.axes[0].lines
        if not str(line.get_label()).startswith("budget")
    }
    assert styles == {
        "sqlite health-closed": "--",
        "sqlite health-open": "-",
        "sqlite background-open": "-",
    }


def test_the_ladder_marks_what_was_carried_and_where_the_budget_breaks(run: BenchRun) -> None:
    figure = ladder(run, "sqlite/ladder")
    latency_ax = figure.axes[0]
    p95 = next(line for line in latency_ax.lines if line.get_label() == "p95")
    assert ydata(p95) == [5.0, 8.0, 90.0, 400.0]
    carried = next(line for line in latency_ax.lines if "carried" in str(line.get_label()))
    assert np.asarray(carried.get_xdata(), dtype=float)[0] == 100.0
    assert budget_lines(figure) == [200.0]


def test_response_against_finish_shows_the_fast_answer_and_the_slow_end(run: BenchRun) -> None:
    figure = response_vs_finish(run, "sqlite/background-open")
    bars_ax, backlog_ax = figure.axes[:2]
    labels = [t.get_text() for t in bars_ax.get_xticklabels()]
    assert labels == ["response", "queue delay", "completion"]
    assert round(max(heights(bars_ax))) == 310  # completion: 300 ms of work after a 10 ms wait
    (backlog,) = backlog_ax.lines
    assert max(ydata(backlog)) == 7  # a task every 50 ms, each taking 310 ms


def test_the_backlog_of_the_lab_comes_from_its_counters(run: BenchRun) -> None:
    assert run.backlog("lab/blocking-open") == [(0.5, 1), (1.0, 3), (5.0, 0)]


def test_probe_timeline_and_durable_accept_draw_one_series_per_scenario(run: BenchRun) -> None:
    timeline = probe_timeline(run)
    series = [line for line in timeline.axes[0].lines if str(line.get_label()).startswith("lab")]
    assert [line.get_label() for line in series] == ["lab blocking-open"]
    accept = durable_accept(run)
    names = [t.get_text() for t in accept.axes[1].get_xticklabels()]
    assert names == ["sqlite", "memory only (lab)"]
    assert [round(h) for h in heights(accept.axes[1])] == [15, 15]
