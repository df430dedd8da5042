"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability._served import BACKENDS, Served, served


@pytest.fixture(scope="session", params=BACKENDS)
def live_app(request: pytest.FixtureRequest) -> Iterator[Served]:
    """One live reference app per backend (and per xdist worker), on a database of its own.

    Shared by the input, fuzzing, isolation and SSRF tests: each counts rows around what it
    sends, after the tasks that came before have finished.
    """
    with served(request.param) as app:
        yield app
