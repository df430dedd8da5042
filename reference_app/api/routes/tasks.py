"""Reading tasks: the projection and the event log, scoped to the caller's org."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy import select

from reference_app.api.deps import CurrentUser, SessionDep
from reference_app.api.schemas import EventView, TaskView
from reference_app.db.models import Task, TaskEvent

__all__ = ["router"]

router = APIRouter(prefix="/tasks", tags=["tasks"])

TaskIdPath = Annotated[str, Path(description="The task_id from the 202 response.")]
_NOT_FOUND = "No such task for this API key's organisation."


def _parse_id(task_id: str) -> uuid.UUID:
    # Malformed, unknown and another org's ids all get the same 404, so nothing leaks.
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise HTTPException(status_code=404, detail=_NOT_FOUND) from None


async def _owned_task(session: SessionDep, user: CurrentUser, task_id: str) -> Task:
    task = await session.get(Task, _parse_id(task_id))
    if task is None or task.org_id != user.org_id:
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    return task


@router.get(
    "/{task_id}",
    response_model=TaskView,
    name="get_task",
    responses={404: {"description": _NOT_FOUND}},
)
async def get_task(task_id: TaskIdPath, user: CurrentUser, session: SessionDep) -> TaskView:
    """The task's current status, derived from its events."""
    return TaskView.model_validate(await _owned_task(session, user, task_id))


@router.get(
    "/{task_id}/events",
    response_model=list[EventView],
    responses={404: {"description": _NOT_FOUND}},
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
