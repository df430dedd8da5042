"""A PostgreSQL server that is shutting down or starting up is an outage: 503, never 500.

Found by the ``pg_restart`` scenario: while the server stops and starts, new connections
are refused with SQLSTATE 57P03 ("the database system is shutting down" / "is starting
up"). asyncpg raises ``CannotConnectNowError``, which SQLAlchemy wraps in a plain
``DBAPIError`` (not ``OperationalError``, not ``connection_invalidated``): it was a
plain-text 500 until ``is_database_outage`` learnt PostgreSQL's SQLSTATE classes. The fake
server below answers every connection as PostgreSQL does in that state, so the test needs
no restart.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import httpx
import pytest

from reference_app.core.errors import RETRY_AFTER_SECONDS
from reference_app.main import create_app
from tests.conftest import AUTH_A, make_settings

_SSL_REQUEST = 80877103


def _error_response(code: str, message: str) -> bytes:
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in [(b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message)]
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


async def _answer_cannot_connect_now(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            length = struct.unpack("!I", await reader.readexactly(4))[0]
            payload = await reader.readexactly(length - 4)
            if struct.unpack("!I", payload[:4])[0] == _SSL_REQUEST:
                writer.write(b"N")  # no TLS; the client sends its startup message next
                await writer.drain()
                continue
            writer.write(_error_response("57P03", "the database system is starting up"))
            await writer.drain()
            return
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


@pytest.fixture
async def starting_postgres() -> AsyncIterator[str]:
    """The URL of a 'server' that refuses every connection with 57P03, as PostgreSQL does
    while it shuts down or starts up."""
    server = await asyncio.start_server(_answer_cannot_connect_now, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("method", "path"), [("POST", "/process-data"), ("GET", "/ready")])
async def test_a_postgres_server_that_is_starting_up_is_a_503_with_retry_after(
    starting_postgres: str, method: str, path: str
) -> None:
    app = create_app(make_settings(starting_postgres, sweep_interval_seconds=60))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH_A) as client,
    ):
        body = {"data": {"n": 1}, "io_ms": 0} if method == "POST" else None
        response = await client.request(method, path, json=body)

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
