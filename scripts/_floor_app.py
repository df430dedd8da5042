"""The accept path's floor: the reference app's request path with nothing durable behind it.

``uvicorn --app-dir scripts _floor_app:app`` serves ``POST /process-data`` with
the reference app's own pieces: its middleware (request id, body limit), error
handlers, JSON content-type check, ``CurrentUser`` dependency, idempotency-key
header, request model and response model, and the same route signature. What
it leaves out is the work the issue asks for: no ``task_scheduled`` is
committed and no task is handed to ``BackgroundTasks``. It answers the 202 the
real route would, so ``scripts/bench_accept.py`` can measure what FastAPI alone
costs per request on this machine, the ceiling no database tuning can lift.

Not an app to copy: it accepts work it never does.
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Query, Request, Response

from reference_app.api.deps import CurrentUser, IdempotencyKey, require_json
from reference_app.api.routes import health
from reference_app.api.schemas import ProcessDataIn, TaskAccepted
from reference_app.core.body_limit import BodyLimitMiddleware
from reference_app.core.config import get_settings
from reference_app.core.errors import install_error_handlers
from reference_app.core.logging import configure_logging
from reference_app.core.request_id import RequestIdMiddleware

__all__ = ["app", "create_floor_app"]

router = APIRouter(dependencies=[Depends(require_json)])


@router.post("/process-data", status_code=202, response_model=TaskAccepted)
async def process_data(
    body: ProcessDataIn,
    request: Request,
    response: Response,
    background_tasks: BackgroundTasks,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
    mode: Literal["background", "inline"] = Query(default="background"),
) -> TaskAccepted:
    """The reference route's signature and answer, without the commit and the task."""
    task_id = uuid.uuid4()
    status_url = f"{str(request.base_url).rstrip('/')}/tasks/{task_id}"
    response.headers["Location"] = status_url
    return TaskAccepted(task_id=task_id, status="scheduled", status_url=status_url)


def create_floor_app() -> FastAPI:
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.api_keys)
    app = FastAPI(title="accept-path floor (no database, no task)")
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(router)
    return app


app = create_floor_app()
