"""The accept group's targets (informational: they never change the exit code) and its table.

Pure functions over the runs ``_accept`` returns (and ``summary.json`` keeps under
``"accept"``). Every target is one ratio of two numbers measured in the same run.

The floor of the targets is ``floor-state``, the reference app with its store swapped on
``app.state``. The ``floor`` swapped through ``dependency_overrides`` is what the issue
asked for, but FastAPI rebuilds every dependency of every request while any override is
set, which cost the override floor 1.85x in throughput (1,368 against 2,526 accepted/s,
one ``make bench`` run on 2026-12-04): it is printed as a measurement, not used as a floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["accept_table", "evaluate_accept_targets", "format_accept_targets"]

Run = Mapping[str, Any]

ACCEPT_VS_FLOOR = 0.60
"""Durable accepted/s at least 60 % of the floor's, closed loop, back to back."""
P95_VS_FLOOR = 1.5
"""At a fixed rate, the durable 202's p95 at most 1.5x the floor's at the same rate."""
FLOOR_VS_PLAIN = 0.70
"""The floor's throughput at least 70 % of a plain FastAPI route's, closed loop."""
FINISHED_VS_OFFERED = 0.90
"""Tasks finished per second while the load runs: at least 90 % of the rate offered."""
OVERLOAD_VS_UNLOADED = 0.80
"""Under 3x the sustainable rate, the finish rate stays at least 80 % of the unloaded maximum."""


def _value(runs: Mapping[str, Run], run_id: str, key: str) -> float | None:
    run = runs.get(run_id)
    if not run or run.get("error"):
        return None
    value = run.get(key)
    return None if value is None else float(value)


def _target(
    name: str, label: str, measured: float | None, baseline: float | None, op: str, goal: float
) -> dict[str, Any]:
    ratio = None if measured is None or not baseline else round(measured / baseline, 2)
    met = None if ratio is None else (ratio >= goal if op == ">=" else ratio <= goal)
    return {"name": name, "label": label, "measured": measured, "baseline": baseline,
            "ratio": ratio, "target": f"{op} {goal:g}", "met": met}  # fmt: skip


def _backends(runs: Sequence[Run]) -> list[str]:
    found = dict.fromkeys(r["id"].split("/", 1)[0] for r in runs)
    return [b for b in found if b not in ("plain", "floor", "floor-state")]


def evaluate_accept_targets(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Each target with its two numbers, their ratio and whether it is met (None: no data)."""
    by_id = {r["id"]: r for r in runs}
    if not by_id:
        return []
    closed = next((r.get("connections") for r in runs if r["id"].endswith("accept-closed")), None)
    conns = f"{closed} connections" if closed else "closed loop"
    override = _target(
        "override_cost",
        "what dependency_overrides costs FastAPI (info): floor through app.state accepted/s / "
        "floor through dependency_overrides",
        _value(by_id, "floor-state/accept-closed", "accepted_per_s"),
        _value(by_id, "floor/accept-closed", "accepted_per_s"),
        ">=",
        1.0,
    )
    override["target"], override["met"] = "none, a measurement", None
    # The targets' floor is the one without an override: the request path the app serves.
    targets = [
        _target(
            "floor_vs_plain",
            f"floor accepted/s / plain FastAPI route's, {conns} back to back",
            _value(by_id, "floor-state/accept-closed", "accepted_per_s"),
            _value(by_id, "plain/accept-closed", "accepted_per_s"),
            ">=",
            FLOOR_VS_PLAIN,
        ),
    ]
    for b in _backends(runs):
        rate = _value(by_id, f"{b}/accept-fixed", "rate")
        at = f"{rate:g}/s" if rate else "a fixed rate"
        finish = by_id.get(f"{b}/finished-work") or {}
        finish_at = f"{finish.get('offered_per_s', 0):g}/s, io_ms={finish.get('io_ms')}"
        targets += [
            _target(
                f"{b}_accept_vs_floor",
                f"{b}: durable accepted/s / floor's, {conns} back to back",
                _value(by_id, f"{b}/accept-closed", "accepted_per_s"),
                _value(by_id, "floor-state/accept-closed", "accepted_per_s"),
                ">=",
                ACCEPT_VS_FLOOR,
            ),
            _target(
                f"{b}_p95_vs_floor",
                f"{b}: durable 202 p95 / floor's p95 (ms), both at {at} from the intended send",
                _value(by_id, f"{b}/accept-fixed", "p95_ms"),
                _value(by_id, "floor-state/accept-fixed", "p95_ms"),
                "<=",
                P95_VS_FLOOR,
            ),
            _commit_alone_vs_floor(b, by_id, at),
            _target(
                f"{b}_finished_vs_offered",
                f"{b}: tasks finished/s while the load ran / offered ({finish_at})",
                _value(by_id, f"{b}/finished-work", "finished_during_per_s"),
                _value(by_id, f"{b}/finished-work", "offered_per_s"),
                ">=",
                FINISHED_VS_OFFERED,
            ),
            _target(
                f"{b}_overload_vs_unloaded",
                f"{b}: finished/s under 3x the sustainable rate / unloaded maximum finished/s",
                _value(by_id, f"{b}/overload", "finished_during_per_s"),
                _value(by_id, f"{b}/overload", "unloaded_max_per_s"),
                ">=",
                OVERLOAD_VS_UNLOADED,
            ),
            _every_202_finished(b, by_id),
            _scrape_cost(b, by_id, "health_p99_ms", "/health p99"),
            _scrape_cost(b, by_id, "p99_ms", "202 p99"),
        ]
    return [*targets, override]


def _scrape_cost(backend: str, by_id: Mapping[str, Run], key: str, what: str) -> dict[str, Any]:
    """What a 1 Hz /metrics scrape costs (``_accept_scrape``): the same load with and without it."""
    rate = _value(by_id, f"{backend}/scrape-none", "rate")
    at = f"{rate:g}/s" if rate else "a fixed rate"
    row = _target(
        f"{backend}_scrape_{key.removesuffix('_ms')}",
        f"{backend}: {what} with a 1 Hz GET /metrics scrape / without (ms), under {at} of 202s "
        "(info: what the scrape costs)",
        _value(by_id, f"{backend}/scrape-1hz", key),
        _value(by_id, f"{backend}/scrape-none", key),
        "<=",
        1.0,
    )
    row["target"], row["met"] = "none, a measurement", None
    return row


def _commit_alone_vs_floor(backend: str, by_id: Mapping[str, Run], at: str) -> dict[str, Any]:
    """A measurement beside the p95 target: one INSERT + COMMIT alone, at the same rate,
    against the floor's whole request. Over the target's 1.5, no request path that commits
    before its 202 can meet it."""
    row = _target(
        f"{backend}_commit_alone_vs_floor",
        f"{backend}: one INSERT + COMMIT alone, p95 / floor's 202 p95 (ms), both at {at} "
        "(info: the database's own share of the p95 target)",
        _value(by_id, f"{backend}/accept-fixed", "commit_alone_p95_ms"),
        _value(by_id, "floor-state/accept-fixed", "p95_ms"),
        "<=",
        P95_VS_FLOOR,
    )
    row["target"], row["met"] = "none, a measurement", None
    return row


def _every_202_finished(backend: str, by_id: Mapping[str, Run]) -> dict[str, Any]:
    """Not a ratio to reach but a check: every 202 of the accept runs is a finished task."""
    checks = [
        by_id[i]["tasks"]
        for i in (f"{backend}/accept-closed", f"{backend}/accept-fixed")
        if i in by_id and not by_id[i].get("error") and by_id[i].get("tasks")
    ]
    accepted = sum(c["accepted"] for c in checks)
    succeeded = sum(c["succeeded"] for c in checks)
    row = _target(
        f"{backend}_every_202_finished",
        f"{backend}: tasks finished / 202s of the two accept runs (after the drain)",
        float(succeeded) if checks else None,
        float(accepted) if checks else None,
        ">=",
        1.0,
    )
    row["met"] = all(c["every_202_finished"] for c in checks) if checks else None
    return row


# Formatting ------------------------------------------------------------------------


def _n(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _mark(met: bool | None, target: str = "") -> str:
    if met is None and target.startswith("none"):
        return "[info]   "
    return {True: "[met]    ", False: "[NOT met]", None: "[no data]"}[met]


def format_accept_targets(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per target: the two numbers, their ratio, the target, met or not."""
    return [
        f"{_mark(t['met'], t['target'])} {t['label']}: {_n(t['measured'])} / {_n(t['baseline'])}"
        f" = {'-' if t['ratio'] is None else format(t['ratio'], 'g')} (target {t['target']})"
        for t in targets
    ]


def _load(run: Run) -> str:
    if run.get("model") == "closed":
        return f"{run.get('connections')} conn"
    return f"{run.get('rate', 0):g}/s"


def accept_table(runs: Sequence[Run]) -> list[str]:
    """The group's runs: what the client saw, and for the reference app the work."""
    if not runs:
        return []
    head = (
        f"{'run':<28}{'load':>9}{'sent/s':>8}{'202/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}"
        f"{'other':>6}{'srv CPU':>8} | {'done/in db':>12}{'drain s':>8} | finished/s during, after"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        if r.get("error"):
            lines.append(f"{r['id']:<28} ERROR {r['error'][:200]}")
            continue
        other = sum(v for k, v in r["statuses"].items() if k != "202") + sum(r["errors"].values())
        tasks = r.get("tasks")
        done = f"{tasks['succeeded']}/{tasks['tasks_in_db']}" if tasks else "-"
        drain = "-" if not tasks else ("timeout" if r["drain_s"] is None else f"{r['drain_s']:g}")
        finished = (
            f"{_n(r['finished_during_per_s'])}, {_n(r['finished_after_per_s'])}"
            if "finished_during_per_s" in r
            else "-"
        )
        if "unloaded_max_per_s" in r:
            finished += f" (unloaded max {_n(r['unloaded_max_per_s'])})"
        lines.append(
            f"{r['id']:<28}{_load(r):>9}{_n(r['sent_per_s']):>8}{_n(r['accepted_per_s']):>8}"
            f"{_n(r['p50_ms']):>7}{_n(r['p95_ms']):>7}{_n(r['p99_ms']):>7}{other:>6}"
            f"{_n(r['server_cpu_share']):>8} | {done:>12}{drain:>8} | {finished}"
        )
    return lines
