"""The endpoints that accept background work: 202 once ``task_scheduled`` is committed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, Request, Response

from reference_app.api.deps import CurrentUser, IdempotencyKey, RunnerDep, SettingsDep, require_json
from reference_app.api.schemas import (
    ImportContactsIn,
    JobRequest,
    ProcessDataIn,
    SendNotificationIn,
    TaskAccepted,
    TaskView,
)
from reference_app.core.clock import utcnow
from reference_app.core.config import Principal, Settings
from reference_app.db.engine import session_scope
from reference_app.db.models import Task
from reference_app.tasks.runner import TaskRunner
from reference_app.tasks.scheduling import Accepted, IdempotencyMismatch, Submission, submit_task

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_json)], tags=["jobs"])

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    409: {"description": "Idempotency-Key reused with a different body"},
    413: {"description": "Body over the size limit"},
    415: {"description": "Body is not JSON"},
    503: {"description": "Database unavailable; nothing written; see Retry-After"},
}


async def _accept(
    request: Request,
    *,
    kind: str,
    body: JobRequest,
    params: dict[str, Any],
    user: Principal,
    settings: Settings,
    idempotency_key: str | None,
    inline: bool = False,
) -> Accepted:
    submission = Submission(
        org_id=user.org_id,
        user_id=user.user_id,
        kind=kind,
        params=params,
        webhook_url=body.webhook(),
        idempotency_key=idempotency_key,
        request_id=request.state.request_id,
        # The request runs an inline task; the sweeper takes over only if the request dies.
        not_before=utcnow() + timedelta(seconds=settings.lease_seconds) if inline else None,
    )
    try:
        return await submit_task(
            request.app.state.sessions, submission, max_attempts=settings.task_max_attempts
        )
    except IdempotencyMismatch:
        raise HTTPException(
            status_code=409,
            detail=(
                "This Idempotency-Key was already used with a different request body; "
                "use a new key."
            ),
        ) from None


def _respond_accepted(
    request: Request,
    response: Response,
    accepted: Accepted,
    background_tasks: BackgroundTasks,
    runner: TaskRunner,
) -> TaskAccepted:
    # Only ids cross into the task; it opens its own session. Without a free
    # slot the task stays scheduled in the database and the sweeper runs it.
    if accepted.created and runner.try_reserve():
        background_tasks.add_task(runner.run_scheduled, task_id=accepted.task_id)
    status_url = str(request.url_for("get_task", task_id=str(accepted.task_id)))
    response.headers["Location"] = status_url
    return TaskAccepted(task_id=accepted.task_id, status=accepted.status, status_url=status_url)


@router.post("/import-contacts", status_code=202, response_model=TaskAccepted, responses=_ACCEPTED)
async def import_contacts(
    body: ImportContactsIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    settings: SettingsDep,
    runner: RunnerDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Import a contacts file in the background."""
    accepted = await _accept(
        request,
        kind="import_contacts",
        body=body,
        params={"file_id": body.file_id},
        user=user,
        settings=settings,
        idempotency_key=idempotency_key,
    )
    return _respond_accepted(request, response, accepted, background_tasks, runner)


@router.post(
    "/send-notification", status_code=202, response_model=TaskAccepted, responses=_ACCEPTED
)
async def send_notification(
    body: SendNotificationIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    settings: SettingsDep,
    runner: RunnerDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Send a notification email in the background."""
    accepted = await _accept(
        request,
        kind="send_notification",
        body=body,
        params={"email": str(body.email), "message": body.message},
        user=user,
        settings=settings,
        idempotency_key=idempotency_key,
    )
    return _respond_accepted(request, response, accepted, background_tasks, runner)


@router.post(
    "/process-data",
    status_code=202,
    response_model=TaskAccepted | TaskView,
    responses={
        **_ACCEPTED,
        200: {"model": TaskView, "description": "mode=inline: the finished task"},
    },
)
async def process_data(
    body: ProcessDataIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    settings: SettingsDep,
    runner: RunnerDep,
    idempotency_key: IdempotencyKey = None,
    mode: Literal["background", "inline"] = Query(
        default="background",
        description="Run the work after the response (202) or before it (200).",
    ),
) -> TaskAccepted | TaskView:
    """Process data: the same unit of work in the background or inline, for comparison."""
    accepted = await _accept(
        request,
        kind="process_data",
        body=body,
        params={"data": body.data, "io_ms": body.io_ms, "cpu_ms": body.cpu_ms},
        user=user,
        settings=settings,
        idempotency_key=idempotency_key,
        inline=mode == "inline",
    )
    if mode == "background":
        return _respond_accepted(request, response, accepted, background_tasks, runner)
    if accepted.created:
        await runner.run_inline(accepted.task_id)
    response.status_code = 200
    return await _load_view(request, accepted.task_id)


async def _load_view(request: Request, task_id: uuid.UUID) -> TaskView:
    async with session_scope(request.app.state.sessions) as session:
        task = await session.get(Task, task_id)
    assert task is not None, "an accepted task has a projection row"
    return TaskView.model_validate(task)
