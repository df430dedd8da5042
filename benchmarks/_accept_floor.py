"""The accept path's floor: the reference app itself, with a store that commits nothing.

``uvicorn benchmarks._accept_floor:app`` serves ``create_app()``, the
reference app with its lifespan, middleware, error handlers, dependencies,
models and routes, all of them its own objects, with one dependency
overridden: ``get_store`` returns a ``NoopStore``, whose ``accept`` commits
nothing and answers ``created=False``, so the route hands no task to
``BackgroundTasks`` either. ``POST /process-data`` still answers the 202 the
reference app would, so ``make bench`` (its accept group) and
``scripts/bench_accept.py`` (run f) measure what the request path alone costs on
this machine: the ceiling no database tuning can lift. Nothing here copies a route,
so there is nothing to drift from it.

The lifespan is the reference app's too (an engine, a worker, an idle sweeper,
``gc.freeze()``): the POST never reaches them, but the process the floor
measures is set up like the one the other runs measure.

Not an app to copy: it accepts work it never does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from fastapi import FastAPI

from reference_app.api.deps import get_store
from reference_app.core.clock import utcnow
from reference_app.core.config import Settings
from reference_app.db.models import TaskEvent
from reference_app.events.lifecycle import TaskStatus
from reference_app.events.store import NewEvent
from reference_app.main import create_app
from reference_app.store import (
    Accepted,
    Claim,
    Controlled,
    Lease,
    Position,
    QueueState,
    Recorded,
    Recovered,
    Submission,
    TaskFilters,
    TaskNotFound,
    TaskPage,
    TaskRecord,
    TerminalHook,
)
from reference_app.store.keyed import KeyedTask
from reference_app.store.queue_state import LIVE_STATUSES

__all__ = ["NoopStore", "app", "create_floor_app", "create_state_floor_app", "state_app"]

_SCHEDULED = TaskStatus.SCHEDULED.value


class NoopStore:
    """A structural stand-in for ``TaskStore`` (the same public methods, signatures and
    all) that stores nothing.

    ``accept`` answers as for an idempotent replay (``created=False``: a task that has
    its run already), so no route starts one. The reads find nothing: the floor has no tasks, and a
    ``GET /tasks/{id}`` of its ``Location`` gets the 404 the truth calls for. What only a
    worker or the sweeper calls raises: on the floor that would mean work was started.
    """

    def __init__(self) -> None:
        self.clock = utcnow  # what a delayed POST's due time counts from

    async def accept(self, submission: Submission) -> Accepted:
        """Commit nothing; a fresh id, so the 202 and its ``Location`` look like the real ones."""
        return Accepted(task_id=uuid.uuid4(), status=_SCHEDULED, created=False)

    async def close(self) -> None:
        """Nothing is queued."""

    async def find_task(self, org_id: str, task_id: uuid.UUID) -> TaskRecord | None:
        return None

    async def events_of(self, org_id: str, task_id: uuid.UUID) -> list[TaskEvent] | None:
        return None

    async def list_tasks(
        self, org_id: str, filters: TaskFilters, *, limit: int, after: Position | None = None
    ) -> TaskPage:
        return TaskPage(items=[], next=None)  # the floor has no tasks

    async def newest_by_key(self, org_id: str, lowest: str, highest: str) -> KeyedTask | None:
        return None  # no schedule has made a task

    async def cancel(self, org_id: str, task_id: uuid.UUID, *, by: str) -> Controlled:
        raise TaskNotFound(task_id)  # the floor has no tasks: the 404 the truth calls for

    async def requeue(self, org_id: str, task_id: uuid.UUID, *, by: str) -> Controlled:
        raise TaskNotFound(task_id)

    async def cancel_requested(self, claim: Claim, lease: Lease) -> int | None:
        raise _no_work()

    def add_terminal_hook(self, hook: TerminalHook) -> None:
        raise _no_work()

    async def claim(self, task_id: uuid.UUID, lease: Lease) -> Claim | None:
        raise _no_work()

    async def claim_due(
        self,
        limit: int,
        lease: Lease,
        *,
        kinds: Collection[str] | None = None,
        exclude: Collection[str] = (),
    ) -> list[Claim]:
        raise _no_work()

    async def count_due(self) -> int:
        """No backlog: nothing is ever due."""
        return 0

    async def renew_lease(self, claim: Claim, lease: Lease) -> bool:
        raise _no_work()

    async def record_outcome(self, claim: Claim, events: list[NewEvent]) -> Recorded:
        raise _no_work()

    async def recover_expired_leases(self) -> Recovered:
        raise _no_work()

    async def queue_state(self) -> QueueState:
        """Nothing is ever kept, so nothing waits (what a /metrics scrape of the floor reads)."""
        counts = dict.fromkeys((status.value for status in LIVE_STATUSES), 0)
        return QueueState(by_status=counts, oldest_due=None, now=utcnow())


def _no_work() -> NotImplementedError:
    return NotImplementedError("the floor's store runs no tasks: nothing may claim one")


def create_floor_app(settings: Settings | None = None) -> FastAPI:
    """``create_app(settings)`` with ``get_store`` overridden by a ``NoopStore``."""
    app = create_app(settings)
    store = NoopStore()

    # async def, as get_store is: FastAPI runs a plain def dependency in the threadpool,
    # a thread hop per request that the reference app does not make.
    async def noop_store() -> NoopStore:
        return store

    app.dependency_overrides[get_store] = noop_store
    return app


def create_state_floor_app(settings: Settings | None = None) -> FastAPI:
    """The same floor without ``dependency_overrides``: the lifespan puts a ``NoopStore`` on
    ``app.state``, where ``get_store`` reads the store.

    Measured beside the other because FastAPI rebuilds every dependency of a request
    (``get_dependant``, ``inspect.signature``) as soon as any override is set, overridden
    or not (fastapi/fastapi#16342): the override floor pays for that on each request,
    and this one is the request path the reference app really serves.
    """
    app = create_app(settings)
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serve(app):
            app.state.store = NoopStore()  # the worker and sweeper keep the real, idle one
            yield

    app.router.lifespan_context = lifespan
    return app


app = create_floor_app()
state_app = create_state_floor_app()
