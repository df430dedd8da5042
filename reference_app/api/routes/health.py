"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from reference_app.api.deps import SessionDep
from reference_app.core.errors import database_unavailable_response, is_database_outage
from reference_app.db.schema import read_schema

__all__ = ["router"]

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 2.0
_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "The database answers and its schema is this code's: "
            '`{"status": "ready", "database": "ok", "schema": "<Alembic revision>"}`'
        ),
    },
    503: {
        "description": (
            "The database is unreachable (`detail`, `Retry-After`), or its schema is missing, "
            "behind or unknown to this code (`detail` says why and the command to run)"
        ),
    },
}


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up and its event loop answers. No auth, no I/O."""
    return {"status": "ok"}


@router.get("/ready", responses=_READY_RESPONSES)
async def ready(session: SessionDep) -> JSONResponse:
    """The database answers, at the schema revision this code was written for."""
    try:
        schema = await asyncio.wait_for(read_schema(session), READY_TIMEOUT_SECONDS)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        return database_unavailable_response()
    if schema.problem is not None:
        body = {"status": "not_ready", "database": "ok", "schema": schema.current}
        return JSONResponse({**body, "expected_schema": schema.head, "detail": schema.problem}, 503)
    return JSONResponse({"status": "ready", "database": "ok", "schema": schema.current})
