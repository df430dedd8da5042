"""The one place the app reads the wall clock: always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (``datetime.utcnow()`` is naive and deprecated)."""
    return datetime.now(UTC)
