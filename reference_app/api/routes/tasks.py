"""Reading tasks: the projection and the event log, scoped to the caller's org."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from reference_app.api.deps import CurrentUser, StoreDep
from reference_app.api.schemas import (
    DeliveryStatus,
    EventView,
    TaskListQuery,
    TaskPageView,
    TaskView,
    WebhookView,
)
from reference_app.store import TaskRecord

__all__ = ["NOT_FOUND", "TaskIdPath", "parse_task_id", "router", "task_view"]

router = APIRouter(prefix="/tasks", tags=["tasks"])

TaskIdPath = Annotated[str, Path(description="The task_id from the 202 response.")]
NOT_FOUND = "No such task for this API key's organisation."
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": NOT_FOUND},
    503: {"description": "Database unavailable; see Retry-After"},
}
_LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _READ_ERRORS[401],
    422: {"description": "A filter, the limit or the cursor is invalid; `detail` says which"},
    503: _READ_ERRORS[503],
}


def parse_task_id(task_id: str) -> uuid.UUID:
    # Malformed, unknown and another org's ids all get the same 404, so nothing leaks.
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise HTTPException(status_code=404, detail=NOT_FOUND) from None


_DELIVERY_STATUS: dict[str, DeliveryStatus] = {"succeeded": "delivered", "failed": "failed"}


def task_view(record: TaskRecord) -> TaskView:
    """The task's projection, with its webhook delivery's state if it has one."""
    view = TaskView.model_validate(record.task)
    delivery = record.delivery
    if delivery is not None:
        view.webhook = WebhookView(
            delivery_id=delivery.id,
            status=_DELIVERY_STATUS.get(delivery.status, "pending"),
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            next_attempt_at=delivery.run_after,
            finished_at=delivery.finished_at,
        )
    return view


# Before "/{task_id}" for the reader; the paths cannot clash ("/tasks/" is not "/tasks").
@router.get("", response_model=TaskPageView, name="list_tasks", responses=_LIST_ERRORS)
async def list_tasks(
    query: Annotated[TaskListQuery, Query()], user: CurrentUser, store: StoreDep
) -> TaskPageView:
    """The organisation's tasks, newest first, a page at a time (follow `next`). Webhook
    deliveries are not listed: each shows as the `webhook` of the task it reports."""
    page = await store.list_tasks(
        user.org_id, query.filters(), limit=query.limit, after=query.position()
    )
    return TaskPageView(
        items=[task_view(record) for record in page.items],
        next=page.next.encode() if page.next is not None else None,
    )


@router.get(
    "/{task_id}",
    response_model=TaskView,
    name="get_task",
    responses=_READ_ERRORS,
)
async def get_task(task_id: TaskIdPath, user: CurrentUser, store: StoreDep) -> TaskView:
    """The task's current status, derived from its events."""
    record = await store.find_task(user.org_id, parse_task_id(task_id))
    if record is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return task_view(record)


@router.get(
    "/{task_id}/events",
    response_model=list[EventView],
    responses=_READ_ERRORS,
)
async def get_task_events(
    task_id: TaskIdPath, user: CurrentUser, store: StoreDep
) -> list[EventView]:
    """Every event of the task, oldest first."""
    events = await store.events_of(user.org_id, parse_task_id(task_id))
    if events is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return [EventView.model_validate(e) for e in events]
