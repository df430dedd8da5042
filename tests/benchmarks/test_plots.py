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
    ROOT,
    BenchRun,
    budget_break,
    durable_accept,
    export,
    fifo_delays_ms,
    knee,
    ladder,
    latency_spectrum,
    omission_gap,
    percentile_bars,
    probe_timeline,
    render_all,
    response_vs_finish,
    results_path,
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


def xmark(ax: Axes, label: str) -> float:
    line = next(line for line in ax.lines if str(line.get_label()).startswith(label))
    return float(np.asarray(line.get_xdata(), dtype=float)[0])


def test_the_ladder_marks_the_knee_where_the_budget_breaks_and_what_was_carried(
    run: BenchRun,
) -> None:
    figure = ladder(run, "sqlite/ladder")
    latency_ax, rate_ax = figure.axes[:2]
    p95 = next(line for line in latency_ax.lines if line.get_label() == "p95")
    assert ydata(p95) == [5.0, 8.0, 90.0, 400.0]
    assert xmark(latency_ax, "knee") == 50.0  # p95 more than doubles after 50/s
    assert xmark(latency_ax, "over budget from") == 200.0
    assert xmark(rate_ax, "carried") == 100.0
    assert budget_lines(figure) == [200.0]


def step(offered: float, p95: float | None) -> dict[str, Any]:
    return {"offered": offered, "p95_ms": p95}


def test_the_knee_is_the_last_rate_before_p95_doubles() -> None:
    assert knee([step(50, 10.0), step(100, 19.0), step(200, 20.0), step(400, 90.0)]) == 200.0
    assert knee([step(50, 10.0), step(100, None)]) == 50.0  # nothing answered: bent
    assert knee([step(50, 10.0), step(100, 12.0)]) is None
    assert knee([]) is None


def test_the_budget_breaks_at_the_first_rate_at_or_over_it() -> None:
    steps = [step(50, 10.0), step(100, 200.0), step(200, 150.0)]
    assert budget_break(steps, 200.0) == 100.0
    assert budget_break(steps, 201.0) is None


def test_the_omission_gap_shades_between_the_closed_and_the_open_curve(run: BenchRun) -> None:
    figure = omission_gap(run, "sqlite/health-closed", "sqlite/health-open")
    (ax,) = figure.axes
    styles = [line.get_linestyle() for line in ax.lines if "requests" in str(line.get_label())]
    assert styles == ["--", "-"]
    assert [c.get_label() for c in ax.collections] == ["what the closed loop did not see"]
    assert budget_lines(figure) == [200.0]
    assert "p99: 3 ms closed, 2 ms open" in ax.texts[0].get_text()


def counter(at_s: float, scheduled: int, running: int, finished: int) -> dict[str, float]:
    return {"at_s": at_s, "scheduled": scheduled, "running": running, "finished": finished,
            "backlog": scheduled - finished}  # fmt: skip


def test_fifo_delays_take_the_kth_task_to_start_and_finish_kth() -> None:
    # two tasks at 0 s, one token: the second starts when the first ends at 1 s
    counters = [counter(0, 2, 1, 0), counter(1, 2, 1, 1), counter(2, 2, 0, 2)]
    queue, completion = fifo_delays_ms(counters)
    assert queue == [0.0, 1000.0]
    assert completion == [1000.0, 2000.0]


def test_unfinished_tasks_have_no_completion() -> None:
    queue, completion = fifo_delays_ms([counter(0.0, 3, 1, 0), counter(0.5, 3, 1, 1)])
    assert queue == [0.0, 500.0]
    assert completion == [500.0]


def test_the_lab_response_against_finish_estimates_from_counters_and_draws_the_tokens(
    run: BenchRun,
) -> None:
    figure = response_vs_finish(run, "lab/blocking-open", workers=40)
    bars_ax, backlog_ax = figure.axes[:2]
    labels = [t.get_text() for t in bars_ax.get_xticklabels()]
    assert labels == ["response", "queue delay\n(estimated)", "completion\n(estimated)"]
    assert {str(line.get_label()) for line in backlog_ax.lines} >= {
        "accepted, not finished",
        "running",
        "can run at once: 40",
    }


def test_export_writes_a_png_and_skips_without_a_folder(run: BenchRun, tmp_path: Path) -> None:
    figure = percentile_bars(run)
    assert export(figure, "", "x.png") is None
    target = export(figure, tmp_path / "figures", "x.png")
    assert target == tmp_path / "figures" / "x.png"
    assert target.read_bytes()[:4] == b"\x89PNG"


def test_a_relative_results_path_is_taken_from_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert results_path("results/reference") == ROOT / "results" / "reference"
    (tmp_path / "here").mkdir()
    assert results_path("here") == Path("here")


def test_describe_names_the_run_and_what_was_sampled(run: BenchRun) -> None:
    meta = {
        "date": "2026-11-28T18:30:00+00:00",
        "revision": "abc1234",
        "cpu_count": 2,
        "versions": {"python": "3.11.9"},
        "reference": {"runs": [{"folder": "20261128T182340Z"}], "note": "Sampled."},
    }
    (run.path / "metadata.json").write_text(json.dumps(meta))
    text = run.describe()
    for part in ("2026-11-28T18:30:00+00:00", "abc1234", "2 CPUs", "20261128T182340Z", "Sampled."):
        assert part in text


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
    series = [line for line in timeline.axes[0].lines if "(lab)" in str(line.get_label())]
    assert [line.get_label() for line in series] == ["blocking-open (lab)"]  # its title
    accept = durable_accept(run)
    names = [t.get_text() for t in accept.axes[1].get_xticklabels()]
    assert names == ["sqlite", "memory only (lab)"]
    assert [round(h) for h in heights(accept.axes[1])] == [15, 15]


def test_require_names_what_is_missing(run: BenchRun) -> None:
    run.require("sqlite/health-open", "lab/blocking-open")
    with pytest.raises(LookupError, match="no sqlite/ladder-x, lab/nothing: this needs a full"):
        run.require("sqlite/ladder-x", "sqlite/health-open", "lab/nothing")
