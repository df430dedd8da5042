"""The requests the scenarios send, built once so closed-loop and open-model users send the same."""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

__all__ = ["Call", "health", "lab_work", "process_data"]


class Call(NamedTuple):
    method: str
    path: str
    name: str
    """The endpoint's name in statistics; the query string stays where it tells variants apart."""
    body: str | None = None
    headers: dict[str, str] | None = None


def health() -> Call:
    return Call("GET", "/health", "/health")


def process_data(
    options: Any,
    mode: Literal["background", "inline"],
    *,
    io_ms: int | None = None,
    cpu_ms: int | None = None,
    webhook_url: str | None = None,
) -> Call:
    """``POST /process-data``; the work defaults to ``--io-ms`` and ``--cpu-ms``."""
    body: dict[str, Any] = {
        "data": {"order": 42},
        "io_ms": options.io_ms if io_ms is None else io_ms,
        "cpu_ms": options.cpu_ms if cpu_ms is None else cpu_ms,
    }
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    path = f"/process-data?mode={mode}"
    headers = {"Authorization": f"Bearer {options.api_key}", "Content-Type": "application/json"}
    return Call("POST", path, path, json.dumps(body), headers)


def lab_work(kind: str, work_ms: int) -> Call:
    """``POST /work/<kind>`` on the lesson 08 load lab."""
    return Call("POST", f"/work/{kind}?work_ms={work_ms}", f"/work/{kind}")
