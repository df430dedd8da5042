"""The endpoints that accept background work: 202 once ``task_scheduled`` is committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from reference_app.api.delays import due_time, field_error
from reference_app.api.deps import IdempotencyKey, JsonCaller, SettingsDep, StoreDep, WorkerDep
from reference_app.api.routes.tasks import task_view
from reference_app.api.schemas import (
    ImportContactsIn,
    JobRequest,
    ProcessDataIn,
    SendNotificationIn,
    TaskAccepted,
    TaskView,
)
from reference_app.core.config import Principal, Settings
from reference_app.core.errors import RETRY_AFTER_SECONDS
from reference_app.store import Accepted, BacklogFull, IdempotencyMismatch, Submission, TaskStore
from reference_app.tasks.schedules import KEY_PREFIX
from reference_app.tasks.worker import Worker
from reference_app.webhooks.ssrf import AllowList, UnsafeURL, check_url

__all__ = ["router"]

router = APIRouter(tags=["jobs"])

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Body could not be parsed (invalid UTF-8, or JSON nested too deep)"},
    401: {"description": "Missing or invalid API key"},
    409: {"description": "Idempotency-Key reused with a different body"},
    413: {"description": "Body over the size limit"},
    415: {"description": "Body is not JSON"},
    503: {
        "description": (
            "Database unavailable, or the due backlog at APP_MAX_DUE_TASKS; "
            "nothing written; see Retry-After"
        )
    },
}


def _checked_webhook_url(url: str | None, settings: Settings) -> str | None:
    """The submission-time SSRF check: a 422 that says what is wrong with the URL."""
    if url is None:
        return None
    try:
        return check_url(url, AllowList.from_setting(settings.webhook_allow))
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


def _checked_key(key: str | None) -> str | None:
    """Keys under ``schedule:`` are the scheduler's: a client's would take a slot's place."""
    if key is not None and key.startswith(KEY_PREFIX):
        message = f"Idempotency-Key values starting with {KEY_PREFIX!r} are reserved; use another"
        raise field_error(("header", "Idempotency-Key"), key, "reserved_key", message)
    return key


@dataclass(frozen=True, slots=True)
class _Job:
    """What an endpoint asks for, before it is committed."""

    kind: str
    body: JobRequest
    params: dict[str, Any]
    user: Principal
    idempotency_key: str | None


async def _accept(
    request: Request,
    store: TaskStore,
    settings: Settings,
    job: _Job,
    *,
    not_before: datetime | None = None,
) -> Accepted:
    submission = Submission(
        org_id=job.user.org_id,
        user_id=job.user.user_id,
        kind=job.kind,
        params=job.params,
        webhook_url=_checked_webhook_url(job.body.webhook_url, settings),
        idempotency_key=_checked_key(job.idempotency_key),
        request_id=request.state.request_id,
        not_before=not_before,
        run_at=job.body.run_at,
        delay_seconds=job.body.delay_seconds,
    )
    try:
        return await store.accept(submission)
    except BacklogFull as exc:
        raise HTTPException(
            status_code=503,
            detail=(
                f"Too much work is waiting ({exc.due} tasks due, APP_MAX_DUE_TASKS={exc.bound}); "
                "nothing was written. Retry later."
            ),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    except IdempotencyMismatch:
        raise HTTPException(
            status_code=409,
            detail=(
                "This Idempotency-Key was already used with a different request body; "
                "use a new key."
            ),
        ) from None


def _accepted(request: Request, response: Response, accepted: Accepted) -> TaskAccepted:
    status_url = str(request.url_for("get_task", task_id=str(accepted.task_id)))
    response.headers["Location"] = status_url
    return TaskAccepted(task_id=accepted.task_id, status=accepted.status, status_url=status_url)


async def _accept_in_background(
    request: Request,
    background_tasks: BackgroundTasks,
    store: TaskStore,
    settings: Settings,
    worker: Worker,
    job: _Job,
) -> Accepted:
    """Accept the job, due at once or at its run_at / delay_seconds; hand a task due at once
    to the worker after the response. A delayed one is the sweeper's: it claims due work
    only, and looks every APP_SWEEP_INTERVAL_SECONDS, which bounds how late it starts."""
    asked = job.body.run_at is not None or job.body.delay_seconds is not None
    due = due_time(job.body, store.clock()) if asked else None
    accepted = await _accept(request, store, settings, job, not_before=due)
    if accepted.created and due is None:  # a replay's task has its run already
        # Only the id crosses into the task; the worker claims it and opens its own sessions.
        background_tasks.add_task(worker.submit, task_id=accepted.task_id, kind=job.kind)
    return accepted


@router.post("/import-contacts", status_code=202, response_model=TaskAccepted, responses=_ACCEPTED)
async def import_contacts(
    body: ImportContactsIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: JsonCaller,
    settings: SettingsDep,
    store: StoreDep,
    worker: WorkerDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Import a contacts file in the background."""
    job = _Job("import_contacts", body, {"file_id": body.file_id}, user, idempotency_key)
    accepted = await _accept_in_background(request, background_tasks, store, settings, worker, job)
    return _accepted(request, response, accepted)


@router.post(
    "/send-notification", status_code=202, response_model=TaskAccepted, responses=_ACCEPTED
)
async def send_notification(
    body: SendNotificationIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: JsonCaller,
    settings: SettingsDep,
    store: StoreDep,
    worker: WorkerDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Send a notification email in the background."""
    params = {"email": str(body.email), "message": body.message}
    job = _Job("send_notification", body, params, user, idempotency_key)
    accepted = await _accept_in_background(request, background_tasks, store, settings, worker, job)
    return _accepted(request, response, accepted)


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
    user: JsonCaller,
    settings: SettingsDep,
    store: StoreDep,
    worker: WorkerDep,
    idempotency_key: IdempotencyKey = None,
    mode: Literal["background", "inline"] = Query(
        default="background",
        description="Run the work after the response (202) or before it (200).",
    ),
) -> TaskAccepted | TaskView:
    """Process data: the same unit of work in the background or inline, for comparison."""
    params = {"data": body.data, "io_ms": body.io_ms, "cpu_ms": body.cpu_ms}
    job = _Job("process_data", body, params, user, idempotency_key)
    if mode == "background":
        accepted = await _accept_in_background(
            request, background_tasks, store, settings, worker, job
        )
        return _accepted(request, response, accepted)
    if body.run_at is not None or body.delay_seconds is not None:
        message = "mode=inline runs the task now: leave out run_at and delay_seconds"
        raise field_error(("query", "mode"), mode, "inline_delayed", message)
    # Run by this request: not due for the sweeper unless the process dies first.
    accepted = await _accept(request, store, settings, job, not_before=worker.hold_until())
    if accepted.created:
        await worker.run_inline(accepted.task_id)
    record = await store.find_task(user.org_id, accepted.task_id)
    assert record is not None, "an accepted task has a projection row"
    response.status_code = 200
    return task_view(record)
