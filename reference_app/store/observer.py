"""Store observers: told what the store committed, after the commit (metrics, for one).

A side effect that must commit with a task's end is a terminal hook (``records.TerminalHook``);
an observer only watches. It is called on the event loop right after each commit, so it must
be quick; what one raises is logged and dropped, never a failed accept or outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reference_app.events.store import NewEvent
from reference_app.store.claims import Claim

__all__ = ["StoreObserver"]


class StoreObserver(Protocol):
    def accepted(self, kind: str) -> None:
        """A new task of ``kind`` was committed (not a replay of an idempotency key)."""

    def started(self, claims: Sequence[Claim]) -> None:
        """Attempts were started; each claim has its ``due_at`` and ``started_at``."""

    def ended(self, claim: Claim, events: Sequence[NewEvent]) -> None:
        """The worker running ``claim`` recorded its outcome: ``events`` were written."""
