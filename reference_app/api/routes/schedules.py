"""Reading the periodic schedules: those whose tasks belong to the caller's org."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reference_app.api.deps import CurrentUser, SchedulerDep
from reference_app.api.schemas import ScheduledTaskView, ScheduleView
from reference_app.tasks.scheduler import ScheduleState

__all__ = ["router"]

router = APIRouter(prefix="/schedules", tags=["schedules"])

_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    503: {"description": "Database unavailable; see Retry-After"},
}


def _view(state: ScheduleState) -> ScheduleView:
    schedule, last = state.schedule, state.last
    every = schedule.every
    return ScheduleView(
        name=schedule.name,
        kind=schedule.kind,
        every_seconds=int(every.total_seconds()) if every is not None else None,
        cron=schedule.cron,
        catch_up=schedule.catch_up,
        next_due_at=state.next_due_at,
        last_task=(
            ScheduledTaskView(task_id=last.task_id, status=last.status, slot=state.last_slot)
            if last is not None and state.last_slot is not None
            else None
        ),
    )


@router.get("", response_model=list[ScheduleView], responses=_READ_ERRORS)
async def list_schedules(user: CurrentUser, scheduler: SchedulerDep) -> list[ScheduleView]:
    """The schedules whose tasks belong to your organisation: each with its next due slot
    and the task of its newest slot so far."""
    return [_view(state) for state in await scheduler.states(user.org_id)]
