"""One row per request: the raw data that gates, summaries and plots are computed from.

Locust's own stats round response times into buckets and its final ``_stats.csv``
can miss the last second, so every request is also kept here, unrounded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path

__all__ = ["COLUMNS", "Sample", "read_samples", "write_samples"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as a user saw it."""

    start_s: float
    """When the request was due (open model) or sent (closed loop), in Unix seconds."""
    model: str
    """``closed`` (Locust users), ``open`` (fixed arrival rate) or ``probe`` (the /health probe)."""
    user: str
    method: str
    name: str
    ms: float
    """Response time in ms; in the open model, from the intended start."""
    ok: bool
    gated: bool
    """Whether this request counts towards the p95 gate."""
    lag_ms: float = 0.0
    """How late the generator sent it after its intended start (open model and probe)."""


COLUMNS = tuple(f.name for f in fields(Sample))


def write_samples(path: Path, samples: Iterable[Sample]) -> int:
    """Write ``samples`` as CSV with a header; return how many rows were written."""
    count = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for sample in samples:
            row = list(astuple(sample))
            row[0] = f"{sample.start_s:.6f}"
            row[5] = f"{sample.ms:.3f}"
            row[6], row[7] = int(sample.ok), int(sample.gated)
            row[8] = f"{sample.lag_ms:.3f}"
            writer.writerow(row)
            count += 1
    return count


def read_samples(path: Path) -> Iterator[Sample]:
    """The rows of a file written by ``write_samples``."""
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            yield Sample(
                start_s=float(row["start_s"]),
                model=row["model"],
                user=row["user"],
                method=row["method"],
                name=row["name"],
                ms=float(row["ms"]),
                ok=row["ok"] == "1",
                gated=row["gated"] == "1",
                lag_ms=float(row["lag_ms"]),
            )
