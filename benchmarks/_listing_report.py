"""``make bench-listing``'s report: one line per case, and the Markdown with every plan."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._stats import percentile
from reference_app.db.explain import QueryPlan

__all__ = ["HEADER", "CaseResult", "line", "markdown", "write_report"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    backend: str
    tasks: int
    case: str
    query: str
    requests: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    items: int
    store_p50_ms: float
    plan: list[str]
    index: str | None
    sorts: bool
    full_scans: list[str]
    db_ms: float | None
    """PostgreSQL's ``Execution Time`` under ``EXPLAIN ANALYZE``; None on SQLite."""
    seed_seconds: float
    """How long seeding this database took (the same for each of its cases)."""

    @classmethod
    def of(
        cls,
        backend: str,
        tasks: int,
        case: str,
        query: str,
        *,
        times: Sequence[float],
        items: int,
        store_times: Sequence[float],
        plan: QueryPlan,
        seed_seconds: float,
    ) -> CaseResult:
        """The figures of one case from its raw timings (ms) and its plan."""
        return cls(
            backend=backend,
            tasks=tasks,
            case=case,
            query=query,
            requests=len(times),
            p50_ms=round(percentile(times, 50), 2),
            p95_ms=round(percentile(times, 95), 2),
            max_ms=round(max(times), 2),
            items=items,
            store_p50_ms=round(percentile(store_times, 50), 2),
            plan=plan.steps,
            index=plan.indexes[0] if plan.indexes else None,
            sorts=plan.sorts,
            full_scans=plan.full_scans,
            db_ms=plan.raw[0].get("Execution Time") if backend == "postgres" else None,
            seed_seconds=round(seed_seconds, 1),
        )


HEADER = (
    f"{'database':8} {'tasks':>9}  {'case':32} {'p50':>6} {'p95':>6} {'max':>6} "
    f"{'store':>6} {'db':>6} {'items':>5}  plan"
)


def line(result: CaseResult) -> str:
    db = f"{result.db_ms:6.2f}" if result.db_ms is not None else f"{'-':>6}"
    plan = result.index or "no index"
    if result.sorts:
        plan += " + SORT"
    if result.full_scans:
        plan += " + FULL SCAN of " + ", ".join(result.full_scans)
    return (
        f"{result.backend:8} {result.tasks:>9,}  {result.case:32} {result.p50_ms:6.2f} "
        f"{result.p95_ms:6.2f} {result.max_ms:6.2f} {result.store_p50_ms:6.2f} {db} "
        f"{result.items:>5}  {plan}"
    )


def markdown(results: Sequence[CaseResult], meta: Mapping[str, Any]) -> str:
    lines = [
        "# GET /tasks at scale",
        "",
        f"{meta['date']}; {meta['cpus']} CPUs, load average {meta['load_average']['start']} "
        f"at start and {meta['load_average']['end']} at end; "
        f"{meta['requests']} requests per case, one at a "
        "time, after a warm-up; latencies in ms. **store**: `TaskStore.list_tasks` p50 in "
        "the benchmark's process (no HTTP); **db**: PostgreSQL's execution time under "
        "`EXPLAIN ANALYZE`.",
        "",
        "```text",
        HEADER,
        *(line(r) for r in results),
        "```",
        "",
        "## Seeding",
        "",
        *sorted(
            {f"- {r.backend}, {r.tasks:,} tasks: {r.seed_seconds:.1f} s" for r in results},
            key=lambda text: (text.split(",")[0], len(text), text),
        ),
        "",
        "## Plans",
        "",
    ]
    for r in results:
        lines += [f"- {r.backend}, {r.tasks:,} tasks, {r.case} (`{r.query}`):", ""]
        lines += [f"      {step}" for step in r.plan] + [""]
    return "\n".join(lines)


def write_report(folder: Path, results: Sequence[CaseResult], meta: Mapping[str, Any]) -> None:
    """``report.json`` (every figure and plan) and ``report.md`` in ``folder``."""
    report = {"meta": meta, "results": [asdict(r) for r in results]}
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (folder / "report.md").write_text(markdown(results, meta) + "\n")
