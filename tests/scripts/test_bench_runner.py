"""Smoke test of scripts/bench_runner.py: a small run in a subprocess, per database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_runner.py"


def test_it_accepts_and_runs_every_task_and_reports_both_phases(database_url: str) -> None:
    command = [sys.executable, str(SCRIPT), "--tasks", "60", "--concurrency", "8"]
    done = subprocess.run(
        [*command, "--database-url", database_url], capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].endswith("60 tasks, 8 runs at once")
    for phase, line in zip(["accept", "run"], lines[1:3], strict=True):
        words = line.split()
        assert words[0] == phase
        assert float(words[1]) > 0  # tasks/s
        assert float(words[4]) > 0  # us CPU per task


def test_it_refuses_a_run_without_tasks() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tasks", "0"], capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 2
    assert "--tasks and --concurrency must be positive" in done.stderr
