"""Exercise 06: tell the durable runner which failures are worth another attempt.

``sync_account`` is the body of the reference app's ``process_data`` task here (as in lesson 06,
step 5): one attempt per call, and the runner decides what happens after a failure from the type
of the exception. A ``TransientError`` (with an optional ``retry_after`` attribute, in seconds)
becomes ``attempt_failed`` + ``retry_scheduled``; a ``PermanentError`` becomes ``task_failed`` at
once. As written below, every error answer of the partner is an ``httpx.HTTPStatusError``, which
the runner treats as permanent: a partner that is busy for a moment fails the task for good.

Check it: make check EX=06
"""

from __future__ import annotations

from typing import Any

from lessons.lesson_06_retries.partner import PARTNER
from reference_app.main import create_app
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError, TransientError  # noqa: F401 - yours to use
from reference_app.tasks.retry import parse_retry_after  # noqa: F401 - yours to use


async def sync_account(ctx: TaskContext) -> dict[str, Any]:
    """One attempt: fetch the account from the partner API; raise to fail the attempt."""
    account_id = ctx.params["data"]["account_id"]
    # The attempt number comes from the event log, so the partner's behaviour survives restarts.
    response = await PARTNER.get(f"/accounts/{account_id}", params={"attempt": ctx.attempt})
    # TODO: classify the answer instead of raise_for_status():
    #   408, 429 and 5xx: transient, worth another attempt; honour the Retry-After header;
    #   any other 4xx: permanent, no retry will change it.
    response.raise_for_status()
    account: dict[str, Any] = response.json()
    return {"account_id": account_id, "balance": account["balance"]}


app = create_app(handlers={"process_data": sync_account})
