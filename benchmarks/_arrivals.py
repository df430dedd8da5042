"""When open-model requests are due: a fixed rate, as a Poisson process or evenly spaced.

Real users arrive independently of each other, so their requests sometimes
collide: a Poisson process (exponential gaps, seeded) models that. Evenly spaced
arrivals never collide, which can hide queueing, for instance a 150 ms freeze
every 200 ms that no request ever runs into.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["arrival_offsets", "seeded"]


def arrival_offsets(
    rate: float, *, window: float = 0.0, poisson: bool = True, rng: random.Random | None = None
) -> Iterator[float]:
    """Seconds from the start at which requests are due, ``rate`` a second on average,
    until ``window`` seconds (0: forever)."""
    if rate <= 0:
        raise ValueError("the arrival rate must be positive")
    rng = rng or random.Random(0)
    n, t = 0, rng.expovariate(rate) if poisson else 0.0
    while not window or t < window:
        yield t
        n += 1
        t = t + rng.expovariate(rate) if poisson else n / rate  # n / rate: no drift


def seeded(seed: int, *parts: object) -> random.Random:
    """A generator of its own for each user in each process, reproducible from ``seed``."""
    return random.Random("/".join(str(p) for p in (seed, *parts)))
