"""The task store: every SQL statement of the task system, and its group commit."""

from reference_app.store.claims import Claim
from reference_app.store.controls import Controlled, TaskNotFound, WrongStatus
from reference_app.store.listing import InvalidCursor, Position, TaskFilters, TaskPage
from reference_app.store.observer import StoreObserver
from reference_app.store.queue_state import QueueState
from reference_app.store.records import (
    DueTask,
    Lease,
    NewStream,
    Recorded,
    Recovered,
    TaskRecord,
    TerminalHook,
)
from reference_app.store.submissions import (
    Accepted,
    BacklogFull,
    IdempotencyMismatch,
    Submission,
)
from reference_app.store.task_store import TaskStore

__all__ = [
    "Accepted",
    "BacklogFull",
    "Claim",
    "Controlled",
    "DueTask",
    "IdempotencyMismatch",
    "InvalidCursor",
    "Lease",
    "NewStream",
    "Position",
    "QueueState",
    "Recorded",
    "Recovered",
    "StoreObserver",
    "Submission",
    "TaskFilters",
    "TaskNotFound",
    "TaskPage",
    "TaskRecord",
    "TaskStore",
    "TerminalHook",
    "WrongStatus",
]
