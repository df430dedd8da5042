"""Apply the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.db.engine import create_engine

__all__ = ["alembic_config", "migrate_database", "upgrade_database"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema behind ``engine`` up to ``revision``."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def migrate_database(url: str, revision: str = "head") -> None:
    """``upgrade_database`` for a URL, on an engine of its own that is disposed after."""
    engine = create_engine(url)
    try:
        await upgrade_database(engine, revision)
    finally:
        await engine.dispose()
