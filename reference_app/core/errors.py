"""Exception handlers: every error is JSON, and a database outage is a 503, never a 500."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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
# PostgreSQL's SQLSTATE classes for a server going away or not ready: 08 connection
# exception, 57P01-57P03 admin/crash shutdown and "the database system is starting up".
# asyncpg's CannotConnectNowError (57P03) reaches us as a plain DBAPIError.
_OUTAGE_SQLSTATE_PREFIXES = ("08", "57P")
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
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return exc.connection_invalidated or (
        isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATE_PREFIXES)
    )


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


def _printable(value: object) -> object:
    # A lone surrogate cannot be encoded as UTF-8: show it escaped rather than fail.
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, minus the echoed ``input``.

    The input may hold what JSON cannot encode (``NaN``, a lone surrogate), which would
    turn the 422 into a 500, and a client does not need its own megabyte sent back.
    """
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            **{k: v for k, v in error.items() if k != "input"},
            "loc": [_printable(part) for part in error["loc"]],
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _on_unexpected_error(request: Request, exc: Exception) -> Response:
    # Logged by uvicorn with the traceback; the client gets JSON like every other error.
    return JSONResponse({"detail": "Internal server error."}, status_code=500)


def install_error_handlers(
    app: FastAPI, *, on_outage: Callable[[Request], None] | None = None
) -> None:
    """Register the handlers on ``app``; ``on_outage`` is told of each database-outage 503."""

    async def on_database_error(request: Request, exc: Exception) -> Response:
        response = await _on_database_error(request, exc)  # re-raises what is no outage
        if on_outage is not None:
            on_outage(request)
        return response

    for exc_type in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(exc_type, on_database_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
