"""Fixtures the exercise checks share: a fresh, migrated SQLite database per check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.db.engine import SessionFactory, create_engine, create_session_factory
from reference_app.db.migrate import upgrade_database


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    """A migrated SQLite database of this check's own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'exercise.db'}"
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)
