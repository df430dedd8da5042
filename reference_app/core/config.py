"""Settings: environment variables with the ``APP_`` prefix, read once per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reference_app.core.whsec import decode_secret

__all__ = [
    "DEMO_API_KEYS",
    "DEMO_WEBHOOK_SECRET",
    "METRICS_TOKEN_MIN_LENGTH",
    "Principal",
    "Settings",
    "get_settings",
]


class Principal(BaseModel):
    """Who an API key belongs to."""

    user_id: str = Field(min_length=1, max_length=64)
    org_id: str = Field(min_length=1, max_length=64)


# Demo keys for local runs and the lessons; listed in the README.
# ``APP_ENV=production`` refuses to start while any of them is configured.
DEMO_API_KEYS: dict[str, Principal] = {
    "demo-key-org-a": Principal(user_id="alice", org_id="org-a"),
    "demo-key-org-b": Principal(user_id="bob", org_id="org-b"),
}


# APP_METRICS_TOKEN, when set, is at least this long: a scraper's secret, not a password.
METRICS_TOKEN_MIN_LENGTH = 16

# The demo signing secret, for local runs; refused with APP_ENV=production.
DEMO_WEBHOOK_SECRET = "whsec_ZGVtby13ZWJob29rLXNlY3JldC1ub3QtZm9yLXByb2Q="  # noqa: S105


class Settings(BaseSettings):
    """Everything the reference app can be told from outside."""

    # hide_input_in_errors: a bad secret must not be echoed into a startup error.
    model_config = SettingsConfigDict(env_prefix="APP_", extra="ignore", hide_input_in_errors=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/app.db"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    api_keys: dict[str, Principal] = Field(default_factory=lambda: dict(DEMO_API_KEYS))

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # None: apply migrations on startup for SQLite, leave PostgreSQL to `migrate`.
    migrate_on_startup: bool | None = None
    # How long startup waits to read the schema's revision; past it the app starts, unchecked.
    schema_check_timeout_seconds: float = Field(default=5.0, gt=0)
    db_pool_size: int = Field(default=20, ge=1)

    # Attempts at once in this process. I/O-bound work holds nothing while it awaits, so the
    # default is high; CPU-bound kinds are held to the process pool's size (tasks/kinds.py).
    max_concurrent_tasks: int = Field(default=256, ge=1)
    # Admission control: POSTs get 503 + Retry-After while this many tasks are due.
    # None (the default): accept everything durably, however long the backlog grows.
    max_due_tasks: int | None = Field(default=None, ge=1)
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    cpu_workers: int = Field(default=1, ge=1)
    # Periodic schedules (tasks/schedules.py): the scheduler looks at least this often, and
    # the tasks of a schedule that names no org belong to this one.
    scheduler_interval_seconds: float = Field(default=1.0, gt=0)
    schedule_org_id: str = Field(default="org-a", min_length=1, max_length=64)
    # The example schedule (tasks/handlers.py), off unless set: a process_data task every N s.
    example_schedule_seconds: int | None = Field(default=None, ge=1)

    task_max_attempts: int = Field(default=5, ge=1)
    # Each attempt's deadline (a kind can set its own: TaskKind.timeout); past it the
    # attempt is cancelled, given the grace to unwind, and recorded as AttemptTimeout.
    task_timeout_seconds: float = Field(default=300.0, gt=0)
    task_cancel_grace_seconds: float = Field(default=1.0, ge=0)
    task_retry_base_seconds: float = Field(default=1.0, ge=0)
    task_retry_cap_seconds: float = Field(default=300.0, ge=0)

    webhook_secret: SecretStr = SecretStr(DEMO_WEBHOOK_SECRET)
    # Set during a key rotation: deliveries are signed with both keys.
    webhook_previous_secret: SecretStr | None = None
    # Comma-separated hosts and CIDRs exempt from the SSRF guard; empty by default.
    webhook_allow: str = ""
    webhook_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    webhook_read_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_write_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_max_connections: int = Field(default=100, ge=1)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_retry_base_seconds: float = Field(default=30.0, ge=0)
    webhook_retry_cap_seconds: float = Field(default=3600.0, ge=0)

    # GET /metrics (Prometheus text): not served, nor anything recorded, unless a token is
    # set; scraped with `Authorization: Bearer <token>`, a token of its own, never an API key.
    metrics_token: SecretStr | None = None
    # The gauges read from the database are this old at most: a scrape a second runs their
    # query once per this many seconds. 0: every scrape queries.
    metrics_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # How long a scrape waits for that query; past it, the scrape leaves those gauges out.
    metrics_query_timeout_seconds: float = Field(default=2.0, gt=0)

    @field_validator("webhook_secret", "webhook_previous_secret")
    @classmethod
    def _valid_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_secret(value.get_secret_value())  # raises with the reason
        return value

    @field_validator("metrics_token")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < METRICS_TOKEN_MIN_LENGTH:
            raise ValueError(
                f"APP_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`); "
                "leave it unset to turn /metrics off"
            )
        return value

    @model_validator(mode="after")
    def _refuse_demo_keys_in_production(self) -> Settings:
        if self.env == "production" and set(self.api_keys) & set(DEMO_API_KEYS):
            raise ValueError(
                "APP_ENV=production but the demo API keys are configured: "
                "set APP_API_KEYS to your own keys"
            )
        if (
            self.env == "production"
            and self.webhook_secret.get_secret_value() == DEMO_WEBHOOK_SECRET
        ):
            raise ValueError(
                "APP_ENV=production but the demo webhook secret is configured: "
                "set APP_WEBHOOK_SECRET to whsec_ followed by base64 of 32 random bytes"
            )
        if not self.api_keys:
            raise ValueError("APP_API_KEYS is empty: configure at least one key")
        if self.metrics_token is not None and self.metrics_token.get_secret_value() in (
            self.api_keys
        ):
            raise ValueError(
                "APP_METRICS_TOKEN is one of the API keys: give the scraper a token of its own"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def webhook_secrets(self) -> list[SecretStr]:
        """The keys to sign with: the current one, and the previous one during a rotation."""
        previous = [self.webhook_previous_secret] if self.webhook_previous_secret else []
        return [self.webhook_secret, *previous]

    @property
    def should_migrate_on_startup(self) -> bool:
        return self.is_sqlite if self.migrate_on_startup is None else self.migrate_on_startup


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
