"""The log's invariants, checked over the whole log after a realistic run on both backends.

``log_violations`` is the checker. It is tested against hand-made bad logs
too, so a run that passes it has really been checked.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from reference_app.core.config import Settings
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import Task, TaskEvent
from reference_app.events.lifecycle import (
    TERMINAL_STATUSES,
    EventType,
    IllegalTransition,
    check_sequence,
    status_after,
)
from reference_app.main import create_app
from tests.conftest import make_settings
from tests.reference_app.events.test_projection import (
    MAX_ATTEMPTS,
    MIXED_HANDLERS,
    run_realistic_mix,
)

E = EventType
DECISIONS = frozenset({E.RETRY_SCHEDULED, E.TASK_FAILED, E.TASK_CANCELLED})


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    task_id: uuid.UUID
    version: int
    type: EventType
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProjectedTask:
    status: str
    version: int
    attempts: int


def _legal(previous: EventType | None, event_type: EventType) -> bool:
    # attempt_failed is only ever committed with its decision; judge the pair alone.
    batch = [event_type, E.RETRY_SCHEDULED] if event_type is E.ATTEMPT_FAILED else [event_type]
    try:
        check_sequence(previous, batch)
    except IllegalTransition:
        return False
    return True


def _stream_violations(task_id: uuid.UUID, stream: list[LoggedEvent]) -> list[str]:
    found: list[str] = []
    types = [e.type for e in stream]
    if types[0] is not E.TASK_SCHEDULED:
        found.append(f"{task_id}: stream starts with {types[0]}, not task_scheduled")
    versions = [e.version for e in stream]
    if versions != list(range(1, len(stream) + 1)):
        found.append(f"{task_id}: versions {versions} are not 1..{len(stream)} without gaps")
    for previous, event_type in zip([None, *types], types, strict=False):
        if not _legal(previous, event_type):
            found.append(f"{task_id}: illegal transition {previous} -> {event_type}")
    for i, event_type in enumerate(types[:-1]):
        # Only an operator's re-drive may follow an end.
        if status_after(event_type) in TERMINAL_STATUSES and types[i + 1] is not E.TASK_REQUEUED:
            found.append(f"{task_id}: {types[i + 1]} after terminal {event_type}")
    for i, event_type in enumerate(types):
        if event_type is E.ATTEMPT_FAILED and (
            i + 1 == len(types) or types[i + 1] not in DECISIONS
        ):
            found.append(f"{task_id}: attempt_failed not followed by its decision")
    started = [e.payload.get("attempt") for e in stream if e.type is E.TASK_STARTED]
    if started != list(range(1, len(started) + 1)):
        found.append(f"{task_id}: task_started attempts {started} are not 1..{len(started)}")
    return found


def log_violations(
    events: Iterable[LoggedEvent], projection: Mapping[uuid.UUID, ProjectedTask]
) -> list[str]:
    """Every broken invariant in ``events`` (in log order) against its ``projection``."""
    streams: dict[uuid.UUID, list[LoggedEvent]] = defaultdict(list)
    for event in events:
        streams[event.task_id].append(event)
    found: list[str] = []
    for task_id in sorted(set(projection) - set(streams)):
        found.append(f"{task_id}: projected task has no events")
    for task_id, stream in streams.items():
        found.extend(_stream_violations(task_id, stream))
        row = projection.get(task_id)
        if row is None:
            found.append(f"{task_id}: stream has no projection row")
            continue
        starts = sum(1 for e in stream if e.type is E.TASK_STARTED)
        if row.attempts != starts:
            found.append(f"{task_id}: attempts {row.attempts} != {starts} task_started events")
        if row.version != stream[-1].version:
            found.append(f"{task_id}: projected version {row.version} != {stream[-1].version}")
        if row.status != status_after(stream[-1].type):
            found.append(f"{task_id}: projected status {row.status} disagrees with the log")
    return found


# The checker, against hand-made logs -------------------------------------------------

TASK = uuid.UUID(int=1)


def logged(*types: EventType, versions: list[int] | None = None) -> list[LoggedEvent]:
    numbers = versions or list(range(1, len(types) + 1))
    attempts = iter(range(1, len(types) + 1))
    return [
        LoggedEvent(TASK, v, t, {"attempt": next(attempts)} if t is E.TASK_STARTED else {})
        for v, t in zip(numbers, types, strict=True)
    ]


def projected(events: list[LoggedEvent], **overrides: Any) -> dict[uuid.UUID, ProjectedTask]:
    values: dict[str, Any] = {
        "status": status_after(events[-1].type).value,
        "version": events[-1].version,
        "attempts": sum(1 for e in events if e.type is E.TASK_STARTED),
    }
    values.update(overrides)
    return {TASK: ProjectedTask(**values)}


GOOD_LOG = logged(
    E.TASK_SCHEDULED,
    E.TASK_STARTED,
    E.ATTEMPT_FAILED,
    E.RETRY_SCHEDULED,
    E.TASK_STARTED,
    E.TASK_SUCCEEDED,
)


OPERATED_LOG = logged(
    E.TASK_SCHEDULED,
    E.TASK_STARTED,
    E.CANCEL_REQUESTED,
    E.ATTEMPT_FAILED,
    E.TASK_CANCELLED,
    E.TASK_REQUEUED,
    E.TASK_STARTED,
    E.TASK_SUCCEEDED,
)


@pytest.mark.parametrize("log", [GOOD_LOG, OPERATED_LOG], ids=["retried", "cancelled_re_driven"])
def test_the_checker_accepts_a_good_log(log: list[LoggedEvent]) -> None:
    assert log_violations(log, projected(log)) == []


@pytest.mark.parametrize(
    ("events", "complaint"),
    [
        (logged(E.TASK_STARTED, E.TASK_SUCCEEDED), "not task_scheduled"),
        (logged(E.TASK_SCHEDULED, E.TASK_STARTED, versions=[1, 3]), "without gaps"),
        (logged(E.TASK_SCHEDULED, E.TASK_STARTED, versions=[2, 1]), "without gaps"),
        (logged(E.TASK_SCHEDULED, E.TASK_SUCCEEDED), "illegal transition"),
        (logged(E.TASK_SCHEDULED, E.TASK_SCHEDULED), "illegal transition"),
        (
            logged(E.TASK_SCHEDULED, E.TASK_STARTED, E.TASK_SUCCEEDED, E.TASK_STARTED),
            "after terminal task_succeeded",
        ),
        (logged(E.TASK_SCHEDULED, E.TASK_STARTED, E.ATTEMPT_FAILED), "not followed"),
        (
            logged(E.TASK_SCHEDULED, E.TASK_STARTED, E.ATTEMPT_FAILED, E.TASK_STARTED),
            "not followed",
        ),
        (
            [*logged(E.TASK_SCHEDULED), LoggedEvent(TASK, 2, E.TASK_STARTED, {"attempt": 2})],
            "attempts [2] are not 1..1",
        ),
        (
            logged(E.TASK_SCHEDULED, E.TASK_CANCELLED, E.TASK_STARTED),
            "after terminal task_cancelled",
        ),
        (logged(E.TASK_SCHEDULED, E.CANCEL_REQUESTED), "illegal transition"),
    ],
    ids=[
        "no_task_scheduled",
        "version_gap",
        "versions_out_of_order",
        "illegal_transition",
        "scheduled_twice",
        "event_after_terminal",
        "attempt_failed_last",
        "attempt_failed_then_started",
        "attempt_numbers_skip",
        "started_after_cancelled",
        "cancel_requested_before_a_start",
    ],
)
def test_the_checker_rejects_a_bad_log(events: list[LoggedEvent], complaint: str) -> None:
    violations = log_violations(events, projected(events))

    assert any(complaint in v for v in violations), violations


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"attempts": 1}, "attempts 1 != 2 task_started events"),
        ({"version": 5}, "projected version 5 != 6"),
        ({"status": "running"}, "projected status running"),
    ],
)
def test_the_checker_rejects_a_projection_that_disagrees_with_the_log(
    overrides: dict[str, Any], complaint: str
) -> None:
    violations = log_violations(GOOD_LOG, projected(GOOD_LOG, **overrides))

    assert any(complaint in v for v in violations), violations


def test_the_checker_rejects_a_stream_and_a_row_without_each_other() -> None:
    orphan_row = {uuid.UUID(int=2): ProjectedTask("scheduled", 1, 0)}

    violations = log_violations(GOOD_LOG, orphan_row)

    assert f"{uuid.UUID(int=2)}: projected task has no events" in violations
    assert f"{TASK}: stream has no projection row" in violations


# The invariants, over the log of a realistic run --------------------------------------


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, task_max_attempts=MAX_ATTEMPTS)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings, handlers=MIXED_HANDLERS)
    async with app.router.lifespan_context(app):
        yield app


async def load_log(
    sessions: SessionFactory,
) -> tuple[list[LoggedEvent], dict[uuid.UUID, ProjectedTask]]:
    async with session_scope(sessions) as session:
        events = await session.scalars(
            select(TaskEvent).where(TaskEvent.stream_id == TaskEvent.task_id).order_by(TaskEvent.id)
        )
        log = [LoggedEvent(e.task_id, e.version, EventType(e.type), e.payload) for e in events]
        tasks = await session.scalars(select(Task))
        projection = {t.id: ProjectedTask(t.status, t.version, t.attempts) for t in tasks}
    return log, projection


async def test_a_realistic_run_keeps_every_invariant(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    finals = await run_realistic_mix(client)

    log, projection = await load_log(sessions)

    assert log_violations(log, projection) == []
    assert set(projection) == {uuid.UUID(t) for t in finals}
    # The run exercised every event type, so every check above had something to check.
    assert {e.type for e in log} == set(EventType)


async def test_every_accepted_task_has_exactly_one_task_scheduled(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    finals = await run_realistic_mix(client)

    log, _ = await load_log(sessions)

    scheduled = Counter(e.task_id for e in log if e.type is E.TASK_SCHEDULED)
    assert scheduled == Counter({uuid.UUID(t): 1 for t in finals})
