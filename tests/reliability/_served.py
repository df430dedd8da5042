"""A live reference app on a fresh database per test module, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from reference_app.testing import LiveServer
from reliability._databases import DatabaseUnavailable, fresh_database
from reliability._served import SERVED_SETTINGS, serve
from tests.conftest import IN_CI

# The same ids as the suite's ``backend`` fixture; PostgreSQL rows carry its marker.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres, id="postgres")]


@dataclass(frozen=True)
class Served:
    server: LiveServer
    database_url: str
    backend: str


@contextlib.contextmanager
def database_for(backend: str) -> Iterator[str]:
    """A fresh, migrated database; skips (fails in CI) when PostgreSQL is down."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database(backend))
        except DatabaseUnavailable as exc:
            if IN_CI:
                pytest.fail(str(exc), pytrace=False)
            pytest.skip(str(exc))
        yield url


@contextlib.contextmanager
def served(backend: str, **settings: str) -> Iterator[Served]:
    """A fresh database and the app on it (``SERVED_SETTINGS`` and ``settings``); skips (fails
    in CI) when PostgreSQL is down."""
    with database_for(backend) as url, serve(url, {**SERVED_SETTINGS, **settings}) as server:
        yield Served(server, url, backend)
