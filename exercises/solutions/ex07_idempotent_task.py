"""Exercise 07, a reference solution: ``INSERT ... ON CONFLICT DO NOTHING``, safe to repeat."""

from __future__ import annotations

import hashlib
from typing import Any

from reference_app.db.engine import session_scope
from reference_app.db.models import Contact
from reference_app.db.statements import insert_or_ignore
from reference_app.tasks.context import TaskContext

ROWS_PER_SHEET = 10


def read_sheet(sheet_id: str) -> list[dict[str, str]]:
    """The sheet's rows (the demo derives them from the id: the same id, the same rows)."""
    seed = hashlib.sha256(sheet_id.encode()).hexdigest()[:8]
    return [
        {"email": f"reader{n}.{seed}@example.com", "name": f"Reader {n}"}
        for n in range(ROWS_PER_SHEET)
    ]


async def import_newsletter(ctx: TaskContext) -> dict[str, Any]:
    """Insert the sheet's readers as the organisation's contacts; a re-run inserts nothing."""
    rows = read_sheet(ctx.params["sheet_id"])
    values = [{**row, "org_id": ctx.org_id, "source_task_id": ctx.task_id} for row in rows]
    async with session_scope(ctx.sessions) as session:
        # The unique key decides, in the database, in one statement: no read-then-write race
        # between two runners, and a rerun after a crash adds no duplicate.
        await session.execute(insert_or_ignore(session, Contact), values)
    return {"sheet_id": ctx.params["sheet_id"], "rows": len(rows)}
