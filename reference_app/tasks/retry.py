"""The retry policy: capped exponential backoff with full jitter, and ``Retry-After``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a piece of work gets, and how long to wait between them.

    The delay before retry ``n`` is drawn uniformly from ``[0, min(cap, base * 2**(n-1))]``
    ("full jitter"), so many failures at once do not come back at once. A
    server's ``Retry-After`` replaces the draw, clamped to ``[base, cap]``.
    """

    max_attempts: int
    base_seconds: float
    cap_seconds: float

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        # 2.0 ** 64 is far past any cap; an int power that large would overflow the float.
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 64))
        return (rng or random).uniform(0, ceiling)

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The wait before the next attempt, honouring the server's ``Retry-After`` if any."""
        if retry_after is None:
            return self.backoff(attempt, rng)
        return min(max(retry_after, self.base_seconds), self.cap_seconds)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit alone accepts "²"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the asctime form has no zone; RFC 9110 dates are all GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
