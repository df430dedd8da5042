"""A raw HTTP/1.1 client on a socket: it sends what httpx would refuse to (bad bytes, lies)."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RawResponse", "build_request", "send_raw"]


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: str,
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes | None = None,
    *,
    chunk_size: int | None = None,
    declared_length: int | None = None,
) -> list[bytes]:
    """The request as the pieces to write: head, then the body (chunked if ``chunk_size``)."""
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    head += [name + b": " + value for name, value in headers]
    pieces: list[bytes] = []
    if chunk_size is not None:
        head.append(b"Transfer-Encoding: chunked")
        data = body or b""
        for start in range(0, len(data), chunk_size):
            chunk = data[start : start + chunk_size]
            pieces.append(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        pieces.append(b"0\r\n\r\n")
    elif body is not None or declared_length is not None:
        length = declared_length if declared_length is not None else len(body or b"")
        head.append(f"Content-Length: {length}".encode())
        if body:
            pieces.append(body)
    return [b"\r\n".join(head) + b"\r\n\r\n", *pieces]


def send_raw(port: int, pieces: Sequence[bytes], timeout: float = 20.0) -> RawResponse:
    """Write ``pieces`` to 127.0.0.1:``port`` and read the whole response.

    The server may answer (413) and close before the body is sent: a broken pipe
    while writing is expected then, and the answer is read all the same.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for piece in pieces:
                sock.sendall(piece)
        received = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return _parse(bytes(received))


def _parse(raw: bytes) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("the server closed the connection without an answer")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(int(status_line.split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
