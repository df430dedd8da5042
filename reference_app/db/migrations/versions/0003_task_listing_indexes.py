"""Indexes for ``GET /tasks``: newest first per org, by status, by kind.

Each is ``(org_id, [status | kind,] created_at, id)``, so a page is one range scan read
backwards, whatever the date bounds and the cursor, with no sort. They are partial
(``WHERE parent_id IS NULL``): webhook deliveries are not listed, so they are not indexed
either. They replace ``ix_tasks_org_created``, which no query uses any more.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_API_TASKS = sa.text("parent_id IS NULL")
_INDEXES = {
    "ix_tasks_org_created_id": ["org_id", "created_at", "id"],
    "ix_tasks_org_status_created_id": ["org_id", "status", "created_at", "id"],
    "ix_tasks_org_kind_created_id": ["org_id", "kind", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(
            name, "tasks", columns, sqlite_where=_API_TASKS, postgresql_where=_API_TASKS
        )
    op.drop_index("ix_tasks_org_created", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_org_created", "tasks", ["org_id", "created_at"])
    for name in _INDEXES:
        op.drop_index(name, table_name="tasks")
