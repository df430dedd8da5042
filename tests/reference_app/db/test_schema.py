"""The schema check: the database's Alembic revision against the code's, and an app that will
not start on a database it cannot use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from reference_app.db.engine import create_engine, create_session_factory
from reference_app.db.migrate import alembic_config, upgrade_database
from reference_app.db.schema import (
    MIGRATE_COMMAND,
    SchemaNotCurrent,
    SchemaState,
    check_schema,
    read_schema,
    require_current_schema,
)
from reference_app.main import create_app
from reference_app.testing import free_port
from tests.conftest import make_settings

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
UNKNOWN = "ffff_from_a_newer_release"


async def _with_migration_context(engine: AsyncEngine) -> SchemaState:
    return await check_schema(engine)


async def _with_the_readiness_query(engine: AsyncEngine) -> SchemaState:
    async with create_session_factory(engine)() as session:
        return await read_schema(session)


Reader = Callable[[AsyncEngine], Awaitable[SchemaState]]
READERS = [
    pytest.param(_with_migration_context, id="startup"),
    pytest.param(_with_the_readiness_query, id="ready"),
]


@pytest.fixture
async def empty_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database_url)
    yield engine
    await engine.dispose()


async def _set_revision(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
        )


@pytest.mark.parametrize("read", READERS)
async def test_a_database_never_migrated_has_no_schema(
    empty_engine: AsyncEngine, read: Reader
) -> None:
    state = await read(empty_engine)

    assert (state.current, state.head, state.verdict) == (None, HEAD, "missing")
    assert state.problem == (
        f"the database has no schema (no Alembic revision; this code needs {HEAD}): "
        f"run `{MIGRATE_COMMAND}`"
    )


@pytest.mark.parametrize("read", READERS)
async def test_a_database_at_the_first_revision_is_behind(
    empty_engine: AsyncEngine, read: Reader
) -> None:
    await upgrade_database(empty_engine, "0001")

    state = await read(empty_engine)

    assert (state.current, state.verdict) == ("0001", "behind")
    assert state.problem == (
        f"the database's schema is at revision 0001, behind this code's {HEAD}: "
        f"run `{MIGRATE_COMMAND}`"
    )


@pytest.mark.parametrize("read", READERS)
async def test_the_migrated_database_is_current(engine: AsyncEngine, read: Reader) -> None:
    state = await read(engine)

    assert (state.current, state.verdict, state.problem) == (HEAD, "current", None)


@pytest.mark.parametrize("read", READERS)
async def test_a_revision_this_code_does_not_know_is_not_called_old(
    engine: AsyncEngine, read: Reader
) -> None:
    await _set_revision(engine, UNKNOWN)

    state = await read(engine)

    assert (state.current, state.verdict) == (UNKNOWN, "unknown")
    assert state.problem is not None
    assert "does not know" in state.problem
    assert MIGRATE_COMMAND not in state.problem  # upgrading cannot help; the code is older


@pytest.mark.parametrize("revision", [None, "0001", "head"])
async def test_the_revision_read_is_the_one_alembic_reads(
    empty_engine: AsyncEngine, revision: str | None
) -> None:
    if revision is not None:
        await upgrade_database(empty_engine, revision)
    async with empty_engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )

    state = await check_schema(empty_engine)

    assert state.current == (",".join(heads) or None)
    assert state.current == {None: None, "0001": "0001", "head": HEAD}[revision]


# At startup -----------------------------------------------------------------------------


async def test_startup_refuses_a_database_never_migrated_after_one_log_line(
    empty_engine: AsyncEngine,
) -> None:
    with capture_logs() as logs, pytest.raises(SchemaNotCurrent) as raised:
        await require_current_schema(empty_engine, within_seconds=5)

    [line] = logs
    assert line["event"] == "schema_not_migrated"
    assert line["log_level"] == "error"
    assert (line["current"], line["head"], line["command"]) == (None, HEAD, MIGRATE_COMMAND)
    assert MIGRATE_COMMAND in line["detail"]
    assert line["detail"].startswith("refusing to start: the database has no schema")
    assert line["detail"] in str(raised.value)  # uvicorn prints the exception: the same words


async def test_startup_passes_a_current_database_without_a_word(engine: AsyncEngine) -> None:
    with capture_logs() as logs:
        state = await require_current_schema(engine, within_seconds=5)

    assert state is not None
    assert state.current == HEAD
    assert logs == []


async def test_startup_names_an_unknown_revision_without_the_migrate_command(
    engine: AsyncEngine,
) -> None:
    await _set_revision(engine, UNKNOWN)

    with capture_logs() as logs, pytest.raises(SchemaNotCurrent, match=UNKNOWN):
        await require_current_schema(engine, within_seconds=5)

    [line] = logs
    assert (line["event"], line["current"], line["command"]) == ("schema_unknown", UNKNOWN, None)


@pytest.fixture
def dead_database_url(backend: str, tmp_path: Path) -> str:
    """An unreachable database: a directory as SQLite file, a closed port for PostgreSQL."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}"
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"


async def test_a_database_that_does_not_answer_is_left_to_ready(dead_database_url: str) -> None:
    engine = create_engine(dead_database_url)
    try:
        with capture_logs() as logs:
            assert await require_current_schema(engine, within_seconds=5) is None
    finally:
        await engine.dispose()

    [line] = logs
    assert (line["event"], line["log_level"]) == ("schema_unchecked", "warning")


# The app's lifespan ---------------------------------------------------------------------


async def test_the_app_refuses_to_start_on_a_database_never_migrated(
    empty_database_url: str,
) -> None:
    app = create_app(make_settings(empty_database_url))

    with capture_logs() as logs, pytest.raises(SchemaNotCurrent, match="no schema"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")

    # One line, and nothing started that would log on: no sweeper, no worker.
    assert [line["event"] for line in logs] == ["schema_not_migrated"]
    assert not hasattr(app.state, "sweeper")


async def test_the_app_refuses_to_start_on_a_database_at_an_older_revision(
    empty_database_url: str, empty_engine: AsyncEngine
) -> None:
    await upgrade_database(empty_engine, "0001")
    app = create_app(make_settings(empty_database_url))

    with capture_logs() as logs, pytest.raises(SchemaNotCurrent, match=f"0001, behind .* {HEAD}"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")

    assert [line["event"] for line in logs] == ["schema_not_migrated"]


async def test_migrating_on_startup_then_passes_the_check(empty_database_url: str) -> None:
    app = create_app(make_settings(empty_database_url, migrate_on_startup=True))

    async with app.router.lifespan_context(app):
        state = await check_schema(app.state.engine)

    assert state.current == HEAD
