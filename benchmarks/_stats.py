"""Percentiles, per-endpoint summaries and the p95 gate, computed from raw samples.

Pure functions with no Locust import: the gate inside Locust, the ``make bench``
runner, the plots and the unit tests all use these.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._samples import Sample

__all__ = [
    "DEFAULT_BUDGET_MS",
    "LatencySummary",
    "Verdict",
    "by_endpoint",
    "endpoint",
    "gate",
    "percentile",
    "summarize",
]

DEFAULT_BUDGET_MS = 200.0


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100): a value that was observed.

    The 95th of 20 values is the 19th smallest; no interpolation, no buckets.
    """
    if not values:
        raise ValueError("no values")
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * q / 100)
    return ordered[rank - 1]


def endpoint(sample: Sample) -> str:
    """How a request is grouped and named in summaries: ``POST /process-data?mode=inline``."""
    return f"{sample.method} {sample.name}"


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    failures: int
    rps: float
    """Requests per second over the window, next to every percentile."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(samples: Iterable[Sample], window_s: float) -> LatencySummary:
    """Count, failures, achieved rate and percentiles of ``samples`` over ``window_s`` seconds."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    times, failures = [], 0
    for sample in samples:
        times.append(sample.ms)
        failures += not sample.ok
    if not times:
        return LatencySummary(0, 0, 0.0, None, None, None, None)
    return LatencySummary(
        count=len(times),
        failures=failures,
        rps=round(len(times) / window_s, 2),
        p50_ms=round(percentile(times, 50), 2),
        p95_ms=round(percentile(times, 95), 2),
        p99_ms=round(percentile(times, 99), 2),
        max_ms=round(max(times), 2),
    )


def by_endpoint(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples grouped by ``endpoint``, in the order the endpoints first appear."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[endpoint(sample)].append(sample)
    return dict(groups)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The gate's answer for one gated endpoint."""

    endpoint: str
    count: int
    p95_ms: float
    failures: int
    budget_ms: float
    max_failures: int

    @property
    def passed(self) -> bool:
        # At the budget fails: "p95 under 200 ms" means strictly under.
        return self.p95_ms < self.budget_ms and self.failures <= self.max_failures

    def describe(self) -> str:
        outcome = "PASS" if self.passed else "FAIL"
        return (
            f"{outcome} {self.endpoint}: p95 {self.p95_ms:.1f} ms (budget {self.budget_ms:g} ms),"
            f" {self.failures} failures of {self.count} (allowed {self.max_failures})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def gate(
    samples: Iterable[Sample], budget_ms: float = DEFAULT_BUDGET_MS, max_failures: int = 0
) -> list[Verdict]:
    """One verdict per gated endpoint that has samples; ungated samples are ignored."""
    verdicts = []
    for name, group in by_endpoint(s for s in samples if s.gated).items():
        verdicts.append(
            Verdict(
                endpoint=name,
                count=len(group),
                p95_ms=percentile([s.ms for s in group], 95),
                failures=sum(not s.ok for s in group),
                budget_ms=budget_ms,
                max_failures=max_failures,
            )
        )
    return verdicts
