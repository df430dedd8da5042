"""Hostile inputs: each gets a clear 4xx with a JSON message, writes nothing, and the server lives.

The table is shared by ``tests/reliability/test_inputs.py`` (one test per row) and by the
``hostile inputs`` scenario of ``make reliability`` (one row of the report).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from reference_app.testing import LiveServer
from reliability._databases import count_rows, fresh_database, unfinished_tasks
from reliability._outcome import Outcome, Scenario
from reliability._raw_http import RawResponse, build_request, send_raw
from reliability._served import ORG_A_KEY, assert_up, backend_of, serve

__all__ = [
    "HOSTILE_INPUTS",
    "SCENARIOS",
    "HostileInput",
    "Verdict",
    "run_hostile_inputs",
    "try_input",
]

MiB = 1024 * 1024
AUTH = (b"Authorization", f"Bearer {ORG_A_KEY}".encode())
JSON = (b"Content-Type", b"application/json")
VALID = json.dumps({"data": {"a": 1}, "io_ms": 0}).encode()
UNKNOWN_ID = str(uuid.UUID(int=1))


Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class HostileInput:
    """One request that a careless server might crash on, accept, or answer in plain text."""

    name: str
    path: str
    body: bytes | None = None
    headers: Headers = (AUTH, JSON)
    method: str = "POST"
    expect: frozenset[int] = frozenset({422})
    chunk_size: int | None = None
    declared_length: int | None = None
    # A request id the server must not echo back (it replaces unsafe ones with its own).
    not_echoed: bytes | None = None
    # uvicorn's HTTP parser refuses some requests itself, in plain text, before the app runs.
    by_http_parser: bool = False


def _post(
    name: str,
    body: bytes | None,
    *,
    expect: int,
    headers: Headers = (AUTH, JSON),
    chunk_size: int | None = None,
    declared_length: int | None = None,
) -> HostileInput:
    return HostileInput(
        name,
        "/process-data",
        body,
        headers=headers,
        expect=frozenset({expect}),
        chunk_size=chunk_size,
        declared_length=declared_length,
    )


def _get(
    name: str, path: str, *, headers: Headers = (AUTH,), not_echoed: bytes | None = None
) -> HostileInput:
    return HostileInput(
        name,
        path,
        None,
        headers=headers,
        method="GET",
        expect=frozenset({404}),
        not_echoed=not_echoed,
    )


def _json(value: str) -> bytes:
    return value.encode()


_BIG = b'{"data": {"a": "' + b"x" * (2 * MiB) + b'"}}'
_REQUEST_IDS = {
    "request-id-spaces": b"has spaces in it",
    "request-id-too-long": b"a" * 129,
    "request-id-latin-1": b"caf\xe9",
    "request-id-html": b"<script>alert(1)</script>",
    "request-id-log-injection": b'x", "level": "critical',
}
_IDEMPOTENCY_KEYS = {
    "idempotency-key-empty": b"",
    "idempotency-key-256-chars": b"k" * 256,
    "idempotency-key-space": b"two words",
    "idempotency-key-latin-1": b"caf\xe9",
}
_TASK_IDS = {
    "id-word": "/tasks/not-a-uuid",
    "id-number": "/tasks/123",
    "id-sql": "/tasks/%27%20OR%201%3D1--",
    "id-uuid-plus-one": f"/tasks/{UNKNOWN_ID}x",
    "id-20k-chars": "/tasks/" + "a" * 20_000,
    "id-traversal": "/tasks/..%2F..%2Fhealth",
    "id-percent-nul": "/tasks/%00",
    "id-unknown-uuid": f"/tasks/{UNKNOWN_ID}",
    "events-id-word": "/tasks/not-a-uuid/events",
    "events-id-sql": "/tasks/%27%20OR%201%3D1--/events",
}

HOSTILE_INPUTS: list[HostileInput] = [
    # Oversized bodies: over the 1 MiB limit, declared, chunked, or declared and never sent.
    _post("body-2mib-content-length", _BIG, expect=413),
    _post("body-2mib-chunked", _BIG, expect=413, chunk_size=64 * 1024),
    _post("body-declared-2mib-not-sent", None, expect=413, declared_length=2 * MiB),
    # JSON that is deep, huge or not JSON at all.
    _post("json-deep-arrays", b'{"data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", expect=400),
    _post(
        "json-deep-objects", b'{"data": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001, expect=400
    ),
    _post("json-5000-digit-number", b'{"data": {"a": ' + b"9" * 5000 + b"}}", expect=400),
    _post("json-truncated", b'{"data": {"a": 1}', expect=422),
    _post("json-top-level-array", b"[1, 2, 3]", expect=422),
    _post("json-empty-body", b"", expect=422),
    _post("json-unknown-field", _json('{"data": {"a": 1}, "admin": true}'), expect=422),
    _post("json-io-ms-out-of-range", _json('{"data": {"a": 1}, "io_ms": 10000000}'), expect=422),
    _post("json-nan", _json('{"data": {"a": NaN}, "io_ms": 0}'), expect=422),
    _post("json-infinity", _json('{"data": {"a": Infinity}, "io_ms": 0}'), expect=422),
    _post("json-nul-in-value", _json('{"data": {"a": "x\\u0000y"}, "io_ms": 0}'), expect=422),
    _post("json-nul-in-key", _json('{"data": {"a\\u0000": 1}, "io_ms": 0}'), expect=422),
    _post("json-lone-surrogate", _json('{"data": {"a": "\\ud800"}, "io_ms": 0}'), expect=422),
    HostileInput(
        "notification-nul-in-message",
        "/send-notification",
        _json('{"email": "ada@example.com", "message": "hi\\u0000"}'),
    ),
    # Invalid UTF-8, in the body and in a header.
    _post("body-invalid-utf8", b'{"data": {"a": "\xff\xfe"}}', expect=400),
    _post(
        "auth-invalid-utf8", VALID, expect=401, headers=((b"Authorization", b"Bearer \xff"), JSON)
    ),
    # Wrong or missing content types.
    _post("content-type-missing", VALID, expect=415, headers=(AUTH,)),
    _post("content-type-text", VALID, expect=415, headers=(AUTH, (b"Content-Type", b"text/plain"))),
    _post(
        "content-type-form",
        b"data=1",
        expect=415,
        headers=(AUTH, (b"Content-Type", b"application/x-www-form-urlencoded")),
    ),
    _post(
        "content-type-multipart",
        b"--b\r\n\r\n--b--",
        expect=415,
        headers=(AUTH, (b"Content-Type", b"multipart/form-data; boundary=b")),
    ),
    _post("content-type-xml", b"<a/>", expect=415, headers=(AUTH, (b"Content-Type", b"text/xml"))),
    # Auth that is missing or of the wrong kind.
    _post("auth-missing", VALID, expect=401, headers=(JSON,)),
    _post("auth-basic", VALID, expect=401, headers=((b"Authorization", b"Basic YTpi"), JSON)),
    _post("auth-other-key", VALID, expect=401, headers=((b"Authorization", b"Bearer nope"), JSON)),
    # Huge headers: uvicorn's httptools parser sets no size limit, so these must at least
    # leave the server answering; they go to an unknown task, a clean 404.
    _get("header-64kib", f"/tasks/{UNKNOWN_ID}", headers=(AUTH, (b"X-Big", b"a" * 65536))),
    _get(
        "headers-1000",
        f"/tasks/{UNKNOWN_ID}",
        headers=(AUTH, *((f"X-H{n}".encode(), b"v") for n in range(1000))),
    ),
    *(
        _get(
            name, f"/tasks/{UNKNOWN_ID}", headers=(AUTH, (b"X-Request-ID", value)), not_echoed=value
        )
        for name, value in _REQUEST_IDS.items()
    ),
    *(
        _post(name, VALID, expect=422, headers=(AUTH, JSON, (b"Idempotency-Key", value)))
        for name, value in _IDEMPOTENCY_KEYS.items()
    ),
    HostileInput(
        "idempotency-key-control-char",
        "/process-data",
        VALID,
        headers=(AUTH, JSON, (b"Idempotency-Key", b"a\x01b")),
        expect=frozenset({400}),
        by_http_parser=True,
    ),
    *(_get(name, path) for name, path in _TASK_IDS.items()),
    HostileInput(
        "method-delete-task", f"/tasks/{UNKNOWN_ID}", method="DELETE", expect=frozenset({405})
    ),
]


# Found by this table (see the README's Reliability section): the app cannot store these
# JSON values on PostgreSQL (500 in plain text, nothing written) and accepts them on SQLite.
@dataclass(frozen=True)
class Verdict:
    """What one hostile input did."""

    case: HostileInput
    response: RawResponse
    written: tuple[int, int]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def try_input(server: LiveServer, database_url: str, case: HostileInput) -> Verdict:
    """Send ``case``; check the status, the JSON message, the rows, the echo and ``/health``."""
    before = count_rows(database_url, settle_seconds=15)  # earlier tasks' events are not ours
    pieces = build_request(
        case.method,
        case.path,
        case.headers,
        case.body,
        chunk_size=case.chunk_size,
        declared_length=case.declared_length,
    )
    response = send_raw(server.port, pieces)
    after = count_rows(database_url)
    written = (after[0] - before[0], after[1] - before[1])
    problems: list[str] = []
    if response.status not in case.expect:
        problems.append(f"status {response.status}, expected {sorted(case.expect)}")
    if case.by_http_parser:
        pass  # uvicorn's own plain-text 400: the app never saw the request
    elif not response.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type {response.headers.get('content-type')!r}, not JSON")
    else:
        detail = response.json().get("detail") if response.body.startswith(b"{") else None
        if not detail:
            problems.append(f"no JSON detail message: {response.body[:200]!r}")
    if written != (0, 0):
        problems.append(f"wrote {written[0]} task rows and {written[1]} event rows")
    echoed = response.headers.get("x-request-id", "").encode("latin-1")
    if case.not_echoed is not None and echoed == case.not_echoed:
        problems.append("echoed the unsafe X-Request-ID")
    try:
        assert_up(server.url, seconds=5)
    except AssertionError as exc:
        problems.append(str(exc))
    return Verdict(case, response, written, problems)


def run_hostile_inputs(database_url: str, long: bool = True) -> Outcome:
    """Every row of the table against one live server (``long`` changes nothing: it is short)."""
    with serve(database_url) as server:
        verdicts = [try_input(server, database_url, case) for case in HOSTILE_INPUTS]
        lost = unfinished_tasks(database_url, seconds=15)  # any input that was accepted
    failed = [v for v in verdicts if not v.ok]
    if failed:
        raise AssertionError("; ".join(f"{v.case.name}: {', '.join(v.problems)}" for v in failed))
    accepted = sum(1 for v in verdicts if 200 <= v.response.status < 300)
    notes = "every input a JSON 4xx, nothing written, server up"
    return Outcome(
        fault="hostile inputs",
        backend=backend_of(database_url),
        load=f"{len(verdicts)} requests, one at a time",
        inputs=len(verdicts),
        accepted=accepted,
        lost=lost,
        duplicates=0,
        notes=notes,
    )


SCENARIOS = [Scenario("hostile inputs", run_hostile_inputs)]


if __name__ == "__main__":  # a quick look: python -m reliability.inputs
    with fresh_database("sqlite") as url:
        print(run_hostile_inputs(url))
