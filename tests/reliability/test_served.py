"""The app's environment: exactly the settings a scenario gives, none from the caller's shell."""

from __future__ import annotations

import pytest

from reliability._served import FAST_SETTINGS, SERVED_SETTINGS, app_env, backend_of


def test_the_env_holds_the_database_and_the_settings_by_their_app_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_MAX_CONCURRENT_TASKS", "1")  # a leftover in the caller's shell
    env = app_env("sqlite+aiosqlite:///x.db", {**FAST_SETTINGS, "lease_seconds": "15"})

    assert env["APP_DATABASE_URL"] == "sqlite+aiosqlite:///x.db"
    assert env["APP_LEASE_SECONDS"] == "15"
    assert env["APP_WEBHOOK_ALLOW"] == "127.0.0.1"
    assert env["APP_MAX_CONCURRENT_TASKS"] is None  # removed from the server's environment
    assert app_env("sqlite+aiosqlite:///x.db", SERVED_SETTINGS)["APP_MIGRATE_ON_STARTUP"] == "false"


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite+aiosqlite:////tmp/app.db", "sqlite"),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", "postgresql"),
    ],
)
def test_the_backend_is_named_as_the_report_names_it(url: str, backend: str) -> None:
    assert backend_of(url) == backend
