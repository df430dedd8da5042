"""The packaged migrations: an empty database gets the schema, and a second run changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.db.engine import create_engine, create_session_factory, session_scope
from reference_app.db.migrate import alembic_config, upgrade_database
from reference_app.db.models import Base, Contact
from tests.conftest import TEST_POSTGRES_URL

TABLES = {"alembic_version", "contacts", "gone_webhook_urls", "task_events", "tasks"}
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
async def empty_engine(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database with no tables at all (not a copy of the migrated template)."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        yield engine
        await engine.dispose()
        return
    request.getfixturevalue("postgres_template")  # skips locally, fails in CI, without PostgreSQL
    name = f"fbj_empty_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_engine(
            make_url(TEST_POSTGRES_URL).set(database=name).render_as_string(False)
        )
        try:
            yield engine
        finally:
            await engine.dispose()
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "indexes": sorted(i["name"] or "" for i in inspector.get_indexes(table)),
            "unique": sorted(u["name"] or "" for u in inspector.get_unique_constraints(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


def _triggers(connection: Connection) -> list[str]:
    if connection.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
    else:
        query = (
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'task_events'::regclass "
            "AND NOT tgisinternal ORDER BY tgname"
        )
    return list(connection.execute(text(query)).scalars())


async def schema_of(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_schema)


async def revisions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list(await connection.scalars(text("SELECT version_num FROM alembic_version")))


async def test_the_empty_database_really_is_empty(empty_engine: AsyncEngine) -> None:
    assert await schema_of(empty_engine) == {}


async def test_upgrade_creates_the_tables_on_an_empty_database(empty_engine: AsyncEngine) -> None:
    await upgrade_database(empty_engine)

    assert set(await schema_of(empty_engine)) == TABLES
    assert await revisions(empty_engine) == [HEAD]


async def test_upgrade_installs_the_triggers_that_keep_the_log_append_only(
    backend: str, empty_engine: AsyncEngine
) -> None:
    await upgrade_database(empty_engine)

    async with empty_engine.connect() as connection:
        triggers = await connection.run_sync(_triggers)

    if backend == "postgres":
        assert triggers == ["task_events_no_truncate", "task_events_no_update_delete"]
    else:
        assert triggers == ["task_events_no_delete", "task_events_no_update"]


async def test_the_migrated_schema_matches_the_models(empty_engine: AsyncEngine) -> None:
    await upgrade_database(empty_engine)

    def diff(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with empty_engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_running_the_upgrade_twice_changes_nothing(empty_engine: AsyncEngine) -> None:
    await upgrade_database(empty_engine)
    sessions = create_session_factory(empty_engine)
    async with session_scope(sessions) as session:
        session.add(
            Contact(org_id="o", email="e@example.com", name="n", source_task_id=uuid.uuid4())
        )
    before = await schema_of(empty_engine)

    await upgrade_database(empty_engine)

    assert await schema_of(empty_engine) == before
    assert await revisions(empty_engine) == [HEAD]
    async with session_scope(sessions) as session:
        assert list(await session.scalars(select(Contact.email))) == ["e@example.com"]


async def test_upgrade_on_the_test_databases_is_a_no_op(engine: AsyncEngine) -> None:
    before = await schema_of(engine)

    await upgrade_database(engine)

    assert await schema_of(engine) == before
    assert await revisions(engine) == [HEAD]
