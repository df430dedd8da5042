"""The recorder: each attempt's outcome named from its events, and each hook's metric moved."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.requests import Request

from reference_app.core.clock import utcnow
from reference_app.events.lifecycle import EventType
from reference_app.events.outcomes import (
    after_cancel_request,
    cancelled_event,
    failure_events,
    success_event,
)
from reference_app.events.store import NewEvent
from reference_app.metrics.recorder import OUTCOMES, Recorder, attempt_outcome, route_template
from reference_app.store import Claim

T0 = utcnow()


def claim(kind: str = "process_data", **changes: Any) -> Claim:
    base = Claim(
        task_id=uuid.uuid4(),
        version=2,
        attempt=1,
        kind=kind,
        org_id="org-a",
        user_id="alice",
        params={},
        request_id=None,
        max_attempts=3,
        due_at=T0,
        started_at=T0 + timedelta(seconds=2),
    )
    return replace(base, **changes)


def failure(error_type: str = "TransientError", *, transient: bool = True, attempt: int = 1):
    return failure_events(
        attempt=attempt,
        max_attempts=2,
        error_type=error_type,
        error="boom",
        transient=transient,
        delay=0.0,
    )


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        pytest.param([success_event(attempt=1, result={}, duration_ms=1)], "succeeded", id="ok"),
        pytest.param(failure(), "retried", id="transient"),
        pytest.param(failure("Cancelled"), "retried", id="shutdown"),
        pytest.param(failure(transient=False), "failed", id="permanent"),
        pytest.param(failure(attempt=2), "failed", id="last-attempt"),
        pytest.param(failure("AttemptTimeout"), "timed_out", id="timeout-retried"),
        pytest.param(failure("AttemptTimeout", attempt=2), "timed_out", id="timeout-failed"),
        pytest.param([cancelled_event(attempt=1, reason="stop")], "cancelled", id="cancelled"),
        pytest.param(after_cancel_request(failure("AttemptTimeout")), "cancelled", id="both"),
        pytest.param([NewEvent(EventType.CANCEL_REQUESTED, {})], None, id="not-an-end"),
        pytest.param([], None, id="nothing"),
    ],
)
def test_an_attempts_outcome_is_named_from_its_events(
    events: list[NewEvent], outcome: str | None
) -> None:
    assert attempt_outcome(events) == outcome
    assert outcome is None or outcome in OUTCOMES


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def recorder(registry: CollectorRegistry) -> Recorder:
    return Recorder(registry, webhook_kind="webhook_delivery")


def value(registry: CollectorRegistry) -> Callable[..., float]:
    def read(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    return read


def test_an_attempts_end_moves_its_counter_and_its_duration(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    read = value(registry)
    done = success_event(attempt=1, result={}, duration_ms=1)
    ended = NewEvent(done.type, done.payload, at=T0 + timedelta(seconds=5))

    recorder.ended(claim(), [ended])

    labels = {"kind": "process_data", "outcome": "succeeded"}
    assert read("bgjobs_attempts_total", **labels) == 1
    assert read("bgjobs_attempt_duration_seconds_count", **labels) == 1
    assert read("bgjobs_attempt_duration_seconds_sum", **labels) == 3.0  # started at T0 + 2
    assert read("bgjobs_webhook_deliveries_total", outcome="succeeded") == 0


def test_a_delivery_attempt_also_counts_as_a_webhook_delivery(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    read = value(registry)
    recorder.ended(claim("webhook_delivery"), failure("RetryableResponse"))
    recorder.ended(claim("webhook_delivery"), failure("RefusedResponse", transient=False))
    assert read("bgjobs_webhook_deliveries_total", outcome="retried") == 1
    assert read("bgjobs_webhook_deliveries_total", outcome="failed") == 1
    assert read("bgjobs_attempts_total", kind="webhook_delivery", outcome="retried") == 1


def test_queue_delay_is_from_due_to_started_and_never_negative(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    read = value(registry)
    inline = claim(due_at=T0 + timedelta(seconds=30))  # held for its request, started at once
    recorder.started([claim(), inline, claim(due_at=None)])
    assert read("bgjobs_queue_delay_seconds_count", kind="process_data") == 2
    assert read("bgjobs_queue_delay_seconds_sum", kind="process_data") == 2.0
    assert read("bgjobs_queue_delay_seconds_bucket", kind="process_data", le="0.001") == 1


def test_the_other_hooks_move_their_metrics(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    read = value(registry)
    recorder.accepted("send_notification")
    recorder.swept(3, 1)
    recorder.swept(0, 0)
    recorder.accepted_in("/process-data", 0.004)

    class Route:
        path = "/tasks/{task_id}"

    request = Request({"type": "http", "method": "GET", "path": "/tasks/x", "route": Route()})
    recorder.database_outage(request)

    assert read("bgjobs_tasks_accepted_total", kind="send_notification") == 1
    assert read("bgjobs_sweeper_claims_total") == 3
    assert read("bgjobs_sweeper_recovered_leases_total") == 1
    assert read("bgjobs_accept_duration_seconds_bucket", route="/process-data", le="0.005") == 1
    assert read("bgjobs_database_unavailable_responses_total", route="/tasks/{task_id}") == 1


def test_a_request_no_route_matched_is_labelled_unmatched() -> None:
    assert route_template({"type": "http"}) == "unmatched"
