"""This run against the committed reference run (``results/reference/summary.json``), pure.

For each scenario (and accept-group run) in both: new / reference for its p95 and its
rates. A ratio past the tolerance is flagged, and only on the same kind of machine (the
same CPU count and architecture); a flag is a prompt to look, and never fails the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "P95_TOLERANCE",
    "RATE_TOLERANCE",
    "compare",
    "format_comparison",
    "load_reference",
    "machine_kind",
]

P95_TOLERANCE = 1.5
"""Flagged when a p95 is more than 1.5x the reference's."""
RATE_TOLERANCE = 0.67
"""Flagged when a rate (req/s, 202/s, tasks finished/s) is below 0.67x the reference's."""

Summary = Mapping[str, Any]
# (label, path in the result, lower is better)
_SCENARIO_METRICS = (("p95", ("latency", "p95_ms"), True), ("req/s", ("latency", "rps"), False))
_ACCEPT_METRICS = (
    ("p95", ("p95_ms",), True),
    ("202/s", ("accepted_per_s",), False),
    ("finished/s", ("finished_during_per_s",), False),
    ("unloaded max/s", ("unloaded_max_per_s",), False),
)


def load_reference(folder: Path) -> Summary | None:
    """The reference run's summary, with its metadata's machine if the summary lacks one."""
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary: dict[str, Any] = json.loads(path.read_text())
    meta_path = folder / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    summary.setdefault("machine", {k: meta[k] for k in ("cpu_count", "platform") if k in meta})
    summary["date"] = meta.get("date")
    return summary


def machine_kind(machine: Mapping[str, Any]) -> str:
    """``2 CPUs, x86_64``: what must match for two runs to be compared."""
    arch = machine.get("arch") or _arch(machine.get("platform") or "")
    return f"{machine.get('cpu_count')} CPUs" + (f", {arch}" if arch else "")


def _arch(platform: str) -> str | None:
    known = ("x86_64", "aarch64", "arm64", "i686", "ppc64le", "s390x")
    return next((a for a in known if a in platform), None)


def _get(result: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return None if value is None else float(value)


def _metrics(new: Mapping[str, Any], old: Mapping[str, Any], metrics: Any) -> list[dict[str, Any]]:
    found = []
    for label, path, lower_better in metrics:
        a, b = _get(new, path), _get(old, path)
        if a is None or not b:
            continue
        ratio = round(a / b, 2)
        worse = ratio > P95_TOLERANCE if lower_better else ratio < RATE_TOLERANCE
        found.append({"metric": label, "new": a, "reference": b, "ratio": ratio, "worse": worse})
    return found


def compare(summary: Summary, reference: Summary | None) -> dict[str, Any]:
    """Per shared scenario, its ratios new / reference; ``flagged`` when one is past its
    tolerance on the same kind of machine."""
    if reference is None:
        return {"reference": None, "rows": []}
    here, there = machine_kind(summary.get("machine", {})), machine_kind(reference["machine"])
    same = here == there
    mine, theirs = summary.get("settings") or {}, reference.get("settings") or {}
    knobs = ("quick", "seconds", "accept_seconds")
    differ = [k for k in knobs if k in mine and k in theirs and mine[k] != theirs[k]]
    rows = []
    for key, metrics in (("scenarios", _SCENARIO_METRICS), ("accept", _ACCEPT_METRICS)):
        old = {r["id"]: r for r in reference.get(key) or [] if not r.get("error")}
        for run in summary.get(key) or []:
            if run.get("error") or run["id"] not in old:
                continue
            found = _metrics(run, old[run["id"]], metrics)
            if found:
                flagged = same and any(m["worse"] for m in found)
                rows.append({"id": run["id"], "metrics": found, "flagged": flagged})
    return {
        "reference": {"date": reference.get("date"), "machine": there,
                      "loadavg_start": reference["machine"].get("loadavg_start")},
        "machine": here,
        "same_machine_kind": same,
        "settings_differ": differ,
        "tolerance": {"p95": P95_TOLERANCE, "rate": RATE_TOLERANCE},
        "rows": rows,
        "flagged": [r["id"] for r in rows if r["flagged"]],
    }  # fmt: skip


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def format_comparison(comparison: Mapping[str, Any]) -> list[str]:
    ref = comparison["reference"]
    if ref is None:
        return ["Compared with the reference run: no results/reference/summary.json to compare"]
    same = comparison["same_machine_kind"]
    lines = [
        f"Compared with the reference run ({ref['date'] or 'undated'}, {ref['machine']},"
        f" load average {ref['loadavg_start']} at its start; this run: {comparison['machine']})",
        f"new / reference; flagged (!) when a p95 is over {P95_TOLERANCE:g}x or a rate under"
        f" {RATE_TOLERANCE:g}x; a flag does not fail the run"
        + ("" if same else "; a different machine kind: nothing is flagged"),
    ]
    if comparison.get("settings_differ"):
        lines.append(
            f"(settings differ from the reference's: {', '.join(comparison['settings_differ'])};"
            " BENCH_QUICK or shorter loads make the ratios rougher)"
        )
    if not comparison["rows"]:
        lines.append("  no scenario in both runs")
    for row in comparison["rows"]:
        parts = [
            f"{m['metric']} {_num(m['new'])}/{_num(m['reference'])} {m['ratio']:g}x"
            + (" !" if same and m["worse"] else "")
            for m in row["metrics"]
        ]
        lines.append(f"{'!' if row['flagged'] else ' '} {row['id']:<28} " + "; ".join(parts))
    flagged = comparison["flagged"]
    lines.append(
        f"{len(flagged)} of {len(comparison['rows'])} compared past the tolerance"
        + (f": {', '.join(flagged)}" if flagged else "")
    )
    return lines
