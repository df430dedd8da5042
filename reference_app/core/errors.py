"""Exception handlers: every error is JSON, and a database outage is a 503, never a 500."""

from __future__ import annotations

import errno
import socket

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import Response

from reference_app.core.logging import get_logger

__all__ = [
    "DATABASE_UNAVAILABLE",
    "RETRY_AFTER_SECONDS",
    "install_error_handlers",
    "is_database_outage",
]

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 2
DATABASE_UNAVAILABLE = "The database is unavailable right now; nothing was written. Retry later."

# What a down, restarting or locked database raises through SQLAlchemy and its drivers.
_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)
# asyncpg raises a bare OSError for some failures to connect; other OSErrors are bugs (500).
_NETWORK_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}
)


def is_database_outage(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached or used right now."""
    if isinstance(exc, _OUTAGE_TYPES):
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_unavailable_response() -> JSONResponse:
    """The 503 a client gets while the database is down."""
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_database_error(request: Request, exc: Exception) -> Response:
    if not is_database_outage(exc):
        raise exc
    log.warning("database_unavailable", error_type=type(exc).__name__, path=request.url.path)
    return database_unavailable_response()


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    for exc_type in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(exc_type, _on_database_error)
