"""The task bodies: what each one writes, and where its blocking or CPU work runs."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Contact
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError
from reference_app.tasks.handlers import (
    CONTACTS_PER_FILE,
    HANDLERS,
    import_contacts,
    parse_contacts_file,
    process_data,
    send_notification,
)
from reference_app.tasks.work import burn_cpu

HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class RecordingExecutor(Executor):
    """Delegates to a real executor and remembers what was submitted to it."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.submitted: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append((fn, args))
        return self.inner.submit(fn, *args, **kwargs)


@pytest.fixture
def thread_pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


def _context(
    sessions: Any,
    pool: Executor,
    *,
    kind: str,
    params: dict[str, Any],
    org_id: str = "org-a",
    attempt: int = 1,
) -> TaskContext:
    return TaskContext(
        task_id=uuid.uuid4(),
        org_id=org_id,
        kind=kind,
        params=params,
        attempt=attempt,
        sessions=sessions,
        cpu_pool=pool,
    )


def test_every_endpoint_kind_has_a_handler() -> None:
    assert set(HANDLERS) == {"import_contacts", "send_notification", "process_data"}


# parse_contacts_file ----------------------------------------------------------


def test_a_contacts_file_parses_to_distinct_rows() -> None:
    rows = parse_contacts_file("file-2024-01")

    assert len(rows) == CONTACTS_PER_FILE
    assert len({row["email"] for row in rows}) == CONTACTS_PER_FILE
    assert all(set(row) == {"email", "name"} for row in rows)
    assert all(row["email"].endswith("@example.com") for row in rows)


def test_parsing_the_same_file_twice_gives_the_same_rows() -> None:
    assert parse_contacts_file("file-a") == parse_contacts_file("file-a")
    assert parse_contacts_file("file-a") != parse_contacts_file("file-b")


def test_a_missing_contacts_file_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        parse_contacts_file("missing-2024")


# import_contacts ---------------------------------------------------------------


async def _contacts(sessions: SessionFactory) -> list[Contact]:
    async with session_scope(sessions) as session:
        return list(await session.scalars(select(Contact).order_by(Contact.email)))


async def test_import_contacts_writes_the_files_rows(
    sessions: SessionFactory, thread_pool: ThreadPoolExecutor
) -> None:
    ctx = _context(sessions, thread_pool, kind="import_contacts", params={"file_id": "f-1"})

    result = await import_contacts(ctx)

    contacts = await _contacts(sessions)
    assert result == {"file_id": "f-1", "rows": CONTACTS_PER_FILE}
    assert sorted(c.email for c in contacts) == sorted(
        row["email"] for row in parse_contacts_file("f-1")
    )
    assert {(c.org_id, c.source_task_id) for c in contacts} == {("org-a", ctx.task_id)}


async def test_import_contacts_run_twice_writes_each_contact_once(
    sessions: SessionFactory, thread_pool: ThreadPoolExecutor
) -> None:
    # At-least-once delivery: a crash after the insert means the attempt runs again.
    first = _context(sessions, thread_pool, kind="import_contacts", params={"file_id": "f-1"})
    again = _context(
        sessions, thread_pool, kind="import_contacts", params={"file_id": "f-1"}, attempt=2
    )

    await import_contacts(first)
    await import_contacts(again)

    contacts = await _contacts(sessions)
    assert len(contacts) == CONTACTS_PER_FILE
    assert {c.source_task_id for c in contacts} == {first.task_id}


async def test_the_same_file_imports_separately_for_each_org(
    sessions: SessionFactory, thread_pool: ThreadPoolExecutor
) -> None:
    for org_id in ("org-a", "org-b"):
        ctx = _context(
            sessions,
            thread_pool,
            kind="import_contacts",
            params={"file_id": "f-1"},
            org_id=org_id,
        )
        await import_contacts(ctx)

    async with session_scope(sessions) as session:
        rows = await session.execute(select(Contact.org_id, func.count()).group_by(Contact.org_id))
        per_org = {org_id: count for org_id, count in rows}
    assert per_org == {"org-a": CONTACTS_PER_FILE, "org-b": CONTACTS_PER_FILE}


async def test_import_contacts_of_a_missing_file_writes_nothing(
    sessions: SessionFactory, thread_pool: ThreadPoolExecutor
) -> None:
    ctx = _context(sessions, thread_pool, kind="import_contacts", params={"file_id": "missing-1"})

    with pytest.raises(PermanentError):
        await import_contacts(ctx)

    assert await _contacts(sessions) == []


# send_notification and process_data ----------------------------------------------


async def test_send_notification_reports_the_recipient_and_length(
    thread_pool: ThreadPoolExecutor,
) -> None:
    ctx = _context(
        None,
        thread_pool,
        kind="send_notification",
        params={"email": "ann@example.com", "message": "hello"},
    )

    assert await send_notification(ctx) == {"to": "ann@example.com", "characters": 5}


async def test_process_data_without_cpu_work_stays_off_the_pool(
    thread_pool: ThreadPoolExecutor,
) -> None:
    pool = RecordingExecutor(thread_pool)
    data = {"b": 2, "a": [1, 2]}
    ctx = _context(None, pool, kind="process_data", params={"data": data, "io_ms": 1, "cpu_ms": 0})

    result = await process_data(ctx)

    expected = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert result == {"keys": 2, "io_ms": 1, "cpu_ms": 0, "digest": expected}
    assert pool.submitted == []


async def test_process_data_runs_burn_cpu_in_the_process_pool() -> None:
    data = {"a": 1}
    seed = json.dumps(data, sort_keys=True).encode()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as processes:
        pool = RecordingExecutor(processes)
        ctx = _context(
            None, pool, kind="process_data", params={"data": data, "io_ms": 0, "cpu_ms": 20}
        )

        result = await process_data(ctx)

    assert pool.submitted == [(burn_cpu, (20, seed))]
    assert HEX_DIGEST.fullmatch(result["digest"])
    assert result["digest"] != hashlib.sha256(seed).hexdigest()
    assert result["cpu_ms"] == 20


# burn_cpu ------------------------------------------------------------------------


def test_burn_cpu_returns_a_hex_sha256_digest() -> None:
    digest = burn_cpu(5, b"seed")

    assert HEX_DIGEST.fullmatch(digest)
    # At least one round of 200 re-hashes ran.
    assert digest != hashlib.sha256(b"seed").hexdigest()


def test_burn_cpu_with_no_time_is_one_hash_of_the_seed() -> None:
    assert burn_cpu(0, b"seed") == hashlib.sha256(b"seed").hexdigest()
