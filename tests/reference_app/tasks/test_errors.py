"""Which errors get another attempt: is_transient."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from reference_app.tasks.errors import PermanentError, TransientError, is_transient

_REQUEST = httpx.Request("POST", "https://hooks.example.com/")


def _name(exc: BaseException) -> str:
    return type(exc).__name__


class RateLimited(TransientError):
    pass


class NotWorthRetrying(PermanentError, TransientError):
    """Both at once: the explicit 'permanent' wins."""


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("try again"),
        RateLimited("429"),
        httpx.ConnectError("connection refused", request=_REQUEST),
        httpx.ReadTimeout("read timed out", request=_REQUEST),
        httpx.RemoteProtocolError("peer closed connection", request=_REQUEST),
        OperationalError("SELECT 1", {}, Exception("could not connect to server")),
        DBAPIError(
            "SELECT 1", {}, Exception("terminating connection"), connection_invalidated=True
        ),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
    ],
    ids=_name,
)
def test_network_and_database_outages_are_transient(exc: BaseException) -> None:
    assert is_transient(exc) is True


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad input"),
        KeyError("file_id"),
        TypeError("unexpected argument"),
        PermanentError("contacts file does not exist"),
        NotWorthRetrying("explicitly permanent"),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        ZeroDivisionError(),
    ],
    ids=_name,
)
def test_bugs_bad_input_and_permanent_errors_are_not_transient(exc: BaseException) -> None:
    assert is_transient(exc) is False


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError(2, "No such file or directory", "contacts.csv"),
        PermissionError(13, "Permission denied", "contacts.csv"),
        IsADirectoryError(21, "Is a directory", "contacts"),
    ],
    ids=_name,
)
def test_local_file_errors_are_not_transient(exc: BaseException) -> None:
    # A file that is missing or unreadable now will be so at the next attempt too.
    assert is_transient(exc) is False
