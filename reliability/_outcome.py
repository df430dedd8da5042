"""What one reliability scenario reports: the row of the ``make reliability`` table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Outcome", "Scenario"]


@dataclass(frozen=True)
class Outcome:
    """The measured result of one scenario on one database."""

    fault: str
    """What was done to the app, for example ``"SIGKILL mid-flight"``."""
    backend: str
    """``"sqlite"`` or ``"postgresql"``."""
    load: str
    """The load held meanwhile, for example ``"200 tasks, io 2000 ms"``."""
    inputs: int
    """Requests or generated inputs sent."""
    accepted: int
    """Tasks the app answered 202 for."""
    lost: int
    """Accepted tasks not terminal when the scenario gave up waiting (must be 0)."""
    duplicates: int
    """Side effects observed more than once (at-least-once delivery makes these possible)."""
    reruns: int = 0
    """Attempts started again after the fault (recovery by the sweeper)."""
    recovery_s: float | None = None
    """Seconds from the end of the fault until every accepted task was terminal."""
    notes: str = ""


@dataclass(frozen=True)
class Scenario:
    """A named scenario: ``run(database_url, long=...)`` returns its outcome."""

    name: str
    run: Callable[..., Outcome]
    backends: tuple[str, ...] = ("sqlite", "postgresql")
