"""Dependencies, as ``Annotated`` aliases so routes read like prose.

They are ``async def`` although none of them awaits: FastAPI runs a plain ``def``
dependency in the threadpool, a thread hop per dependency per request.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from email.message import Message
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from reference_app.core.config import Principal, Settings
from reference_app.metrics import Metrics
from reference_app.store import TaskStore
from reference_app.tasks.scheduler import Scheduler
from reference_app.tasks.worker import Worker

__all__ = [
    "CurrentUser",
    "IdempotencyKey",
    "JsonCaller",
    "MetricsDep",
    "SchedulerDep",
    "SessionDep",
    "SettingsDep",
    "StoreDep",
    "WorkerDep",
    "get_current_user",
    "get_json_caller",
    "get_metrics",
    "get_scheduler",
    "get_settings_from_app",
    "get_store",
    "get_worker",
    "require_json",
]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


async def get_settings_from_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A read session for the request, closed when the endpoint returns (before any task runs)."""
    async with request.app.state.sessions() as session:
        yield session


# scope="function": released before the response and its background tasks, not after them.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_store(request: Request) -> TaskStore:
    """The app's task store; ``app.dependency_overrides[get_store]`` swaps it."""
    store: TaskStore = request.app.state.store
    return store


StoreDep = Annotated[TaskStore, Depends(get_store)]


async def get_worker(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


WorkerDep = Annotated[Worker, Depends(get_worker)]


async def get_scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics (set when ``APP_METRICS_TOKEN`` is, the only case /metrics is served)."""
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]

BearerKey = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _principal(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is not None:
        presented = credentials.credentials.encode()
        for key, principal in settings.api_keys.items():
            if hmac.compare_digest(presented, key.encode()):
                return principal
    raise HTTPException(
        status_code=401,
        detail="Missing or invalid API key: send `Authorization: Bearer <key>`.",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_current_user(settings: SettingsDep, credentials: BearerKey) -> Principal:
    """The principal behind a valid ``Authorization: Bearer`` key, else 401."""
    return _principal(settings, credentials)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


@lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    # Parsed by the email package (parameters, case, spacing); clients send few distinct values.
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON."""
    if not _is_json(request.headers.get("content-type", "")):
        raise HTTPException(
            status_code=415, detail="Send a JSON body with `Content-Type: application/json`."
        )


async def get_json_caller(
    request: Request, settings: SettingsDep, credentials: BearerKey
) -> Principal:
    """``require_json`` and ``get_current_user`` in one dependency, in that order (415
    before 401): FastAPI solves every dependency of every request, so the write
    endpoints, the hottest path of the app, take one for both."""
    await require_json(request)
    return _principal(settings, credentials)


JsonCaller = Annotated[Principal, Depends(get_json_caller)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request safely: the same key and body return the same task.",
    ),
]
