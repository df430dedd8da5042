"""The report of ``make reliability``: its rows, its tables, its files and its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reliability.__main__ import all_scenarios, main, run_scenario
from reliability._outcome import Outcome, Scenario
from reliability._report import COLUMNS, Row, failed, markdown_table, text_table, write_report

OK = Outcome("SIGKILL mid-flight", "sqlite", "200 tasks", 200, 200, 0, 3, reruns=41,
             recovery_s=4.25, notes="fine")  # fmt: skip
LOST = Outcome("SIGTERM", "postgresql", "50 tasks", 50, 50, 2, 0)


def test_a_row_fails_when_a_task_is_lost_or_the_scenario_raised():
    rows = [Row("a", "sqlite", OK), Row("b", "postgresql", LOST), Row("c", "sqlite", error="boom")]

    assert [row.scenario for row in failed(rows)] == ["b", "c"]


def test_the_tables_show_every_column_and_every_figure():
    rows = [Row("a", "sqlite", OK), Row("c", "postgresql", error="PostgreSQL is unreachable")]

    text, markdown = text_table(rows), markdown_table(rows)

    for column in COLUMNS:
        assert column in text
        assert column in markdown
    assert "4.2 s" in text or "4.3 s" in text
    assert "| SIGKILL mid-flight | sqlite | 200 tasks | 200 | 200 | 0 | 3 | 41 |" in markdown
    assert "ERROR: PostgreSQL is unreachable" in markdown
    assert len(markdown.splitlines()) == 2 + len(rows)


def test_the_report_is_written_as_json_and_markdown(tmp_path: Path):
    folder = write_report([Row("a", "sqlite", OK, seconds=1.5)], tmp_path / "run", {"long": True})

    document = json.loads((folder / "report.json").read_text())
    assert document["failed"] == 0
    assert document["long"] is True
    assert document["rows"][0]["outcome"]["lost"] == 0
    assert (folder / "report.md").read_text().startswith("| fault |")


def test_a_scenario_that_raises_becomes_an_error_row():
    def broken(database_url: str, long: bool = True) -> Outcome:
        assert database_url.startswith("sqlite+aiosqlite:///")
        raise RuntimeError("the server never came up")

    row = run_scenario(Scenario("broken", broken), "sqlite", long=False)

    assert row.failed
    assert row.error == "RuntimeError: the server never came up"


def test_every_module_contributes_scenarios_for_both_backends():
    scenarios, missing = all_scenarios()

    names = {scenario.name for scenario in scenarios}
    assert {"hostile inputs", "org isolation", "soak", "schemathesis fuzzing"} <= names
    assert missing in ([], ["reliability.faults"])
    assert all(set(s.backends) <= {"sqlite", "postgresql"} for s in scenarios)


@pytest.mark.live
@pytest.mark.timeout(120)
def test_the_runner_prints_the_table_writes_it_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    code = main(
        ["--short", "--only", "org isolation", "--backend", "sqlite", "--out", str(tmp_path)]
    )

    assert code == 0
    out = capsys.readouterr().out
    assert "org B probes org A" in out
    [folder] = tmp_path.iterdir()
    rows = json.loads((folder / "report.json").read_text())["rows"]
    assert [(r["scenario"], r["backend"], r["outcome"]["lost"]) for r in rows] == [
        ("org isolation", "sqlite", 0)
    ]


def test_the_runner_fails_when_nothing_ran(tmp_path: Path):
    assert main(["--only", "no such scenario", "--out", str(tmp_path)]) == 1
