"""The report of ``make reliability``: a table on the terminal, JSON and Markdown on disk."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reliability._outcome import Outcome

__all__ = ["COLUMNS", "Row", "failed", "markdown_table", "text_table", "write_report"]

COLUMNS = (
    "fault",
    "backend",
    "load held",
    "inputs tried",
    "tasks accepted",
    "tasks lost",
    "duplicates",
    "re-runs",
    "recovery time",
    "notes",
)


@dataclass(frozen=True)
class Row:
    """One scenario on one backend: its outcome, or the error it raised instead."""

    scenario: str
    backend: str
    outcome: Outcome | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.outcome is not None and self.outcome.lost > 0)

    def cells(self) -> list[str]:
        o = self.outcome
        if o is None:
            return [self.scenario, self.backend, "-", "-", "-", "-", "-", "-", "-",
                    f"ERROR: {self.error}"]  # fmt: skip
        recovery = "-" if o.recovery_s is None else f"{o.recovery_s:.1f} s"
        notes = o.notes if self.error is None else f"ERROR: {self.error}"
        return [o.fault, o.backend, o.load, str(o.inputs), str(o.accepted), str(o.lost),
                str(o.duplicates), str(o.reruns), recovery, notes]  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "backend": self.backend,
            "outcome": None if self.outcome is None else dataclasses.asdict(self.outcome),
            "error": self.error,
            "seconds": round(self.seconds, 2),
        }


def failed(rows: Sequence[Row]) -> list[Row]:
    """The rows that make the run fail: a task lost, or a scenario that raised."""
    return [row for row in rows if row.failed]


def _clip(cell: str, width: int = 60) -> str:
    cell = " ".join(cell.split())
    return cell if len(cell) <= width else cell[: width - 1] + "…"


def text_table(rows: Sequence[Row]) -> str:
    """A fixed-width table for the terminal."""
    cells = [list(COLUMNS), *([_clip(c) for c in row.cells()] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(rows: Sequence[Row]) -> str:
    """The same table in Markdown, for the README."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(" ".join(c.split()).replace("|", "\\|") for c in cells) + " |"

    out = [line(COLUMNS), "|" + "---|" * len(COLUMNS)]
    out += [line(row.cells()) for row in rows]
    return "\n".join(out)


def write_report(rows: Sequence[Row], folder: Path, metadata: dict[str, Any]) -> Path:
    """``report.json`` and ``report.md`` in ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {**metadata, "failed": len(failed(rows)), "rows": [r.as_json() for r in rows]}
    (folder / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    (folder / "report.md").write_text(markdown_table(rows) + "\n")
    return folder
