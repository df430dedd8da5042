"""A clock that tests move by hand: the ``clock`` of ``TaskStore``, ``Scheduler`` and
``create_app``, so due times come and go without sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta

from reference_app.core.clock import utcnow

__all__ = ["ManualClock"]


class ManualClock:
    """Now is ``now`` until ``advance`` or ``set`` moves it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def set(self, now: datetime) -> datetime:
        self.now = now
        return self.now
