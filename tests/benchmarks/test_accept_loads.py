"""benchmarks._accept_loads: the two loads, live, against the plain route for a second each."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._accept_loads import closed_loop, fixed_rate, process_data, split
from benchmarks._apps import plain_app

pytestmark = pytest.mark.live


def test_connections_split_evenly_over_load_processes() -> None:
    assert split(50, 1) == [50]
    assert split(5, 2) == [3, 2]
    assert split(1, 3) == [1, 0, 0]


def test_a_request_numbers_its_body() -> None:
    build = process_data(io_ms=0).builder(8000)
    first, second = build(1), build(2)
    assert first.startswith(b"POST /process-data?mode=background HTTP/1.1\r\n")
    assert b"Authorization: Bearer demo-key-org-a" in first
    assert first.endswith(b'{"data": {"n": 1}, "io_ms": 0, "cpu_ms": 0}')
    assert second.endswith(b'{"data": {"n": 2}, "io_ms": 0, "cpu_ms": 0}')


@pytest.mark.timeout(60)
def test_a_closed_loop_and_a_fixed_rate_get_only_202s_from_the_plain_route(
    tmp_path: Path,
) -> None:
    request = process_data(io_ms=0)
    with plain_app(tmp_path) as app:
        port, pid = app.server.port, app.server.pid
        closed = closed_loop(port, request, connections=4, seconds=1.0, watch_pid=pid)
        fixed = fixed_rate(port, request, rate=50.0, seconds=1.0, watch_pid=pid)
    assert closed["model"] == "closed"
    assert closed["accepted"] > 0
    assert closed["statuses"].keys() == {"202"}
    assert closed["errors"] == {}
    assert closed["p95_ms"] is not None
    assert fixed["model"] == "open"
    assert fixed["accepted"] == fixed["requests"] == 50  # rate x seconds, whatever the timing
    assert fixed["connections"] == 5
    assert fixed["last_answer_at"] >= fixed["started_at"]
