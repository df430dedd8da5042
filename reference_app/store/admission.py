"""Admission control: the store's view of the due backlog, and its bound.

The view is the database's count (every process's backlog), taken by the
sweeper once an interval, plus this process's accepts and minus its claims
since; other processes' accepts and claims show at the next count.
"""

from __future__ import annotations

from reference_app.store.submissions import BacklogFull

__all__ = ["DueBacklog"]


class DueBacklog:
    """How many tasks are due, as this process sees it; ``admit`` refuses at ``bound``."""

    def __init__(self, bound: int | None) -> None:
        self.bound = bound  # None: admission control off, everything is accepted
        self.due = 0
        self._committing = 0  # admitted, their commit not returned yet

    def admit(self) -> None:
        """Count one more due task, about to be committed; BacklogFull at the bound.
        Counted before the commit, so the requests of one batch see each other."""
        if self.bound is not None and self.due >= self.bound:
            raise BacklogFull(self.due, self.bound)
        self.due += 1
        self._committing += 1

    def committed(self, *, written: bool) -> None:
        """The admitted task's commit returned; ``written=False``: nothing was written."""
        self._committing -= 1
        if not written:
            self.started(1)

    def started(self, tasks: int) -> None:
        """Claims took ``tasks`` tasks off the backlog."""
        # A claim that committed just before a count is subtracted twice: never below 0.
        self.due = max(0, self.due - tasks)

    def counted(self, due: int) -> None:
        """The database's count, plus what is committing (which the count cannot see)."""
        self.due = due + self._committing
