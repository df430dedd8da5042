"""Settings: APP_ environment variables, API keys, and the production guard."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from reference_app.core.config import DEMO_API_KEYS, Principal, Settings, get_settings

OWN_KEYS = {"k-live-7f3a9c": {"user_id": "carol", "org_id": "org-c"}}
# A production deployment also brings its own webhook signing secret.
OWN_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"own-secret-for-tests-32-bytes!!!").decode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No APP_ variable from the outer shell, and no settings cached across tests."""
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_defaults_run_locally_on_sqlite_with_the_demo_keys() -> None:
    settings = Settings()

    assert settings.env == "development"
    assert settings.database_url == "sqlite+aiosqlite:///./var/app.db"
    assert settings.api_keys == DEMO_API_KEYS
    assert settings.should_migrate_on_startup is True


def test_app_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql+asyncpg://app@db.internal:5432/jobs")
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("APP_LOG_FORMAT", "json")
    monkeypatch.setenv("APP_MAX_CONCURRENT_TASKS", "7")
    monkeypatch.setenv("APP_LEASE_SECONDS", "12.5")
    monkeypatch.setenv("APP_MIGRATE_ON_STARTUP", "true")

    settings = Settings()

    assert settings.database_url == "postgresql+asyncpg://app@db.internal:5432/jobs"
    assert settings.env == "test"
    assert settings.log_format == "json"
    assert settings.max_concurrent_tasks == 7
    assert settings.lease_seconds == 12.5
    assert settings.should_migrate_on_startup is True


def test_variables_without_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://elsewhere/db")
    monkeypatch.setenv("MAX_CONCURRENT_TASKS", "1")

    settings = Settings()

    assert settings.database_url.startswith("sqlite")
    assert settings.max_concurrent_tasks == 256


def test_app_api_keys_json_replaces_the_demo_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_API_KEYS", json.dumps(OWN_KEYS))

    settings = Settings()

    assert settings.api_keys == {"k-live-7f3a9c": Principal(user_id="carol", org_id="org-c")}
    assert not set(settings.api_keys) & set(DEMO_API_KEYS)


def test_production_refuses_to_start_with_the_demo_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")

    with pytest.raises(ValidationError, match="APP_ENV=production but the demo API keys"):
        Settings()


def test_production_refuses_a_demo_key_mixed_with_real_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = {**OWN_KEYS, "demo-key-org-b": {"user_id": "bob", "org_id": "org-b"}}
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("APP_API_KEYS", json.dumps(keys))
    monkeypatch.setenv("APP_WEBHOOK_SECRET", OWN_WEBHOOK_SECRET)

    with pytest.raises(ValidationError, match="set APP_API_KEYS to your own keys"):
        Settings()


def test_production_starts_with_its_own_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("APP_API_KEYS", json.dumps(OWN_KEYS))
    monkeypatch.setenv("APP_WEBHOOK_SECRET", OWN_WEBHOOK_SECRET)

    assert Settings().env == "production"


def test_an_empty_key_set_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_API_KEYS", "{}")

    with pytest.raises(ValidationError, match="APP_API_KEYS is empty"):
        Settings()


@pytest.mark.parametrize(
    "principal",
    [{"user_id": "", "org_id": "org-c"}, {"user_id": "carol"}, "carol"],
    ids=["empty user", "missing org", "not an object"],
)
def test_a_malformed_key_entry_is_refused(
    monkeypatch: pytest.MonkeyPatch, principal: object
) -> None:
    monkeypatch.setenv("APP_API_KEYS", json.dumps({"k-live-7f3a9c": principal}))

    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_ENV", "staging"),
        ("APP_LOG_FORMAT", "xml"),
        ("APP_MAX_CONCURRENT_TASKS", "0"),
        ("APP_TASK_MAX_ATTEMPTS", "0"),
        ("APP_SWEEP_INTERVAL_SECONDS", "0"),
    ],
)
def test_out_of_range_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("url", "override", "migrates"),
    [
        ("sqlite+aiosqlite:///./var/app.db", None, True),
        ("postgresql+asyncpg://app@db/jobs", None, False),
        ("sqlite+aiosqlite:///./var/app.db", False, False),
        ("postgresql+asyncpg://app@db/jobs", True, True),
    ],
)
def test_startup_migration_defaults_to_sqlite_only(
    url: str, override: bool | None, migrates: bool
) -> None:
    settings = Settings(database_url=url, migrate_on_startup=override)

    assert settings.should_migrate_on_startup is migrates


def test_get_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MAX_CONCURRENT_TASKS", "3")
    first = get_settings()
    monkeypatch.setenv("APP_MAX_CONCURRENT_TASKS", "9")

    assert get_settings() is first
    assert first.max_concurrent_tasks == 3


def test_metrics_are_off_until_a_token_of_their_own_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().metrics_token is None
    monkeypatch.setenv("APP_METRICS_TOKEN", "scraper-token-0123456789")
    monkeypatch.setenv("APP_METRICS_CACHE_SECONDS", "0.5")

    settings = Settings()

    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "scraper-token-0123456789"
    assert settings.metrics_cache_seconds == 0.5


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("short", "at least 16 characters"),
        ("demo-key-org-a", "at least 16 characters"),
        ("k-live-7f3a9c0123456789", "one of the API keys"),
    ],
)
def test_a_metrics_token_that_is_short_or_an_api_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, token: str, reason: str
) -> None:
    keys = {**OWN_KEYS, "k-live-7f3a9c0123456789": {"user_id": "dan", "org_id": "org-d"}}
    monkeypatch.setenv("APP_API_KEYS", json.dumps(keys))
    monkeypatch.setenv("APP_METRICS_TOKEN", token)

    with pytest.raises(ValidationError, match=reason) as refused:
        Settings()
    assert token not in str(refused.value)  # the secret is not echoed


def test_a_metrics_cache_longer_than_a_minute_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_METRICS_CACHE_SECONDS", "61")

    with pytest.raises(ValidationError):
        Settings()
