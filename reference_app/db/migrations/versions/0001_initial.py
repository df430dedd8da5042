"""Event log, task projection and contacts; the log refuses UPDATE and DELETE.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")
_bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ts = sa.DateTime(timezone=True)

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER task_events_no_update BEFORE UPDATE ON task_events
       BEGIN SELECT RAISE(ABORT, 'task_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER task_events_no_delete BEFORE DELETE ON task_events
       BEGIN SELECT RAISE(ABORT, 'task_events is append-only: DELETE refused'); END""",
]

_POSTGRES_TRIGGERS = [
    """CREATE FUNCTION task_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'task_events is append-only: % refused', TG_OP
           USING ERRCODE = 'restrict_violation';
       END $$""",
    """CREATE TRIGGER task_events_no_update_delete BEFORE UPDATE OR DELETE ON task_events
       FOR EACH ROW EXECUTE FUNCTION task_events_refuse_change()""",
    """CREATE TRIGGER task_events_no_truncate BEFORE TRUNCATE ON task_events
       FOR EACH STATEMENT EXECUTE FUNCTION task_events_refuse_change()""",
]


def upgrade() -> None:
    op.create_table(
        "task_events",
        sa.Column("id", _bigid, primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("payload", _json, nullable=False),
        sa.Column("at", _ts, nullable=False),
        sa.UniqueConstraint("stream_id", "version", name="uq_task_events_stream_version"),
        sa.CheckConstraint("version >= 1", name="ck_task_events_version_positive"),
    )
    op.create_index("ix_task_events_task_id", "task_events", ["task_id"])

    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("params", _json, nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("webhook_url", sa.Text()),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("result", _json),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.Column("started_at", _ts),
        sa.Column("finished_at", _ts),
        sa.Column("run_after", _ts),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", _ts),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_tasks_org_idempotency_key"),
    )
    op.create_index("ix_tasks_status_run_after", "tasks", ["status", "run_after"])
    op.create_index("ix_tasks_org_created", "tasks", ["org_id", "created_at"])

    op.create_table(
        "contacts",
        sa.Column("id", _bigid, primary_key=True, autoincrement=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source_task_id", sa.Uuid(), nullable=False),
        sa.UniqueConstraint("org_id", "email", name="uq_contacts_org_email"),
    )

    triggers = (
        _POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    )
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION task_events_refuse_change() CASCADE")
    op.drop_table("contacts")
    op.drop_table("tasks")
    op.drop_table("task_events")
