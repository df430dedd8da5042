"""``python -m benchmarks.reference RUN [RUN ...]``: the small results folder the notebooks read.

Copies from one or more ``make bench`` folders what the notebooks plot (``summary.json``,
``metadata.json`` and each scenario's ``_requests``, ``_probe``, ``_tasks`` and
``_backlog`` CSV files) into ``results/reference/`` (``--out``). Runs merge scenario by
scenario: a later run's scenario replaces an earlier one with the same id, so a second run
restricted with ``BENCH_ONLY`` can add the PostgreSQL side; the accept group's runs
(``summary.json``'s ``accept``) merge by id the same way. A per-request file longer than
``--max-requests`` rows is sampled: the same rows every time (seeded by the file name), in
their original order. ``metadata.json`` says which runs went in and what was sampled.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._accept_report import evaluate_accept_targets
from benchmarks._plan import file_prefix
from benchmarks._report import evaluate_targets, overall_passed

__all__ = ["KEPT", "main", "make_reference", "sample_lines"]

KEPT = ("requests.csv", "probe.csv", "tasks.csv", "backlog.csv")
"""The per-scenario files the notebooks read; logs, Locust's own CSVs and PNGs stay behind."""
SAMPLED = ("requests.csv",)
"""Only per-request data is sampled: task times and counters make the backlog, and must add up."""
DEFAULT_OUT = Path("results/reference")
DEFAULT_MAX_REQUESTS = 2500


def sample_lines(lines: Sequence[str], keep: int, seed: str) -> list[str]:
    """``keep`` of ``lines`` chosen at random with ``seed``, in their original order."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    if len(lines) <= keep:
        return list(lines)
    chosen = sorted(random.Random(seed).sample(range(len(lines)), keep))
    return [lines[n] for n in chosen]


def _merge(summaries: Sequence[dict[str, Any]], key: str = "scenarios") -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for scenario in summary.get(key) or []:
            merged[scenario["id"]] = scenario  # a later run replaces, in the earlier one's place
    return list(merged.values())


def _clear(out: Path) -> None:
    """Remove what an earlier reduction wrote there (and nothing else)."""
    for name in ("summary.json", "metadata.json"):
        (out / name).unlink(missing_ok=True)
    for suffix in KEPT:
        for path in out.glob(f"*_{suffix}"):
            path.unlink()


def make_reference(
    runs: Sequence[Path], out: Path, *, max_requests: int = DEFAULT_MAX_REQUESTS
) -> dict[str, Any]:
    """Write the reference folder ``out`` from the ``runs``; return its ``reference`` record."""
    if not runs:
        raise ValueError("name at least one results folder")
    summaries, metas = [], []
    for run in runs:
        if not (run / "summary.json").is_file():
            raise FileNotFoundError(f"{run} has no summary.json: not a `make bench` results folder")
        summaries.append(json.loads((run / "summary.json").read_text()))
        meta = run / "metadata.json"
        metas.append(json.loads(meta.read_text()) if meta.is_file() else {})
    budgets = {s["settings"]["budget_ms"] for s in summaries}
    if len(budgets) > 1:
        raise ValueError(f"the runs have different p95 budgets: {sorted(budgets)}")

    scenarios = _merge(summaries)
    source = {s["id"]: run for run, summary in zip(runs, summaries, strict=True)
              for s in summary["scenarios"]}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    sampled: dict[str, dict[str, int]] = {}
    for scenario in scenarios:
        if scenario.get("error"):
            continue
        prefix = file_prefix(scenario["id"])
        for suffix in KEPT:
            path = source[scenario["id"]] / f"{prefix}_{suffix}"
            if not path.is_file():
                continue
            header, *rows = path.read_text().splitlines()
            if suffix in SAMPLED and len(rows) > max_requests:
                sampled[path.name] = {"rows": len(rows), "kept": max_requests}
                rows = sample_lines(rows, max_requests, seed=path.name)
            (out / path.name).write_text("\n".join([header, *rows]) + "\n")

    budget = float(summaries[0]["settings"]["budget_ms"])
    accept = _merge(summaries, "accept")  # the accept group's runs, merged by id the same way
    summary = {
        **{k: v for k, v in summaries[0].items() if k != "comparison"},  # against itself: none
        "scenarios": scenarios,
        "accept": accept,
        "targets": evaluate_targets(scenarios, budget),
        "accept_targets": evaluate_accept_targets(accept),
        "passed": overall_passed(scenarios),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    record: dict[str, Any] = {
        "made_by": "python -m benchmarks.reference " + " ".join(r.name for r in runs),
        "runs": [
            {
                "folder": run.name,
                "date": meta.get("date"),
                "revision": meta.get("revision"),
                "settings": meta.get("settings", s["settings"]),
                "loadavg_start": meta.get("loadavg_start"),
                "loadavg_end": meta.get("loadavg_end"),
                "scenarios": [x["id"] for x in scenarios if source[x["id"]] == run],
            }
            for run, meta, s in zip(runs, metas, summaries, strict=True)
        ],
        "max_requests": max_requests,
        "sampled": sampled,
        "note": (
            f"Sampled to {max_requests} random rows each (seeded by file name, order kept):"
            f" {', '.join(sorted(sampled))}; summary.json holds the percentiles of every request."
            if sampled
            else "Nothing was sampled."
        ),
    }
    (out / "metadata.json").write_text(
        json.dumps({**metas[0], "reference": record}, indent=2) + "\n"
    )
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reference", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="results/local/<timestamp> folders")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        help=f"sample per-request files above this many rows (default {DEFAULT_MAX_REQUESTS})",
    )
    args = parser.parse_args(argv)
    if args.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    try:
        record = make_reference(args.runs, args.out, max_requests=args.max_requests)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"{args.out}: {size / 1e6:.2f} MB; sampled {len(record['sampled'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
