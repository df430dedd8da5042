"""``make bench-listing``'s databases: a fresh one per run, and N tasks in it, fast.

The rows are the projection's alone (``tasks``), with no events: ``GET /tasks`` reads the
projection only, and a million tasks through the event path would take longer than the
rest of the run. They look like a month of an app's work: two orgs (90 % of it ``org-a``,
the demo key's), the three kinds and three statuses in a realistic mix, four tasks to
each ``created_at`` (the ties the cursor must break), and one task in ten with a webhook,
whose delivery is a row of its own. None is due (``scheduled`` ones are due in a year)
and none is running, so the app's sweeper has nothing to claim or recover meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Table, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reference_app.core.clock import utcnow
from reference_app.db.engine import create_engine
from reference_app.db.migrate import migrate_database
from reference_app.db.models import Base
from reference_app.webhooks.enqueue import WEBHOOK_KIND

__all__ = [
    "END",
    "KINDS",
    "ORG",
    "SPAN",
    "STATUSES",
    "Seeded",
    "created_between",
    "fresh_database",
    "seed_tasks",
    "task_rows",
]

ORG, OTHER_ORG = "org-a", "org-b"
END = datetime(2026, 12, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
TIES = 4  # tasks per created_at, as a group commit's batch can share one
KINDS = {"process_data": 80, "import_contacts": 15, "send_notification": 5}
STATUSES = {"succeeded": 93.5, "failed": 6, "scheduled": 0.5}
WEBHOOK_EVERY = 10
BATCH = 10_000
_DUE_LATER = timedelta(days=365)
_TASKS: Table = Base.metadata.tables["tasks"]


@dataclass(frozen=True, slots=True)
class Seeded:
    tasks: int
    deliveries: int
    seconds: float
    first: datetime
    last: datetime


def task_rows(tasks: int, *, seed: int = 14) -> Iterator[dict[str, Any]]:
    """``tasks`` API tasks, oldest first over ``SPAN`` up to ``END``, and their deliveries."""
    picker = random.Random(seed)
    step = SPAN / max(1, tasks // TIES)
    first = END - SPAN
    kinds, statuses = list(KINDS), list(STATUSES)
    for i in range(tasks):
        at = first + step * (i // TIES)
        status = picker.choices(statuses, list(STATUSES.values()))[0]
        task_id = uuid.uuid4()
        hooked = i % WEBHOOK_EVERY == 0
        row = _row(
            task_id,
            at,
            org_id=ORG if picker.random() < 0.9 else OTHER_ORG,
            kind=picker.choices(kinds, list(KINDS.values()))[0],
            status=status,
            webhook_url="https://hooks.example.com/listing" if hooked else None,
        )
        yield row
        if hooked and status != "scheduled":
            yield _row(
                uuid.uuid4(),
                at + timedelta(milliseconds=5),
                org_id=row["org_id"],
                kind=WEBHOOK_KIND,
                status="succeeded",
                parent_id=task_id,
            )


def _row(task_id: uuid.UUID, at: datetime, *, status: str, **values: Any) -> dict[str, Any]:
    done = status != "scheduled"
    return {
        "id": task_id,
        "user_id": "alice",
        "version": 3 if done else 1,
        "attempts": 1 if done else 0,
        "max_attempts": 5,
        "params": {"data": {"n": 1}, "io_ms": 0, "cpu_ms": 0},
        "result": {"keys": 1} if status == "succeeded" else None,
        "last_error": "PermanentError: upstream refused" if status == "failed" else None,
        "created_at": at,
        "updated_at": at,
        "started_at": at if done else None,
        "finished_at": at if done else None,
        "run_after": None if done else utcnow() + _DUE_LATER,
        "status": status,
        "parent_id": None,
        "webhook_url": None,
        **values,
    }


async def seed_tasks(engine: AsyncEngine, tasks: int) -> Seeded:
    """Insert ``task_rows(tasks)`` through the driver's bulk path (``_insert``), then
    ANALYZE on PostgreSQL, as autovacuum would after a load this size; SQLite gets no
    ANALYZE, as the app never runs one."""
    started = time.perf_counter()
    deliveries = 0
    batch: list[dict[str, Any]] = []
    async with engine.begin() as connection:
        for row in task_rows(tasks):
            deliveries += row["parent_id"] is not None
            batch.append(row)
            if len(batch) == BATCH:
                await _insert(connection, batch)
                batch = []
        if batch:
            await _insert(connection, batch)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE tasks"))
            await connection.commit()
    first, last = created_between(tasks)
    return Seeded(tasks, deliveries, time.perf_counter() - started, first, last)


async def _insert(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """One batch, in the connection's transaction: binary COPY on PostgreSQL, a prepared
    executemany on SQLite, with each value bound as its column's type binds it. About 40 %
    faster than SQLAlchemy's multi-row INSERT on PostgreSQL and 25 % on SQLite, where the
    rest is the database's own work and formatting the values."""
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    dialect = connection.dialect
    names = list(rows[0])
    if dialect.name == "postgresql":
        # asyncpg's own codecs take the Python values, but JSONB as its text.
        json_columns = [n for n in names if isinstance(_TASKS.c[n].type, JSON)]
        for row in rows:
            row.update((n, json.dumps(row[n])) for n in json_columns if row[n] is not None)
        records = [tuple(row[n] for n in names) for row in rows]
        await driver.copy_records_to_table("tasks", records=records, columns=names)
        return
    statement = insert(_TASKS).compile(dialect=dialect, column_keys=names)
    order = statement.positiontup or names  # qmark: the values in the statement's order
    processors = [
        (n, _TASKS.c[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in order
    ]
    values = [tuple(bind(row[n]) if bind else row[n] for n, bind in processors) for row in rows]
    await driver.executemany(str(statement), values)


def created_between(tasks: int) -> tuple[datetime, datetime]:
    """The ``created_at`` of the oldest and of the newest of ``task_rows(tasks)``."""
    step = SPAN / max(1, tasks // TIES)
    return END - SPAN, END - SPAN + step * ((tasks - 1) // TIES)


@contextlib.asynccontextmanager
async def fresh_database(backend: str, postgres_url: str | None) -> AsyncIterator[str]:
    """A migrated, empty database of the run's own: a SQLite file in a temporary folder,
    or a PostgreSQL database beside ``postgres_url``'s (``<name>_listing``), dropped after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-listing-") as workdir:
            url = f"sqlite+aiosqlite:///{Path(workdir) / 'listing.db'}"
            await migrate_database(url)
            yield url
        return
    assert postgres_url is not None
    base = make_url(postgres_url)
    name = f"{base.database}_listing"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    drop = text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    try:
        async with admin.connect() as connection:
            await connection.execute(drop)
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        await migrate_database(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(drop)
        await admin.dispose()
