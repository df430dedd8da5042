"""Step 5: durable retries. The reference app's runner records every decision in the event log.

The task body makes one attempt and raises; the runner decides. A transient error becomes
``attempt_failed`` and ``retry_scheduled`` with its ``due_at`` (full jitter, or the server's
``Retry-After`` clamped to the policy); the sweeper starts the next attempt when it is due,
in this process or, after a crash or restart, in the next one. A permanent error becomes
``task_failed`` at once. Nothing waits in memory, and no slot is held while it waits.

This app is the reference app with one task body replaced: ``POST /process-data`` runs
``sync_account`` on ``{"data": {"account_id": "..."}}``.

Run: APP_DATABASE_URL=sqlite+aiosqlite:////tmp/lesson06.db APP_TASK_RETRY_BASE_SECONDS=0.5 \\
    .venv/bin/uvicorn lessons.lesson_06_retries.step_05_durable:app --port 8000
"""

from __future__ import annotations

from typing import Any

from lessons.lesson_06_retries.partner import fetch_account
from reference_app.main import create_app
from reference_app.tasks.context import TaskContext


async def sync_account(ctx: TaskContext) -> dict[str, Any]:
    """One attempt: raise to fail it. The attempt number comes from the log, not from memory."""
    account_id = ctx.params["data"]["account_id"]
    account = await fetch_account(account_id, attempt=ctx.attempt)
    return {"account_id": account_id, "balance": account["balance"]}


HANDLERS = {"process_data": sync_account}
app = create_app(handlers=HANDLERS)
