"""Exercise 06, a reference solution: transient answers retry (after Retry-After), 4xx fail."""

from __future__ import annotations

from typing import Any

from lessons.lesson_06_retries.partner import PARTNER
from reference_app.core.clock import utcnow
from reference_app.main import create_app
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError, TransientError
from reference_app.tasks.retry import parse_retry_after

RETRYABLE = frozenset({408, 429})


class PartnerBusy(TransientError):
    """The partner answered 408, 429 or 5xx; the runner reads ``retry_after`` (seconds)."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"partner answered {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


async def sync_account(ctx: TaskContext) -> dict[str, Any]:
    """One attempt: fetch the account from the partner API; raise to fail the attempt."""
    account_id = ctx.params["data"]["account_id"]
    # The attempt number comes from the event log, so the partner's behaviour survives restarts.
    response = await PARTNER.get(f"/accounts/{account_id}", params={"attempt": ctx.attempt})
    status = response.status_code
    if status in RETRYABLE or status >= 500:
        raise PartnerBusy(status, parse_retry_after(response.headers.get("retry-after"), utcnow()))
    if response.is_error:
        raise PermanentError(f"partner answered {status} for {account_id}")
    account: dict[str, Any] = response.json()
    return {"account_id": account_id, "balance": account["balance"]}


app = create_app(handlers={"process_data": sync_account})
