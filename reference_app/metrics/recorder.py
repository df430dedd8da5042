"""The counters and histograms, and the hooks that move them.

Every label value comes from a closed set the code declares: a route's template (never its
path, which holds task ids), a task kind, an outcome. No organisation, task id or payload
is ever a label, so a scrape tells one org nothing of another's work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.types import Scope

from reference_app.events.lifecycle import EventType
from reference_app.events.store import NewEvent
from reference_app.store import Claim
from reference_app.tasks.worker import Worker

__all__ = ["OUTCOMES", "Recorder", "attempt_outcome", "route_template"]

OUTCOMES = ("succeeded", "failed", "retried", "timed_out", "cancelled")
"""What ended an attempt: ``timed_out`` is an attempt cut at its deadline (then retried or
failed like any failure); ``retried`` includes one cut by a shutdown."""

_BY_FINAL_EVENT: Mapping[EventType, str] = {
    EventType.TASK_SUCCEEDED: "succeeded",
    EventType.TASK_FAILED: "failed",
    EventType.RETRY_SCHEDULED: "retried",
    EventType.TASK_CANCELLED: "cancelled",
}
_TIMEOUT = "AttemptTimeout"  # the error_type tasks/deadline.py records

# Seconds. The accept is milliseconds; an attempt up to the default 300 s deadline; a queue
# delay from none (a free slot) to minutes (a backlog, a retry's sweep).
ACCEPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ATTEMPT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def attempt_outcome(events: Sequence[NewEvent]) -> str | None:
    """One of ``OUTCOMES`` for the events that ended an attempt (None: not an attempt's end)."""
    outcome = _BY_FINAL_EVENT.get(events[-1].type) if events else None
    if outcome in ("failed", "retried") and any(
        e.type is EventType.ATTEMPT_FAILED and e.payload.get("error_type") == _TIMEOUT
        for e in events
    ):
        return "timed_out"
    return outcome


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/tasks/{task_id}``), or ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class Recorder:
    """The process's metrics, and the hooks ``main`` registers: a store observer, the sweeper's
    ``on_pass``, the error handlers' ``on_outage`` and the accept timer's ``accepted_in``."""

    def __init__(self, registry: CollectorRegistry, *, webhook_kind: str) -> None:
        self.webhook_kind = webhook_kind
        self.accept_seconds = Histogram(
            "bgjobs_accept_duration_seconds",
            "Time from a request's arrival to its 202 Accepted, by route template.",
            ["route"],
            buckets=ACCEPT_BUCKETS,
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "bgjobs_attempt_duration_seconds",
            "An attempt from its task_started to the event that ended it, as the log has them.",
            ["kind", "outcome"],
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.queue_delay = Histogram(
            "bgjobs_queue_delay_seconds",
            "From when a task was due (run_after) to its attempt's task_started.",
            ["kind"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        self.tasks_accepted = Counter(
            "bgjobs_tasks_accepted",
            "Tasks committed (task_scheduled), by the API or a schedule; replays not counted.",
            ["kind"],
            registry=registry,
        )
        self.attempts = Counter(
            "bgjobs_attempts",
            "Attempts ended by their worker, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "bgjobs_webhook_deliveries",
            "Webhook delivery attempts, by outcome (succeeded: the receiver answered 2xx).",
            ["outcome"],
            registry=registry,
        )
        self.database_outages = Counter(
            "bgjobs_database_unavailable_responses",
            "503s answered because the database was unavailable, by route template.",
            ["route"],
            registry=registry,
        )
        self.sweeper_claims = Counter(
            "bgjobs_sweeper_claims",
            "Due tasks the sweeper claimed and started.",
            registry=registry,
        )
        self.recovered_leases = Counter(
            "bgjobs_sweeper_recovered_leases",
            "Attempts whose lease expired (their process stopped), ended by the sweeper.",
            registry=registry,
        )
        # livesum: under PROMETHEUS_MULTIPROC_DIR, the sum over the live processes.
        self.slots_in_use = Gauge(
            "bgjobs_worker_slots_in_use",
            "Attempt slots taken, summed over the app's processes.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.slots_capacity = Gauge(
            "bgjobs_worker_slots_capacity",
            "Attempt slots (APP_MAX_CONCURRENT_TASKS), summed over the app's processes.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        for outcome in OUTCOMES:  # present at 0, so a rate() has a start
            self.webhook_deliveries.labels(outcome)

    # The store's observer ---------------------------------------------------------------

    def accepted(self, kind: str) -> None:
        self.tasks_accepted.labels(kind).inc()

    def started(self, claims: Sequence[Claim]) -> None:
        for claim in claims:
            if claim.due_at is not None and claim.started_at is not None:
                # An inline task's hold lies ahead of its start: it waited for nothing.
                delay = (claim.started_at - claim.due_at).total_seconds()
                self.queue_delay.labels(claim.kind).observe(max(0.0, delay))

    def ended(self, claim: Claim, events: Sequence[NewEvent]) -> None:
        outcome = attempt_outcome(events)
        if outcome is None:
            return
        self.attempts.labels(claim.kind, outcome).inc()
        if claim.started_at is not None:
            seconds = (events[-1].at - claim.started_at).total_seconds()
            self.attempt_seconds.labels(claim.kind, outcome).observe(max(0.0, seconds))
        if claim.kind == self.webhook_kind:
            self.webhook_deliveries.labels(outcome).inc()

    # The other hooks -------------------------------------------------------------------

    def swept(self, claimed: int, recovered: int) -> None:
        """The sweeper's ``on_pass``."""
        if claimed:
            self.sweeper_claims.inc(claimed)
        if recovered:
            self.recovered_leases.inc(recovered)

    def database_outage(self, request: Request) -> None:
        """The error handlers' ``on_outage``."""
        self.database_outages.labels(route_template(request.scope)).inc()

    def accepted_in(self, route: str, seconds: float) -> None:
        """The accept timer's: a 202 answered ``seconds`` after the request arrived."""
        self.accept_seconds.labels(route).observe(seconds)

    def publish_slots(self, worker: Worker) -> None:
        """This process's slots, as of now (at each sweeper pass and each scrape)."""
        self.slots_in_use.set(worker.capacity - worker.free_slots)
        self.slots_capacity.set(worker.capacity)
