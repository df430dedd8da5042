"""``python -m reliability`` (``make reliability``): every scenario on both databases, a table.

Exits 1 if any accepted task was lost or any scenario raised (including a PostgreSQL
scenario whose server is unreachable).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from reliability._databases import fresh_database
from reliability._outcome import Scenario
from reliability._report import Row, failed, text_table, write_report
from reliability._served import ROOT

__all__ = ["all_scenarios", "main", "run_scenario"]

# Modules that export ``SCENARIOS: list[Scenario]``; a missing one is skipped with a note.
SCENARIO_MODULES = (
    "reliability.faults",  # crashes, shutdowns, database and webhook trouble
    "reliability.deadlines",  # attempts stuck past their deadline
    "reliability.inputs",  # hostile requests
    "reliability.fuzz",  # schemathesis
    "reliability.isolation",  # org B probes org A
    "reliability.ssrf_live",  # blocked webhook URLs through the API
    "reliability.secret_logs",  # secrets searched in the JSON log
    "reliability.soak",  # the load held
)


def all_scenarios() -> tuple[list[Scenario], list[str]]:
    """Every scenario the modules export, and a note for each module that is missing."""
    scenarios: list[Scenario] = []
    missing: list[str] = []
    for name in SCENARIO_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            missing.append(name)
            continue
        scenarios.extend(module.SCENARIOS)
    return scenarios, missing


def run_scenario(scenario: Scenario, backend: str, *, long: bool) -> Row:
    """One scenario on a fresh database of ``backend``; an exception becomes the row's error."""
    started = time.monotonic()
    try:
        with fresh_database(backend) as url:
            outcome = scenario.run(url, long=long)
    except Exception as exc:
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
        return Row(scenario.name, backend, error=error, seconds=time.monotonic() - started)
    return Row(scenario.name, backend, outcome, seconds=time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the bounded variants only")
    parser.add_argument(
        "--only", action="append", help="run the scenarios whose name contains this (repeatable)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "local" / "reliability")
    args = parser.parse_args(argv)

    scenarios, missing = all_scenarios()
    if args.only:
        scenarios = [s for s in scenarios if any(text in s.name for text in args.only)]
    for name in missing:
        print(f"note: {name} is not there yet; its scenarios are skipped", file=sys.stderr)
    rows: list[Row] = []
    for scenario in scenarios:
        for backend in scenario.backends:
            if args.backend and backend not in args.backend:
                continue
            print(f"== {scenario.name} on {backend}", file=sys.stderr, flush=True)
            row = run_scenario(scenario, backend, long=not args.short)
            print(f"   {'FAILED' if row.failed else 'ok'} in {row.seconds:.0f} s", file=sys.stderr)
            rows.append(row)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = write_report(
        rows,
        args.out / stamp,
        {
            "started": stamp,
            "long": not args.short,
            "missing_modules": missing,
            "python": platform.python_version(),
            "machine": platform.platform(),
        },
    )
    print(text_table(rows))
    print(f"\nreport: {folder}/report.md and report.json")
    bad = failed(rows)
    if bad:
        print(f"FAILED: {len(bad)} row(s) lost tasks or raised", file=sys.stderr)
        return 1
    if not rows:
        print("FAILED: no scenario ran", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
