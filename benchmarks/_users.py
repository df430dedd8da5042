"""Abstract base users: closed loop (Locust's own model) and open model (a fixed arrival rate).

Closed-loop users wait for each answer before sending again, so a slow server
is sent less and its p95 looks better than users would experience
(coordinated omission). An open-model user sends on a fixed schedule whatever
the server does, and times each request from its intended start.
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

import gevent
from gevent.pool import Group
from locust import FastHttpUser, task
from locust.runners import LocalRunner

from benchmarks._arrivals import arrival_offsets, seeded
from benchmarks._calls import Call
from benchmarks._options import DEFAULT_HOST
from benchmarks._record import recorder  # importing it registers the recorder and the gate

__all__ = ["BenchUser", "ClosedLoopUser", "OpenModelUser"]


class BenchUser(FastHttpUser):
    """Sends ``call()``; every request it reports says which model and user sent it."""

    abstract = True
    host = DEFAULT_HOST
    model: ClassVar[str] = "closed"
    gated: ClassVar[bool] = False
    """Whether this user's requests count towards the p95 gate."""

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def call(self) -> Call:
        raise NotImplementedError

    def context(self) -> dict[str, Any]:
        return {"model": self.model, "user": type(self).__name__, "gated": self.gated}


class ClosedLoopUser(BenchUser):
    """Sends ``call()`` when the last answer came: back to back, or paced by ``--user-rate``.

    Paced, a user sends at most ``--user-rate`` requests a second, and fewer
    when answers are slow: it never catches up on the requests it did not send.
    """

    abstract = True
    _sent_at: float | None = None

    def on_start(self) -> None:
        # Paced users that all start at once would send in lockstep bursts: spread them out.
        rate: float = self.options.user_rate if self.options is not None else 0.0
        if rate > 0:
            gevent.sleep(random.uniform(0, 1.0 / rate))

    def wait_time(self) -> float:
        rate: float = self.options.user_rate if self.options is not None else 0.0
        if rate <= 0 or self._sent_at is None:
            return 0.0
        return max(0.0, self._sent_at + 1.0 / rate - time.perf_counter())

    @task
    def send(self) -> None:
        c = self.call()
        self._sent_at = time.perf_counter()
        self.client.request(c.method, c.path, name=c.name, data=c.body, headers=c.headers)


class Unanswered(Exception):
    """No answer within the grace period after the last arrival."""


class OpenModelUser(BenchUser):
    """Sends ``call()`` ``--arrival-rate`` times a second, each in a greenlet of its own.

    Arrivals are a Poisson process by default (``--arrivals uniform`` spaces them
    evenly), drawn from ``--arrival-seed``, so a run can be repeated exactly.

    A request's time runs from when it was due, so a server that stalls shows
    the wait of every request that arrived meanwhile. With ``--arrivals-for``
    the user stops arriving that many seconds after the test started, waits ``--open-grace``
    seconds for the answers (later ones are failures), and, when it is the last
    such user of a headless local run, ends the test.
    """

    abstract = True
    model: ClassVar[str] = "open"
    # Connections the client may open: it must never queue an arrival behind another.
    concurrency = 1000
    _started: ClassVar[int] = 0  # users created in this process: each draws its own arrivals
    _arriving: ClassVar[int] = 0  # users still arriving: the last one may end the test

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._in_flight = Group()
        OpenModelUser._started += 1
        self._number = OpenModelUser._started

    @task
    def arrive(self) -> None:
        rate: float = self.options.arrival_rate
        window: float = self.options.arrivals_for
        OpenModelUser._arriving += 1
        try:
            self._arrivals(rate, window)
        finally:
            OpenModelUser._arriving -= 1
        if OpenModelUser._arriving == 0 and self._may_end_the_test():
            gevent.spawn(self.environment.runner.quit)
        gevent.sleep(float("inf"))  # until the runner stops this user

    def _arrivals(self, rate: float, window: float) -> None:
        poisson = self.options.arrivals == "poisson"
        worker = getattr(self.environment.runner, "worker_index", 0)
        rng = seeded(self.options.arrival_seed, worker, self._number)
        t0, wall0 = time.perf_counter(), time.time()
        if window:
            # The window counts from the test's start: a user a shape added later stops
            # arriving at the same moment as the others.
            window -= wall0 - (recorder.started_at or wall0)
            if window <= 0:
                return
        for offset in arrival_offsets(rate, window=window, poisson=poisson, rng=rng):
            due = t0 + offset
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            self._in_flight.spawn(self._send, self.call(), due, wall0 + offset)
        if window:  # the load lasts the whole window, though the next arrival fell after it
            gevent.sleep(max(0.0, t0 + window - time.perf_counter()))
        self._in_flight.join(timeout=self.options.open_grace)
        self._in_flight.kill(Unanswered(f"no answer {self.options.open_grace:g} s after the load"))

    def _may_end_the_test(self) -> bool:
        """Headless, local (not distributed), and no closed-loop user still sending."""
        runner = self.environment.runner
        return (
            bool(self.options.headless)
            and isinstance(runner, LocalRunner)
            and all(isinstance(g.args[0], OpenModelUser) for g in runner.user_greenlets)
        )

    def _send(self, c: Call, due: float, start_s: float) -> None:
        lag_ms = (time.perf_counter() - due) * 1000
        exception: BaseException | None = None
        length = 0
        try:
            # catch_response: the session does not report; we do, timed from ``due``.
            response = self.client.request(
                c.method, c.path, name=c.name, data=c.body, headers=c.headers, catch_response=True
            )
            exception = response.request_meta["exception"]
            length = response.request_meta["response_length"]
        except Unanswered as unanswered:
            exception = unanswered
        self.environment.events.request.fire(
            request_type=c.method,
            name=c.name,
            response_time=(time.perf_counter() - due) * 1000,
            response_length=length,
            exception=exception,
            context={**self.context(), "lag_ms": lag_ms},
            start_time=start_s,
            url=c.path,
            response=None,
        )

    def on_stop(self) -> None:
        # Stopped before the answers came (the test ended): those requests are not counted.
        self._in_flight.kill(block=False)
