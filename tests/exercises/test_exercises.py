"""Every exercise's checks pass on its reference solution and fail on its stub.

The checks run in one pytest subprocess per target, as ``make check EX=NN`` runs them (the
in-process exercises together, the live one apart), and the JUnit report is read per exercise:
the solution must pass every check, and the stub must fail at least one check on an assertion
(not on an import, collection or fixture error), so the exercises cannot rot as the lessons and
the reference app change.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXERCISES_DIR = ROOT / "exercises"
EXERCISES = sorted(
    path.name for path in EXERCISES_DIR.glob("ex[0-9][0-9]_*") if (path / "exercise.py").is_file()
)
LIVE = {"ex08_offload"}  # starts a real uvicorn
LESSONS = sorted(path.name for path in (ROOT / "lessons").glob("lesson_[0-9][0-9]_*"))
# The plugins the checks use, and no others: autoloading hypothesis and schemathesis as well
# costs several seconds per run.
PLUGINS = ["-p", "pytest_asyncio.plugin", "-p", "pytest_timeout", "-p", "no:cacheprovider"]


@dataclass
class Report:
    """One exercise's checks, from the JUnit report of a run."""

    tests: int = 0
    failures: list[str] = field(default_factory=list)  # "check: path:line: AssertionError"
    errors: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def passed(self) -> int:
        return self.tests - len(self.failures) - len(self.errors) - self.skipped


def run_checks(exercises: list[str], target: str, tmp_path: Path) -> tuple[dict[str, Report], str]:
    """Run the checks of ``exercises`` in one pytest process (the imports are paid once)."""
    junit = tmp_path / "junit.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        *(f"exercises/{name}" for name in exercises),
        "-q",
        *PLUGINS,
        f"--basetemp={tmp_path / 'inner'}",
        f"--junitxml={junit}",
    ]
    env = {**os.environ, "EXERCISE_TARGET": target, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    # Not measured by `make pytest`'s coverage: it would double this test's time, and the
    # lessons and the reference app have tests of their own.
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150, check=False
    )
    output = f"exit {result.returncode}\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    assert junit.is_file(), f"pytest wrote no report:\n{output}"
    reports = {name: Report() for name in exercises}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
        # classname "exercises.ex03_short_sessions.test_checks"; a collection error has no name.
        parts = (case.get("classname") or "").split(".")
        report = reports.setdefault(parts[1] if len(parts) > 1 else "?", Report())
        report.tests += 1
        for child in case:
            # The report's last line names the exception: "path:line: AssertionError".
            last = (child.text or "").strip().splitlines()[-1:] or [""]
            message = f"{case.get('name')}: {last[0]}"
            if child.tag == "failure":
                report.failures.append(message)
            elif child.tag == "error":
                report.errors.append(message)
            elif child.tag == "skipped":
                report.skipped += 1
    return reports, output


def test_there_is_at_least_one_exercise_per_lesson() -> None:
    numbers = {name[2:4] for name in EXERCISES}
    assert numbers == {lesson[7:9] for lesson in LESSONS}


@pytest.mark.parametrize("exercise", EXERCISES)
def test_an_exercise_has_its_task_hints_stub_checks_and_solution(exercise: str) -> None:
    folder = EXERCISES_DIR / exercise
    for name in ["README.md", "HINTS.md", "exercise.py", "test_checks.py", "__init__.py"]:
        assert (folder / name).is_file(), f"{exercise} has no {name}"
    assert (EXERCISES_DIR / "solutions" / f"{exercise}.py").is_file()
    assert f"make check EX={exercise[2:4]}" in (folder / "README.md").read_text()
    index = (EXERCISES_DIR / "README.md").read_text()
    assert f"({exercise}/README.md)" in index, f"exercises/README.md does not list {exercise}"


# The in-process exercises run together, one process per target; the live one on its own.
GROUPS = [
    pytest.param([name for name in EXERCISES if name not in LIVE], id="in-process"),
    pytest.param(sorted(LIVE), id="live", marks=pytest.mark.live),
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("exercises", GROUPS)
def test_the_checks_pass_on_the_reference_solutions(exercises: list[str], tmp_path: Path) -> None:
    reports, output = run_checks(exercises, "solution", tmp_path)
    problems = {
        name: report
        for name, report in reports.items()
        if report.failures or report.errors or report.skipped or report.passed < 2
    }
    assert problems == {}, output
    assert set(reports) == set(exercises)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("exercises", GROUPS)
def test_the_checks_fail_on_the_stubs_on_an_assertion(exercises: list[str], tmp_path: Path) -> None:
    reports, output = run_checks(exercises, "stub", tmp_path)
    assert set(reports) == set(exercises), f"a collection error:\n{output}"
    errors = {name: report.errors for name, report in reports.items() if report.errors}
    assert errors == {}, f"a stub must import and collect cleanly:\n{output}"
    asks_nothing = [name for name, report in reports.items() if not report.failures]
    assert asks_nothing == [], "every check passed on these stubs: they ask for nothing"
    crashes = {
        name: [m for m in report.failures if not re.search(r": (AssertionError|Failed)$", m)]
        for name, report in reports.items()
    }
    assert {name: found for name, found in crashes.items() if found} == {}, (
        "checks must fail on a stub by assertion, not by a crash"
    )
