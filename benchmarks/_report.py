"""The run's verdicts and the tables ``make bench`` prints, from the scenario results (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks._accept_report import accept_table, format_accept_targets
from benchmarks._compare import format_comparison

__all__ = ["capacity", "evaluate_targets", "format_report", "overall_passed"]

Result = Mapping[str, Any]

PROBE_P99_TARGET_MS = 50.0
INLINE_VS_BACKGROUND_TARGET = 20.0


def _get(result: Result | None, *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or not bottom:
        return None
    return round(top / bottom, 2)


def overall_passed(results: Iterable[Result]) -> bool:
    """True when no scenario failed to run and every gated scenario passed its gate."""
    return all(not r.get("error") and r.get("passed") is not False for r in results)


def capacity(ladder: Sequence[Mapping[str, Any]], budget_ms: float) -> float | None:
    """The highest offered rate of the ladder carried with p95 under budget, no failures,
    and at least 90 % of the offered rate sent (Poisson arrivals vary by a few percent);
    None when even the first step fails."""
    carried = None
    for step in ladder:
        ok = (
            step["p95_ms"] is not None
            and step["p95_ms"] < budget_ms
            and step["failures"] == 0
            and step["rps"] >= 0.9 * step["offered"]
        )
        if not ok:
            break
        carried = float(step["offered"])
    return carried


def evaluate_targets(results: Sequence[Result], budget_ms: float) -> dict[str, Any]:
    """The Locust matrix's targets, per reference-app backend, with the figures behind them.
    (The accept group's are ``_accept_report.evaluate_accept_targets``.)"""
    by_id = {r["id"]: r for r in results}
    targets: dict[str, Any] = {}
    for backend in ("sqlite", "postgres"):
        if not any(r["target"] == backend for r in results):
            continue

        def p95(key: str, backend: str = backend) -> float | None:
            value = _get(by_id.get(f"{backend}/{key}"), "latency", "p95_ms")
            return None if value is None else float(value)

        background_open = by_id.get(f"{backend}/background-open")
        ladder = by_id.get(f"{backend}/ladder")
        ladder_steps = _get(ladder, "ladder") or []
        inline = {
            "open": _ratio(p95("inline-open"), p95("background-open")),
            "closed": _ratio(p95("inline-closed"), p95("background-closed")),
        }
        fixed = {
            "rate": _get(background_open, "rate"),
            "rps": _get(background_open, "latency", "rps"),
            "p95_ms": p95("background-open"),
            "failures": _get(background_open, "latency", "failures"),
            "drain_s": _get(background_open, "work", "drain_s"),
            "unfinished": _get(background_open, "work", "unfinished"),
            "ladder_capacity": capacity(ladder_steps, budget_ms) if ladder_steps else None,
            "ladder_drain_s": _get(ladder, "work", "drain_s"),
        }
        probes = {
            r["key"]: _get(r, "probe", "p99_ms")
            for r in results
            if r["target"] == backend and r["model"] != "ladder"
        }
        over = {k: v for k, v in probes.items() if v is None or v >= PROBE_P99_TARGET_MS}

        def met(values: Iterable[float | None], test: Any) -> bool | None:
            present = [v for v in values if v is not None]
            return all(test(v) for v in present) if present else None

        targets[backend] = {
            "inline_p95_over_background_p95": {
                **inline,
                "target": f">= {INLINE_VS_BACKGROUND_TARGET:g}",
                "met": met(
                    [inline["open"], inline["closed"]],
                    lambda v: v >= INLINE_VS_BACKGROUND_TARGET,
                ),
            },
            "open_model_fixed_rate": {
                **fixed,
                "met": (
                    None
                    if fixed["p95_ms"] is None
                    else fixed["p95_ms"] < budget_ms
                    and fixed["failures"] == 0
                    and fixed["drain_s"] is not None
                ),
            },
            "health_probe_p99_ms": {
                "per_scenario": probes,
                "at_or_over_target": over,
                "target": f"< {PROBE_P99_TARGET_MS:g}",
                "met": not over if probes else None,
            },
        }
    return targets


# Formatting ------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _num(value: float | int | None, spec: str = "g") -> str:
    return "-" if value is None else format(value, spec)


def _gate(result: Result) -> str:
    if result.get("error"):
        return "ERROR"
    passed = result.get("passed")
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def _latency_table(results: Sequence[Result]) -> list[str]:
    head = (
        f"{'target':<9}{'scenario':<22}{'model':<7}{'load':>10}{'req/s':>8}{'p50':>7}{'p95':>7}"
        f"{'p99':>7}{'fail':>6} |{'probe p99':>10} |{'gen CPU':>8} |{'backlog':>8}{'drain s':>8}"
        f" | gate"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lat = r.get("latency") or {}
        work = r.get("work") or {}
        drain = work.get("drain_s")
        drain_text = "-" if not work else ("timeout" if drain is None else f"{drain:.1f}")
        lines.append(
            f"{r['target']:<9}{r['key']:<22}{r['model']:<7}{r['load']:>10}"
            f"{_num(lat.get('rps'), '.1f'):>8}{_ms(lat.get('p50_ms')):>7}"
            f"{_ms(lat.get('p95_ms')):>7}{_ms(lat.get('p99_ms')):>7}"
            f"{_num(lat.get('failures')):>6} |{_ms(_get(r, 'probe', 'p99_ms')):>10} |"
            f"{_num(r.get('locust_cpu_share'), '.2f'):>8} |"
            f"{_num(work.get('backlog_at_stop')):>8}{drain_text:>8} | {_gate(r)}"
        )
    return lines


def _triple(values: Mapping[str, float] | None) -> str:
    if not values:
        return "-"
    return "/".join(_ms(values[k]) for k in ("p50", "p95", "p99"))


def _work_table(results: Sequence[Result]) -> list[str]:
    rows = [r for r in results if r.get("work")]
    if not rows:
        return []
    head = (
        f"{'target':<9}{'scenario':<22}{'scheduled':>10}{'done@stop':>10}{'backlog':>8}"
        f"{'drain s':>8} | {'queue delay p50/95/99':>22} | {'completion p50/95/99':>21}"
        f" | webhooks delivered, p50/95/99"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        w = r["work"]
        hooks = w.get("webhooks")
        hook_text = f"{hooks['delivered']}, {_triple(hooks['delivery_ms'])}" if hooks else "-"
        drain = "timeout" if w["drain_s"] is None else f"{w['drain_s']:.1f}"
        lines.append(
            f"{r['target']:<9}{r['key']:<22}{w['scheduled']:>10}{w['finished_at_stop']:>10}"
            f"{w['backlog_at_stop']:>8}{drain:>8} | {_triple(w['queue_delay_ms']):>22} |"
            f" {_triple(w['completion_ms']):>21} | {hook_text}"
        )
    return lines


def _ladder_tables(results: Sequence[Result], budget_ms: float) -> list[str]:
    lines: list[str] = []
    for r in results:
        steps = r.get("ladder")
        if not steps:
            continue
        carried = capacity(steps, budget_ms)
        top = (
            " (the top of the ladder: raise BENCH_LADDER)"
            if carried == steps[-1]["offered"]
            else ""
        )
        lines += [
            "",
            f"{r['target']} ladder, open model ({r['title']}): carried up to"
            f" {_num(carried)}/s with p95 < {budget_ms:g} ms and no failures{top}",
            f"{'offered/s':>10}{'req/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}{'fail':>6}"
            f"{'probe p99':>10}{'tasks done/s':>13}",
        ]
        for step in steps:
            lines.append(
                f"{step['offered']:>10g}{step['rps']:>8.1f}{_ms(step['p50_ms']):>7}"
                f"{_ms(step['p95_ms']):>7}{_ms(step['p99_ms']):>7}{step['failures']:>6}"
                f"{_ms(step['probe_p99_ms']):>10}{_num(step.get('tasks_done_per_s'), '.1f'):>13}"
            )
    return lines


def _mark(met: bool | None) -> str:
    return {True: "[met]    ", False: "[NOT met]", None: "[no data]"}[met]


def _targets(targets: Mapping[str, Any], budget_ms: float) -> list[str]:
    lines = []
    for backend, t in targets.items():
        inline = t["inline_p95_over_background_p95"]
        fixed = t["open_model_fixed_rate"]
        probe = t["health_probe_p99_ms"]
        drained = "NOT" if fixed["drain_s"] is None else f"in {fixed['drain_s']:g} s"
        over = ", ".join(f"{k} {_ms(v)} ms" for k, v in probe["at_or_over_target"].items())
        lines += [
            f"{_mark(inline['met'])} {backend}: inline p95 / background p95:"
            f" open {_num(inline['open'])}x, closed {_num(inline['closed'])}x (target >= 20x)",
            f"{_mark(fixed['met'])} {backend}: open model at {_num(fixed['rate'])}/s:"
            f" {_num(fixed['rps'])} req/s, p95 {_ms(fixed['p95_ms'])} ms,"
            f" {_num(fixed['failures'])} failures, backlog drained {drained};"
            f" the ladder carried up to {_num(fixed['ladder_capacity'])}/s under {budget_ms:g} ms",
            f"{_mark(probe['met'])} {backend}: /health probe p99 < 50 ms in every scenario"
            + (f" (at or over: {over})" if over else ""),
        ]
    return lines


def format_report(summary: Mapping[str, Any]) -> str:
    """The results table, the finished-work table, the ladders, the targets and the verdict."""
    results: Sequence[Result] = summary["scenarios"]
    budget = summary["settings"]["budget_ms"]
    meta = summary.get("machine", {})
    out = [
        f"Latencies in ms; req/s achieved; open model timed from the intended start."
        f" probe: GET /health every {summary['settings']['probe_interval_ms']:g} ms from"
        f" another process. gen CPU: Locust's own CPU, in cores.",
        "",
        *_latency_table(results),
        "",
        "Finished work (reference app: its event log; lab: GET /stats), times in ms",
        *_work_table(results),
        *_ladder_tables(results, budget),
    ]
    if summary.get("accept"):
        out += [
            "",
            "Accept group: raw asyncio client, one uvicorn worker each, access log off; latencies"
            " in ms, fixed rate timed from the intended send; other: non-202 answers and errors",
            *accept_table(summary["accept"]),
        ]
    out += [
        "",
        "Targets (informational: the exit code is the p95 gates')",
        *_targets(summary["targets"], budget),
        *format_accept_targets(summary.get("accept_targets") or []),
        "",
    ]
    if "comparison" in summary:
        out += [*format_comparison(summary["comparison"]), ""]
    gated = [r for r in results if r.get("gated")]
    failed = [r["id"] for r in results if r.get("passed") is False or r.get("error")]
    verdict = "PASS" if summary["passed"] else "FAIL"
    out.append(
        f"{verdict}: {len(gated) - len([f for f in failed if f in {g['id'] for g in gated}])}"
        f" of {len(gated)} gated scenarios have p95 < {budget:g} ms and no failures"
        + (f"; failed or broken: {', '.join(failed)}" if failed else "")
    )
    if meta:
        out.append(
            f"{meta.get('cpu_count')} CPUs; load average {meta.get('loadavg_start')} at start,"
            f" {meta.get('loadavg_end')} at end (the machine is shared)"
        )
    return "\n".join(out)
