"""Tables: the append-only event log, the task projection, and the contacts tasks write."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reference_app.db.types import JSONDocument, UTCDateTime

__all__ = ["Base", "Contact", "GoneWebhookURL", "Task", "TaskEvent"]

# BIGINT on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
_EventId = BigInteger().with_variant(Integer(), "sqlite")
# The tasks of the API: a webhook delivery (``parent_id`` set) is a part of its parent task.
_API_TASKS = text("parent_id IS NULL")


def _listing_index(name: str, *columns: str) -> Index:
    """A ``GET /tasks`` index: newest first by ``(created_at, id)``, deliveries left out."""
    return Index(name, *columns, sqlite_where=_API_TASKS, postgresql_where=_API_TASKS)


class Base(DeclarativeBase):
    pass


class TaskEvent(Base):
    """One fact in the log. Never updated, never deleted (the database refuses both).

    ``stream_id`` is the stream the version belongs to: a task's own stream has
    ``stream_id == task_id``; other streams that belong to a task (webhook
    deliveries) have their own id and their own version sequence.
    """

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(_EventId, primary_key=True, autoincrement=True)
    stream_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    task_id: Mapped[uuid.UUID] = mapped_column(Uuid(), index=True)
    version: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("stream_id", "version", name="uq_task_events_stream_version"),
    )


class Task(Base):
    """The projection of a task's stream, updated in the transaction that appends its events."""

    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    request_id: Mapped[str | None] = mapped_column(String(128))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set on a webhook delivery: the task whose outcome it reports.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), index=True)

    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key", name="uq_tasks_org_idempotency_key"),
        Index("ix_tasks_status_run_after", "status", "run_after"),
        _listing_index("ix_tasks_org_created_id", "org_id", "created_at", "id"),
        _listing_index("ix_tasks_org_status_created_id", "org_id", "status", "created_at", "id"),
        _listing_index("ix_tasks_org_kind_created_id", "org_id", "kind", "created_at", "id"),
    )


class Contact(Base):
    """A contact written by ``import_contacts``; unique per org, so a re-run adds nothing."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(_EventId, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    source_task_id: Mapped[uuid.UUID] = mapped_column(Uuid())

    __table_args__ = (UniqueConstraint("org_id", "email", name="uq_contacts_org_email"),)


class GoneWebhookURL(Base):
    """A webhook URL whose receiver answered 410 Gone: it gets no more deliveries."""

    __tablename__ = "gone_webhook_urls"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime())
