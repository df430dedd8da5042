"""Each lesson's STEPS.diff matches its step files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_steps_diff_is_current():
    result = subprocess.run(
        [sys.executable, "scripts/lesson_diffs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
