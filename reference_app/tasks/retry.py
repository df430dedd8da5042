"""The retry policy: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a piece of work gets, and how long to wait between them.

    The delay before retry ``n`` is drawn uniformly from ``[0, min(cap, base * 2**(n-1))]``
    ("full jitter"), so many failures at once do not come back at once.
    """

    max_attempts: int
    base_seconds: float
    cap_seconds: float

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)
