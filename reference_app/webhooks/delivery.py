"""Webhook delivery: the task body that sends one signed message.

A delivery is a task of its own (kind ``webhook_delivery``, see
``webhooks.enqueue``) whose stream is started in the transaction that ends the
parent task. So it has its own version sequence, and it gets the worker's
claims, leases, durable retries and sweeper recovery for free.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from reference_app.core.clock import utcnow
from reference_app.core.logging import get_logger
from reference_app.db.engine import session_scope
from reference_app.db.models import GoneWebhookURL
from reference_app.db.statements import insert_or_ignore
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError, TransientError
from reference_app.tasks.retry import parse_retry_after
from reference_app.webhooks.signing import signature_headers
from reference_app.webhooks.ssrf import (
    AllowList,
    Resolver,
    UnsafeURL,
    resolve_checked,
    system_resolver,
)

__all__ = ["RefusedResponse", "RetryableResponse", "WebhookSender", "url_hash"]

log = get_logger(__name__)

_RETRYABLE_STATUSES = frozenset({408, 429})


class RetryableResponse(TransientError):
    """The receiver answered 408, 429 or 5xx: retry, after its ``Retry-After`` if it sent one."""

    def __init__(self, status_code: int, retry_after: float | None) -> None:
        super().__init__(f"receiver answered {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


class RefusedResponse(PermanentError):
    """The receiver answered with a status no retry will change (4xx, or a 3xx we do not follow)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class WebhookSender:
    """Sends deliveries through the app's shared client, signed, to a checked address."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secrets: Sequence[SecretStr],
        allow: AllowList,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.client = client
        self.secrets = list(secrets)
        self.allow = allow
        self.resolver = resolver

    async def deliver(self, ctx: TaskContext) -> dict[str, Any]:
        """The ``webhook_delivery`` task body: one signed POST; raise to fail the attempt."""
        url = httpx.URL(ctx.params["url"])
        if await self._is_gone(ctx, ctx.params["url"]):
            raise PermanentError(
                "the receiver answered 410 Gone before; this URL gets no more deliveries"
            )
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS, TLS and Host need it
        port = url.port or _default_port(url)
        try:
            addresses = await resolve_checked(host, port, self.allow, self.resolver)
        except UnsafeURL as exc:
            raise PermanentError(f"blocked by the SSRF guard: {exc}") from None
        body = ctx.params["body"].encode()
        headers = signature_headers(
            self.secrets, msg_id=ctx.params["webhook_id"], timestamp=int(time.time()), body=body
        )
        headers.update({"content-type": "application/json", "host": _host_header(host, url.port)})
        # Connect to an address we checked, not to whatever DNS says a moment later;
        # keep the name for TLS (SNI and certificate checks) and the Host header.
        # Try the checked addresses in the resolver's order until one connects.
        error: httpx.ConnectError | None = None
        for address in addresses:
            try:
                response = await self.client.post(
                    url.copy_with(host=str(address)),
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": host},
                )
            except httpx.ConnectError as exc:
                error = exc
                continue
            await response.aclose()
            return await self._classify(ctx, response)
        assert error is not None  # resolve_checked never returns an empty list
        raise error

    async def _classify(self, ctx: TaskContext, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            return {"status_code": status}
        if status == 410:
            await self._mark_gone(ctx, ctx.params["url"])
            raise RefusedResponse(
                status, "receiver answered 410 Gone; no more deliveries to this URL"
            )
        if 300 <= status < 400:
            location = response.headers.get("location", "")[:200]
            raise RefusedResponse(
                status, f"receiver redirected ({status} to {location!r}); not followed"
            )
        if status in _RETRYABLE_STATUSES or status >= 500:
            raise RetryableResponse(
                status, parse_retry_after(response.headers.get("retry-after"), utcnow())
            )
        raise RefusedResponse(status, f"receiver refused the delivery with {status}")

    async def _is_gone(self, ctx: TaskContext, url: str) -> bool:
        async with session_scope(ctx.sessions) as session:
            found = await session.scalar(
                select(GoneWebhookURL.url_hash).where(
                    GoneWebhookURL.org_id == ctx.org_id, GoneWebhookURL.url_hash == url_hash(url)
                )
            )
        return found is not None

    async def _mark_gone(self, ctx: TaskContext, url: str) -> None:
        async with session_scope(ctx.sessions) as session:
            await session.execute(
                insert_or_ignore(session, GoneWebhookURL).values(
                    org_id=ctx.org_id, url_hash=url_hash(url), url=url, marked_at=utcnow()
                )
            )
        log.warning("webhook_url_gone", url_hash=url_hash(url)[:12])


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _host_header(host: str, port: int | None) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    return bracketed if port is None else f"{bracketed}:{port}"
