"""UTCDateTime: aware in, aware UTC out, on both backends; naive datetimes refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from reference_app.db.types import JSONDocument, UTCDateTime

metadata = MetaData()
probe = Table(
    "utc_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime()),
    Column("doc", JSONDocument),
)

INDIA = timezone(timedelta(hours=5, minutes=30))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))
SQLITE = make_url("sqlite+aiosqlite://").get_dialect()()
POSTGRESQL = make_url("postgresql+asyncpg://").get_dialect()()


@pytest.fixture
async def table(engine: AsyncEngine) -> Table:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return probe


async def store(engine: AsyncEngine, *values: datetime | None) -> list[datetime | None]:
    async with engine.begin() as connection:
        await connection.execute(
            insert(probe), [{"id": n, "at": v} for n, v in enumerate(values, 1)]
        )
    async with engine.connect() as connection:
        return list(await connection.scalars(select(probe.c.at).order_by(probe.c.id)))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 17, 30, 0, 123456, tzinfo=INDIA),
        datetime(2026, 3, 1, 7, 0, 0, 123456, tzinfo=NEW_YORK_WINTER),
    ],
    ids=["utc", "utc_plus_0530", "utc_minus_5"],
)
async def test_an_aware_datetime_comes_back_as_the_same_instant_in_utc(
    engine: AsyncEngine, table: Table, value: datetime
) -> None:
    [back] = await store(engine, value)

    assert back == value
    assert back is not None
    assert back.utcoffset() == timedelta(0)
    assert back.replace(tzinfo=None) == value.astimezone(UTC).replace(tzinfo=None)


async def test_values_sort_by_instant_not_by_wall_clock(engine: AsyncEngine, table: Table) -> None:
    earlier_instant_later_wall_clock = datetime(2026, 3, 1, 17, 0, tzinfo=INDIA)  # 11:30 UTC
    later_instant = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    await store(engine, later_instant, earlier_instant_later_wall_clock)

    async with engine.connect() as connection:
        ordered = list(await connection.scalars(select(probe.c.id).order_by(probe.c.at)))

    assert ordered == [2, 1]


async def test_null_stays_null(engine: AsyncEngine, table: Table) -> None:
    assert await store(engine, None) == [None]


async def test_a_naive_datetime_is_refused_and_nothing_is_written(
    engine: AsyncEngine, table: Table
) -> None:
    naive = datetime(2026, 3, 1, 12, 0)  # noqa: DTZ001 - the point of the test

    with pytest.raises(StatementError, match="naive datetime") as raised:
        async with engine.begin() as connection:
            await connection.execute(insert(probe).values(id=1, at=naive))

    assert isinstance(raised.value.orig, ValueError)
    async with engine.connect() as connection:
        assert list(await connection.scalars(select(probe.c.id))) == []


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (SQLITE, datetime(2026, 3, 1, 12, 0)),  # noqa: DTZ001 - SQLite stores naive UTC
        (POSTGRESQL, datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
    ],
    ids=["sqlite", "postgresql"],
)
def test_the_bound_value_is_utc_naive_on_sqlite_and_aware_on_postgresql(
    dialect: Dialect, expected: datetime
) -> None:
    bound = UTCDateTime().process_bind_param(datetime(2026, 3, 1, 17, 30, tzinfo=INDIA), dialect)

    assert bound == expected
    assert (bound.tzinfo is None) == (expected.tzinfo is None)


def test_a_naive_value_read_back_is_taken_as_utc() -> None:
    naive = datetime(2026, 3, 1, 12, 0)  # noqa: DTZ001 - what SQLite hands back

    assert UTCDateTime().process_result_value(naive, SQLITE) == naive.replace(tzinfo=UTC)


async def test_json_documents_round_trip(engine: AsyncEngine, table: Table) -> None:
    doc = {"nested": {"list": [1, 2.5, "three", None, True]}, "unicode": "Zoë"}
    async with engine.begin() as connection:
        await connection.execute(insert(probe).values(id=1, doc=doc))

    async with engine.connect() as connection:
        assert await connection.scalar(select(probe.c.doc)) == doc
