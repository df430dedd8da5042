"""The endpoints that accept background work: 202 once ``task_scheduled`` is committed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    Response,
)
from fastapi.exceptions import RequestValidationError

from reference_app.api.deps import CurrentUser, IdempotencyKey, require_json
from reference_app.api.routes.tasks import task_view
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
from reference_app.webhooks.ssrf import UnsafeURL, check_url

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_json)], tags=["jobs"])

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Body could not be parsed (invalid UTF-8, or JSON nested too deep)"},
    401: {"description": "Missing or invalid API key"},
    409: {"description": "Idempotency-Key reused with a different body"},
    413: {"description": "Body over the size limit"},
    415: {"description": "Body is not JSON"},
    503: {"description": "Database unavailable; nothing written; see Retry-After"},
}


def _checked_webhook_url(url: str | None, settings: Settings) -> str | None:
    """The submission-time SSRF check: a 422 that says what is wrong with the URL."""
    if url is None:
        return None
    try:
        return check_url(url, settings.webhook_allow_list)
    except UnsafeURL as exc:
        raise RequestValidationError(
            [
                {
                    "type": "unsafe_url",
                    "loc": ("body", "webhook_url"),
                    "msg": f"webhook_url is not allowed: {exc}",
                    "input": url,
                }
            ]
        ) from None


@lru_cache(maxsize=8)
def _task_path_prefix(app: FastAPI) -> str:
    marker = "0"
    return app.url_path_for("get_task", task_id=marker)[: -len(marker)]


def _status_url(request: Request, task_id: uuid.UUID) -> str:
    """What ``request.url_for("get_task", ...)`` returns, without searching the routes
    on every request: the route's path is looked up once per app."""
    return f"{str(request.base_url).rstrip('/')}{_task_path_prefix(request.app)}{task_id}"


@dataclass(frozen=True, slots=True)
class _Job:
    """What an endpoint asks for, before it is committed."""

    kind: str
    body: JobRequest
    params: dict[str, Any]
    user: Principal
    idempotency_key: str | None


# The endpoints read the settings and the runner from ``request.app.state`` rather than
# through dependencies: FastAPI solves every dependency on every request, and on this,
# the hottest path of the app, each one cost more than the dictionary lookup it wraps.


async def _accept(request: Request, job: _Job, *, run_by_request: bool) -> Accepted:
    settings: Settings = request.app.state.settings
    user = job.user
    submission = Submission(
        org_id=user.org_id,
        user_id=user.user_id,
        kind=job.kind,
        params=job.params,
        webhook_url=_checked_webhook_url(job.body.webhook_url, settings),
        idempotency_key=job.idempotency_key,
        request_id=request.state.request_id,
        # A task this request will run is not due for the sweeper unless the request
        # dies first (a crash between commit and run): then it waits out one lease.
        not_before=utcnow() + timedelta(seconds=settings.lease_seconds) if run_by_request else None,
    )
    try:
        return await submit_task(
            request.app.state.writer, submission, max_attempts=settings.task_max_attempts
        )
    except IdempotencyMismatch:
        raise HTTPException(
            status_code=409,
            detail=(
                "This Idempotency-Key was already used with a different request body; "
                "use a new key."
            ),
        ) from None


async def _accept_for_background(
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    job: _Job,
) -> TaskAccepted:
    """Commit the task, then hand its id to BackgroundTasks if a slot is free.

    The slot is taken first, so the task is committed knowing who runs it:
    this request, or (with every slot busy) the sweeper, which sees it due at once.
    """
    runner: TaskRunner = request.app.state.runner
    reserved = runner.try_reserve()
    try:
        accepted = await _accept(request, job, run_by_request=reserved)
    except BaseException:
        if reserved:
            runner.release()
        raise
    if reserved and accepted.created:
        # Only the id crosses into the task; it opens its own session.
        background_tasks.add_task(runner.run_scheduled, task_id=accepted.task_id)
    elif reserved:
        runner.release()  # an idempotent replay: the task already has a runner
    status_url = _status_url(request, accepted.task_id)
    response.headers["Location"] = status_url
    return TaskAccepted(task_id=accepted.task_id, status=accepted.status, status_url=status_url)


@router.post("/import-contacts", status_code=202, response_model=TaskAccepted, responses=_ACCEPTED)
async def import_contacts(
    body: ImportContactsIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Import a contacts file in the background."""
    return await _accept_for_background(
        request,
        response,
        background_tasks,
        _Job(
            kind="import_contacts",
            body=body,
            params={"file_id": body.file_id},
            user=user,
            idempotency_key=idempotency_key,
        ),
    )


@router.post(
    "/send-notification", status_code=202, response_model=TaskAccepted, responses=_ACCEPTED
)
async def send_notification(
    body: SendNotificationIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Send a notification email in the background."""
    return await _accept_for_background(
        request,
        response,
        background_tasks,
        _Job(
            kind="send_notification",
            body=body,
            params={"email": str(body.email), "message": body.message},
            user=user,
            idempotency_key=idempotency_key,
        ),
    )


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
    idempotency_key: IdempotencyKey = None,
    mode: Literal["background", "inline"] = Query(
        default="background",
        description="Run the work after the response (202) or before it (200).",
    ),
) -> TaskAccepted | TaskView:
    """Process data: the same unit of work in the background or inline, for comparison."""
    job = _Job(
        kind="process_data",
        body=body,
        params={"data": body.data, "io_ms": body.io_ms, "cpu_ms": body.cpu_ms},
        user=user,
        idempotency_key=idempotency_key,
    )
    if mode == "background":
        return await _accept_for_background(request, response, background_tasks, job)
    accepted = await _accept(request, job, run_by_request=True)
    if accepted.created:
        runner: TaskRunner = request.app.state.runner
        await runner.run_inline(accepted.task_id)
    response.status_code = 200
    return await _load_view(request, accepted.task_id)


async def _load_view(request: Request, task_id: uuid.UUID) -> TaskView:
    async with session_scope(request.app.state.sessions) as session:
        task = await session.get(Task, task_id)
        assert task is not None, "an accepted task has a projection row"
        return await task_view(session, task)
