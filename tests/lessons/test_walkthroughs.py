"""Every lesson's walkthrough runs top to bottom, as a learner would run it cell by cell."""

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parents[2] / "lessons"
WALKTHROUGHS = sorted(LESSONS.glob("lesson_*/walkthrough.py"))


def test_there_is_a_walkthrough_per_lesson():
    lessons = sorted(p for p in LESSONS.glob("lesson_*") if p.is_dir())
    assert [w.parent for w in WALKTHROUGHS] == lessons


@pytest.mark.live
@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", WALKTHROUGHS, ids=lambda p: p.parent.name)
def test_walkthrough_executes(path: Path) -> None:
    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parents[2])}},  # run from the repo root
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
