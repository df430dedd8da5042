"""Lesson 06's flaky partner API, served in-process by ``httpx.MockTransport`` (no sockets).

The account id picks how the partner behaves:

- ``ok-...``: 200.
- ``flaky-N-...``: 503 for the first N calls, then 200.
- ``throttled-S-...``: 429 with ``Retry-After: S`` on the first call, then 200.
- ``down-...``: the connection is refused, every time.
- ``missing-...``: 404, every time (no retry will change that).

Calls are counted per account id in this process (``CALLS``), unless the caller says which
attempt this is (``?attempt=n``): a durable runner knows that from its log, across restarts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from reference_app.core.clock import utcnow
from reference_app.tasks.errors import PermanentError, TransientError
from reference_app.tasks.retry import parse_retry_after

__all__ = ["CALLS", "PARTNER", "PartnerBusy", "fetch_account"]

CALLS: Counter[str] = Counter()


def _answer(request: httpx.Request) -> httpx.Response:
    account_id = request.url.path.rsplit("/", 1)[-1]
    CALLS[account_id] += 1
    call = int(request.url.params.get("attempt", CALLS[account_id]))
    kind, _, rest = account_id.partition("-")
    number = rest.split("-", 1)[0]
    if kind == "down":
        raise httpx.ConnectError("connection refused", request=request)
    if kind == "missing":
        return httpx.Response(404, json={"error": "no such account"})
    if kind == "flaky" and call <= int(number):
        return httpx.Response(503, json={"error": "try again"})
    if kind == "throttled" and call == 1:
        return httpx.Response(429, headers={"Retry-After": number}, json={"error": "slow down"})
    return httpx.Response(200, json={"account_id": account_id, "balance": 42})


# No sockets behind it, so one module-level client is harmless here. A real client
# belongs to the app's lifespan (lesson 05).
PARTNER = httpx.AsyncClient(transport=httpx.MockTransport(_answer), base_url="https://partner.test")


class PartnerBusy(TransientError):
    """The partner answered 408, 429 or 5xx: worth another attempt, after ``retry_after``."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"partner answered {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


async def fetch_account(account_id: str, *, attempt: int | None = None) -> dict[str, Any]:
    """One call. Raises PartnerBusy (transient), httpx.ConnectError (transient) or
    PermanentError (a 4xx: the request itself is wrong)."""
    params = {"attempt": attempt} if attempt is not None else {}
    response = await PARTNER.get(f"/accounts/{account_id}", params=params)
    if response.status_code in (408, 429) or response.status_code >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
        raise PartnerBusy(response.status_code, retry_after)
    if response.is_error:
        raise PermanentError(f"partner answered {response.status_code} for {account_id}")
    result: dict[str, Any] = response.json()
    return result
