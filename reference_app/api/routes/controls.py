"""An operator's controls on one task: cancel it, or re-drive it after it failed or was cancelled.

Each is an event in the log (``task_cancelled``, ``cancel_requested``, ``task_requeued``),
so the status stays a projection and a restart loses nothing. Org-scoped like the
reads: another org's task, an unknown id and a webhook delivery all get the same 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response

from reference_app.api.deps import CurrentUser, StoreDep, WorkerDep
from reference_app.api.routes.tasks import NOT_FOUND, TaskIdPath, parse_task_id, task_view
from reference_app.api.schemas import TaskView
from reference_app.events.lifecycle import TaskStatus
from reference_app.store import Controlled, TaskNotFound, TaskStore, WrongStatus

__all__ = ["router"]

router = APIRouter(prefix="/tasks", tags=["tasks"])

_CONTROL_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": NOT_FOUND},
    409: {"description": "Not possible in the task's current status, which the body names"},
    503: {"description": "Database unavailable; see Retry-After"},
}


async def _view(store: TaskStore, org_id: str, controlled: Controlled) -> TaskView:
    record = await store.find_task(org_id, controlled.task_id)
    if record is None:  # the action committed, so the task is there; a race with nothing
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return task_view(record)


@contextmanager
def _answered() -> Iterator[None]:
    """The store's refusals as the API's answers: 404 alike for every unknown task, and 409
    with the status that does not allow the action."""
    try:
        yield
    except TaskNotFound:
        raise HTTPException(status_code=404, detail=NOT_FOUND) from None
    except WrongStatus as exc:
        detail = {"message": f"{exc}.", "status": exc.status}
        raise HTTPException(status_code=409, detail=detail) from None


@router.post(
    "/{task_id}/cancel",
    response_model=TaskView,
    responses={
        **_CONTROL_ERRORS,
        202: {"model": TaskView, "description": "Running: cancel requested (`cancelling`)"},
    },
)
async def cancel_task(
    task_id: TaskIdPath,
    response: Response,
    user: CurrentUser,
    store: StoreDep,
    worker: WorkerDep,
) -> TaskView:
    """Cancel the task. A `scheduled` or `retrying` task is `cancelled` at once (200). A
    `running` one becomes `cancelling` (202): its worker stops the attempt within one lease
    heartbeat (a third of `APP_LEASE_SECONDS`) and records `cancelled`; if that process
    died, the lease's expiry ends it. A task that has ended gets 409 with its status."""
    with _answered():
        controlled = await store.cancel(user.org_id, parse_task_id(task_id), by=user.user_id)
    worker.run_soon(controlled.started)  # its task.cancelled webhook, if it has one
    if controlled.status == TaskStatus.CANCELLING.value:
        response.status_code = 202
    return await _view(store, user.org_id, controlled)


@router.post(
    "/{task_id}/retry", status_code=202, response_model=TaskView, responses=_CONTROL_ERRORS
)
async def retry_task(
    task_id: TaskIdPath,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    store: StoreDep,
    worker: WorkerDep,
) -> TaskView:
    """Re-drive a `failed` or `cancelled` task (the dead letters): it is `scheduled` again,
    due now, its attempts counting on and its retry budget renewed (`APP_TASK_MAX_ATTEMPTS`
    more). Any other status gets 409 with the status."""
    with _answered():
        controlled = await store.requeue(user.org_id, parse_task_id(task_id), by=user.user_id)
    background_tasks.add_task(worker.submit, task_id=controlled.task_id, kind=controlled.kind)
    response.headers["Location"] = str(request.url_for("get_task", task_id=task_id))
    return await _view(store, user.org_id, controlled)
