"""Is the database's schema the one this code was written for? Its Alembic revision, compared
with the head of the packaged migrations, at startup and by every readiness probe."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from reference_app.core.errors import is_database_outage
from reference_app.core.logging import get_logger
from reference_app.db.migrate import alembic_config

__all__ = [
    "MIGRATE_COMMAND",
    "SchemaNotCurrent",
    "SchemaState",
    "check_schema",
    "read_schema",
    "require_current_schema",
    "schema_state",
]

log = get_logger(__name__)

MIGRATE_COMMAND = "python -m reference_app migrate"
# The readiness query: one round trip, which also proves the database answers.
_REVISION_QUERY = text("SELECT version_num FROM alembic_version")
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


@dataclass(frozen=True, slots=True)
class _Migrations:
    head: str
    known: frozenset[str]


@lru_cache(maxsize=1)
def _migrations() -> _Migrations:
    """The packaged migrations' head and every revision they know (read once per process)."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None, "the package ships migrations"
    return _Migrations(head, frozenset(s.revision for s in script.walk_revisions()))


@dataclass(frozen=True, slots=True)
class SchemaState:
    """The database's revision (None: never migrated) against this code's head."""

    current: str | None
    head: str
    known: bool  # this code has a migration with the ``current`` revision

    @property
    def verdict(self) -> Literal["current", "missing", "behind", "unknown"]:
        if self.current == self.head:
            return "current"
        if self.current is None:
            return "missing"
        return "behind" if self.known else "unknown"

    @property
    def problem(self) -> str | None:
        """Why this code cannot use the database, and what to do; None when it can."""
        match self.verdict:
            case "current":
                return None
            case "missing":
                return (
                    f"the database has no schema (no Alembic revision; this code needs "
                    f"{self.head}): run `{MIGRATE_COMMAND}`"
                )
            case "behind":
                return (
                    f"the database's schema is at revision {self.current}, behind this code's "
                    f"{self.head}: run `{MIGRATE_COMMAND}`"
                )
        return (
            f"the database's schema is at revision {self.current}, which this code does not "
            f"know (its head is {self.head}): run the release that migrated it, or downgrade "
            f"the database to {self.head}"
        )


class SchemaNotCurrent(RuntimeError):
    """The app refuses to start on a database whose schema is not this code's."""


def schema_state(revisions: Sequence[str]) -> SchemaState:
    """The state for the rows of ``alembic_version`` (none, or one per head)."""
    migrations = _migrations()
    current = ",".join(sorted(revisions)) or None
    return SchemaState(current, migrations.head, current in migrations.known)


def _is_missing_table(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_TABLE:
        return True
    return "no such table" in str(exc.orig)  # SQLite's wording; it has no SQLSTATE


async def read_schema(session: AsyncSession | AsyncConnection) -> SchemaState:
    """The schema behind ``session``, in the one query a readiness probe can afford.

    The rows Alembic's ``MigrationContext.get_current_heads()`` reads, without its two log
    lines per call, and without an extra catalog query to ask whether the table exists.
    """
    try:
        revisions = (await session.scalars(_REVISION_QUERY)).all()
    except DBAPIError as exc:
        if not _is_missing_table(exc):
            raise
        return schema_state(())
    return schema_state(revisions)


async def check_schema(engine: AsyncEngine) -> SchemaState:
    """The schema behind ``engine``, on a connection of its own."""
    async with engine.connect() as connection:
        return await read_schema(connection)


async def require_current_schema(
    engine: AsyncEngine, *, within_seconds: float
) -> SchemaState | None:
    """At startup: raise ``SchemaNotCurrent`` after one log line unless the schema is current.

    A database that does not answer within ``within_seconds`` is no reason to refuse: the app
    starts, and ``/ready`` reports the schema once the database answers (None is returned).
    """
    try:
        state = await asyncio.wait_for(check_schema(engine), within_seconds)
    except Exception as exc:
        if not is_database_outage(exc):
            raise
        log.warning("schema_unchecked", error_type=type(exc).__name__, seconds=within_seconds)
        return None
    if state.problem is None:
        return state
    database = engine.url.render_as_string(hide_password=True)
    event = "schema_unknown" if state.verdict == "unknown" else "schema_not_migrated"
    command = None if state.verdict == "unknown" else MIGRATE_COMMAND
    log.error(
        event,
        detail=f"refusing to start: {state.problem}",
        current=state.current,
        head=state.head,
        command=command,
        database=database,
    )
    raise SchemaNotCurrent(f"{event}: refusing to start: {state.problem} ({database})")
