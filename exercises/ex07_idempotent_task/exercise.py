"""Exercise 07: make a task body safe to run twice.

The reference app runs an accepted task *at least once*: a task whose process died mid-run is
run again once its lease expires (lesson 07, step 4). This body imports a newsletter sign-up
sheet into ``contacts`` (``UNIQUE(org_id, email)``). Run twice, as after a crash that came just
after its commit, the second run hits the unique key and fails, and the task ends ``failed``
although its work was done. Make the second run a no-op that succeeds.

Check it: make check EX=07
"""

from __future__ import annotations

import hashlib
from typing import Any

from reference_app.db.engine import session_scope
from reference_app.db.models import Contact
from reference_app.db.statements import insert_or_ignore  # noqa: F401 - yours to use
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
    """Insert the sheet's readers as the organisation's contacts."""
    rows = read_sheet(ctx.params["sheet_id"])
    async with session_scope(ctx.sessions) as session:
        # TODO: not safe to repeat. A second run raises IntegrityError on UNIQUE(org_id, email).
        session.add_all(
            Contact(org_id=ctx.org_id, source_task_id=ctx.task_id, **row) for row in rows
        )
    return {"sheet_id": ctx.params["sheet_id"], "rows": len(rows)}
