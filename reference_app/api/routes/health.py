"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from reference_app.api.deps import SessionDep
from reference_app.core.errors import database_unavailable_response, is_database_outage

__all__ = ["router"]

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 2.0


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up and its event loop answers. No auth, no I/O."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "Database unreachable"}})
async def ready(session: SessionDep) -> JSONResponse:
    """The database answers a query."""
    try:
        await asyncio.wait_for(session.execute(text("SELECT 1")), READY_TIMEOUT_SECONDS)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        return database_unavailable_response()
    return JSONResponse({"status": "ready", "database": "ok"})
