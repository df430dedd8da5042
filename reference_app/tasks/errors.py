"""Which errors are worth another attempt."""

from __future__ import annotations

import httpx

from reference_app.core.errors import is_database_outage

__all__ = ["PermanentError", "TransientError", "is_transient"]


class TransientError(Exception):
    """Raise (or subclass) in a task body for a failure that another attempt may not meet."""


class PermanentError(Exception):
    """Raise in a task body for a failure that no retry will fix (bad input, missing file)."""


def is_transient(exc: BaseException) -> bool:
    """Connect errors, timeouts, database outages and TransientError retry; others fail."""
    if isinstance(exc, PermanentError):
        return False
    return isinstance(
        exc, TransientError | httpx.TransportError | ConnectionError | TimeoutError
    ) or (is_database_outage(exc))
