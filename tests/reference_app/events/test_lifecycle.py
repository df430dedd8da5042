"""The transition table, written out here independently of the module, and checked pair by pair."""

from __future__ import annotations

from itertools import product

import pytest

from reference_app.events.lifecycle import (
    TERMINAL_STATUSES,
    EventType,
    IllegalTransition,
    TaskStatus,
    check_batch,
    check_sequence,
    status_after,
    statuses_before,
)

E = EventType
S = TaskStatus

# Every (previous event, next event) pair a stream may contain; everything else is illegal.
LEGAL_PAIRS: frozenset[tuple[EventType | None, EventType]] = frozenset(
    {
        (None, E.TASK_SCHEDULED),
        (E.TASK_SCHEDULED, E.TASK_STARTED),
        (E.TASK_STARTED, E.TASK_SUCCEEDED),
        (E.TASK_STARTED, E.ATTEMPT_FAILED),
        (E.ATTEMPT_FAILED, E.RETRY_SCHEDULED),
        (E.ATTEMPT_FAILED, E.TASK_FAILED),
        (E.RETRY_SCHEDULED, E.TASK_STARTED),
        # An operator's cancel: of waiting work at once, of a running attempt by request.
        (E.TASK_SCHEDULED, E.TASK_CANCELLED),
        (E.RETRY_SCHEDULED, E.TASK_CANCELLED),
        (E.TASK_STARTED, E.CANCEL_REQUESTED),
        (E.CANCEL_REQUESTED, E.TASK_CANCELLED),
        # The attempt may end on its own before its worker sees the request.
        (E.CANCEL_REQUESTED, E.TASK_SUCCEEDED),
        (E.CANCEL_REQUESTED, E.ATTEMPT_FAILED),
        (E.ATTEMPT_FAILED, E.TASK_CANCELLED),
        # The re-drive of a dead letter, and what may follow it.
        (E.TASK_FAILED, E.TASK_REQUEUED),
        (E.TASK_CANCELLED, E.TASK_REQUEUED),
        (E.TASK_REQUEUED, E.TASK_STARTED),
        (E.TASK_REQUEUED, E.TASK_CANCELLED),
    }
)
ALL_PAIRS = list(product([None, *EventType], EventType))


def _batch_for(event_type: EventType) -> list[EventType]:
    """The smallest committable batch that starts with ``event_type``."""
    if event_type is E.ATTEMPT_FAILED:
        return [E.ATTEMPT_FAILED, E.RETRY_SCHEDULED]
    return [event_type]


@pytest.mark.parametrize(("previous", "event_type"), sorted(LEGAL_PAIRS, key=str))
def test_a_legal_event_may_follow_its_predecessor(
    previous: EventType | None, event_type: EventType
) -> None:
    check_sequence(previous, _batch_for(event_type))


@pytest.mark.parametrize(
    ("previous", "event_type"), [p for p in ALL_PAIRS if p not in LEGAL_PAIRS], ids=str
)
def test_every_other_pair_is_an_illegal_transition(
    previous: EventType | None, event_type: EventType
) -> None:
    with pytest.raises(IllegalTransition, match="may not follow"):
        check_sequence(previous, _batch_for(event_type))


@pytest.mark.parametrize(
    "stream",
    [
        [E.TASK_SCHEDULED, E.TASK_STARTED, E.TASK_SUCCEEDED],
        [E.TASK_SCHEDULED, E.TASK_STARTED, E.ATTEMPT_FAILED, E.TASK_FAILED],
        [
            E.TASK_SCHEDULED,
            E.TASK_STARTED,
            E.ATTEMPT_FAILED,
            E.RETRY_SCHEDULED,
            E.TASK_STARTED,
            E.ATTEMPT_FAILED,
            E.RETRY_SCHEDULED,
            E.TASK_STARTED,
            E.TASK_SUCCEEDED,
        ],
        [E.TASK_SCHEDULED, E.TASK_CANCELLED, E.TASK_REQUEUED, E.TASK_STARTED, E.TASK_SUCCEEDED],
        [
            E.TASK_SCHEDULED,
            E.TASK_STARTED,
            E.CANCEL_REQUESTED,
            E.ATTEMPT_FAILED,
            E.TASK_CANCELLED,
        ],
        [
            E.TASK_SCHEDULED,
            E.TASK_STARTED,
            E.ATTEMPT_FAILED,
            E.TASK_FAILED,
            E.TASK_REQUEUED,
            E.TASK_STARTED,
            E.TASK_SUCCEEDED,
        ],
    ],
    ids=[
        "success",
        "permanent_failure",
        "two_retries_then_success",
        "cancelled_then_re_driven",
        "cancel_requested_then_failed",
        "failed_then_re_driven",
    ],
)
def test_a_whole_legal_stream_is_a_legal_sequence_from_empty(stream: list[EventType]) -> None:
    check_sequence(None, stream)


@pytest.mark.parametrize(
    "stream",
    [
        [E.TASK_STARTED],
        [E.TASK_SCHEDULED, E.TASK_SUCCEEDED],
        [E.TASK_SCHEDULED, E.TASK_STARTED, E.TASK_SUCCEEDED, E.TASK_STARTED],
        [E.TASK_SCHEDULED, E.TASK_STARTED, E.ATTEMPT_FAILED, E.TASK_FAILED, E.TASK_STARTED],
        [E.TASK_SCHEDULED, E.TASK_STARTED, E.ATTEMPT_FAILED, E.TASK_STARTED, E.TASK_SUCCEEDED],
        [E.TASK_SCHEDULED, E.TASK_SCHEDULED],
        [E.TASK_SCHEDULED, E.TASK_STARTED, E.TASK_SUCCEEDED, E.TASK_REQUEUED],
        [E.TASK_SCHEDULED, E.CANCEL_REQUESTED],
        [E.TASK_SCHEDULED, E.TASK_CANCELLED, E.TASK_STARTED],
    ],
    ids=[
        "no_scheduled_first",
        "succeeded_without_start",
        "restart_after_success",
        "restart_after_failure",
        "attempt_failed_without_decision",
        "scheduled_twice",
        "re_drive_after_success",
        "cancel_request_of_waiting_work",
        "start_after_cancel",
    ],
)
def test_an_illegal_step_anywhere_in_a_stream_is_refused(stream: list[EventType]) -> None:
    with pytest.raises(IllegalTransition):
        check_sequence(None, stream)


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="at least one event"):
        check_batch([])


@pytest.mark.parametrize(
    "batch",
    [[E.ATTEMPT_FAILED], [E.TASK_STARTED, E.ATTEMPT_FAILED]],
    ids=["alone", "after_start"],
)
def test_attempt_failed_may_not_end_a_batch(batch: list[EventType]) -> None:
    with pytest.raises(IllegalTransition, match="must be appended with"):
        check_batch(batch)


@pytest.mark.parametrize("decision", [E.RETRY_SCHEDULED, E.TASK_FAILED, E.TASK_CANCELLED])
def test_attempt_failed_is_committable_together_with_its_decision(decision: EventType) -> None:
    check_sequence(E.TASK_STARTED, [E.ATTEMPT_FAILED, decision])


def test_attempt_failed_with_a_success_is_not_a_decision() -> None:
    with pytest.raises(IllegalTransition):
        check_sequence(E.TASK_STARTED, [E.ATTEMPT_FAILED, E.TASK_SUCCEEDED])


def test_a_batch_out_of_order_is_refused_even_when_its_first_event_fits() -> None:
    with pytest.raises(IllegalTransition, match="retry_scheduled may not follow task_started"):
        check_sequence(E.TASK_SCHEDULED, [E.TASK_STARTED, E.RETRY_SCHEDULED])


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        (E.TASK_SCHEDULED, S.SCHEDULED),
        (E.TASK_STARTED, S.RUNNING),
        (E.ATTEMPT_FAILED, S.RUNNING),
        (E.RETRY_SCHEDULED, S.RETRYING),
        (E.TASK_SUCCEEDED, S.SUCCEEDED),
        (E.TASK_FAILED, S.FAILED),
        (E.CANCEL_REQUESTED, S.CANCELLING),
        (E.TASK_CANCELLED, S.CANCELLED),
        (E.TASK_REQUEUED, S.SCHEDULED),
    ],
)
def test_status_after_names_the_status_each_event_leaves(
    event_type: EventType, status: TaskStatus
) -> None:
    assert status_after(event_type) is status


@pytest.mark.parametrize(
    ("first", "statuses"),
    [
        (E.TASK_SCHEDULED, set()),
        (E.TASK_STARTED, {S.SCHEDULED, S.RETRYING}),
        (E.ATTEMPT_FAILED, {S.RUNNING, S.CANCELLING}),
        (E.TASK_SUCCEEDED, {S.RUNNING, S.CANCELLING}),
        # Only ever appended behind attempt_failed, which no stored status ends on.
        (E.RETRY_SCHEDULED, set()),
        (E.TASK_FAILED, set()),
        (E.CANCEL_REQUESTED, {S.RUNNING}),
        (E.TASK_CANCELLED, {S.SCHEDULED, S.RETRYING, S.CANCELLING}),
        (E.TASK_REQUEUED, {S.FAILED, S.CANCELLED}),
    ],
)
def test_statuses_before_names_the_stored_statuses_a_batch_may_start_from(
    first: EventType, statuses: set[TaskStatus]
) -> None:
    assert statuses_before(first) == statuses


def test_the_terminal_statuses_are_succeeded_failed_and_cancelled() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == TERMINAL_STATUSES


@pytest.mark.parametrize("event_type", [e for e in EventType if e is not E.TASK_REQUEUED])
def test_no_batch_may_start_from_a_terminal_status(event_type: EventType) -> None:
    assert not statuses_before(event_type) & TERMINAL_STATUSES


def test_only_the_re_drive_leaves_a_terminal_status_and_never_a_success() -> None:
    assert statuses_before(E.TASK_REQUEUED) == {S.FAILED, S.CANCELLED}


@pytest.mark.parametrize(
    ("previous", "event_type"),
    [p for p in sorted(LEGAL_PAIRS, key=str) if p[0] not in (None, E.ATTEMPT_FAILED)],
    ids=str,
)
def test_the_status_a_legal_event_leaves_admits_its_legal_successor(
    previous: EventType, event_type: EventType
) -> None:
    # The store checks transitions against the stored status, so the two tables must agree.
    assert status_after(previous) in statuses_before(event_type)
