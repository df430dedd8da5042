"""Statements that are spelled differently per backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["insert_or_ignore"]


def insert_or_ignore(session: AsyncSession, entity: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's backend: safe to run twice."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(entity).on_conflict_do_nothing()
