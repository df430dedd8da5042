"""The app's one HTTP client: created in the lifespan, shared by every task, closed at shutdown."""

from __future__ import annotations

import httpx

__all__ = ["USER_AGENT", "create_http_client"]

USER_AGENT = "fastapi-background-jobs-webhooks/0.1"


def create_http_client(
    *,
    connect_timeout: float = 3.0,
    read_timeout: float = 10.0,
    write_timeout: float = 10.0,
    pool_timeout: float = 5.0,
    max_connections: int = 100,
    max_keepalive_connections: int = 20,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A client with explicit timeouts and limits that never follows redirects.

    One client per app, not per call: it pools connections (and TLS sessions)
    across deliveries. ``transport`` is the seam for tests (``httpx.MockTransport``).
    ``trust_env=False``: a proxy from the environment would connect on our
    behalf and bypass the SSRF guard's address pinning.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
        ),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        ),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        headers={"User-Agent": USER_AGENT},
    )
