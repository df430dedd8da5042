"""Reading tasks: the projection and the event log, scoped to the caller's org."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.api.deps import CurrentUser, SessionDep
from reference_app.api.schemas import DeliveryStatus, EventView, TaskView, WebhookView
from reference_app.db.models import Task, TaskEvent

__all__ = ["router", "task_view"]

router = APIRouter(prefix="/tasks", tags=["tasks"])

TaskIdPath = Annotated[str, Path(description="The task_id from the 202 response.")]
_NOT_FOUND = "No such task for this API key's organisation."
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": _NOT_FOUND},
    503: {"description": "Database unavailable; see Retry-After"},
}


def _parse_id(task_id: str) -> uuid.UUID:
    # Malformed, unknown and another org's ids all get the same 404, so nothing leaks.
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise HTTPException(status_code=404, detail=_NOT_FOUND) from None


async def _owned_task(session: SessionDep, user: CurrentUser, task_id: str) -> Task:
    task = await session.get(Task, _parse_id(task_id))
    # A webhook delivery is part of its parent task, not a task of the API.
    if task is None or task.org_id != user.org_id or task.parent_id is not None:
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    return task


_DELIVERY_STATUS: dict[str, DeliveryStatus] = {"succeeded": "delivered", "failed": "failed"}


async def task_view(session: AsyncSession, task: Task) -> TaskView:
    """The task's projection, with its webhook delivery's state if it has one."""
    view = TaskView.model_validate(task)
    delivery = await session.scalar(select(Task).where(Task.parent_id == task.id))
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


@router.get(
    "/{task_id}",
    response_model=TaskView,
    name="get_task",
    responses=_READ_ERRORS,
)
async def get_task(task_id: TaskIdPath, user: CurrentUser, session: SessionDep) -> TaskView:
    """The task's current status, derived from its events."""
    return await task_view(session, await _owned_task(session, user, task_id))


@router.get(
    "/{task_id}/events",
    response_model=list[EventView],
    responses=_READ_ERRORS,
)
async def get_task_events(
    task_id: TaskIdPath, user: CurrentUser, session: SessionDep
) -> list[EventView]:
    """Every event of the task, oldest first."""
    task = await _owned_task(session, user, task_id)
    events = await session.scalars(
        select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id)
    )
    return [EventView.model_validate(e) for e in events]
