"""A kind of task: its handler, and how much of it one process may run at once.

Registered in ``main.py`` (or passed to ``create_app(handlers=...)``). Work of
an I/O-bound kind awaits and holds nothing while it waits, so it shares the
worker's general slots, of which there are many (``APP_MAX_CONCURRENT_TASKS``).
Work of a CPU-bound kind runs in the process pool, which runs only so many
jobs at once: more attempts than that would hold slots and leases while they
queue in the pool, so a CPU-bound kind gets at most the pool's size by default,
and the rest of its backlog waits in the database, where another process can
take it. Any kind can set its own ``concurrency``, retry policy and ``timeout``
(the deadline of each attempt).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from reference_app.tasks.context import Handler
from reference_app.tasks.retry import RetryPolicy

__all__ = ["TaskKind", "concurrency_limits", "kinds_of"]


@dataclass(frozen=True, slots=True)
class TaskKind:
    handler: Handler
    # "io": awaits (network, disk through a thread, sleeps); "cpu": computes in the pool.
    mode: Literal["io", "cpu"] = "io"
    # At most this many attempts of this kind at once in one process; None: the default
    # for its mode (the general slots for "io", the process pool's size for "cpu").
    concurrency: int | None = None
    # The retry policy of this kind; None: the app's (``APP_TASK_*``).
    retry: RetryPolicy | None = None
    # Seconds an attempt of this kind may run before it is cancelled and recorded as
    # ``AttemptTimeout``; None: the app's (``APP_TASK_TIMEOUT_SECONDS``).
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"a kind's concurrency is at least 1, not {self.concurrency}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(
                f"a kind's timeout is a positive number of seconds, not {self.timeout}"
            )


def kinds_of(handlers: Mapping[str, Handler | TaskKind]) -> dict[str, TaskKind]:
    """``TaskKind``s by name; a bare handler is an I/O-bound kind with the defaults."""
    return {
        name: each if isinstance(each, TaskKind) else TaskKind(each)
        for name, each in handlers.items()
    }


def concurrency_limits(kinds: Mapping[str, TaskKind], *, cpu_slots: int) -> dict[str, int]:
    """The kinds that have a limit of their own, and the limit."""
    limits: dict[str, int] = {}
    for name, kind in kinds.items():
        if kind.concurrency is not None:
            limits[name] = kind.concurrency
        elif kind.mode == "cpu":
            limits[name] = cpu_slots
    return limits
