"""An attempt's deadline: work within it returns, work past it is cancelled, and work that
will not stop is abandoned at the deadline plus the grace, never waited for."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from structlog.testing import capture_logs

from reference_app.tasks.deadline import AttemptTimeout, Deadline
from reference_app.tasks.errors import is_transient
from tests.reference_app._task_kit import WAIT, wait_until

GRACE = 0.2


async def hang(cleaned: asyncio.Event) -> None:
    """Wait until cancelled; ``cleaned`` says its cleanup ran."""
    try:
        await asyncio.Event().wait()
    finally:
        cleaned.set()


async def test_work_within_its_deadline_returns_its_result() -> None:
    async def quick() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"n": 1}

    assert await Deadline(GRACE).run(quick(), seconds=WAIT) == {"n": 1}


async def test_a_failure_within_the_deadline_is_the_failure_not_a_timeout() -> None:
    async def broken() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await Deadline(GRACE).run(broken(), seconds=WAIT)


async def test_work_past_its_deadline_is_cancelled_and_its_cleanup_runs() -> None:
    cleaned = asyncio.Event()

    deadline = Deadline(GRACE)
    with pytest.raises(AttemptTimeout) as caught:
        await deadline.run(hang(cleaned), seconds=0.05)

    assert cleaned.is_set()
    assert deadline.abandoned == 0
    assert caught.value.deadline_seconds == 0.05
    assert is_transient(caught.value)  # so the retry policy decides what follows


async def test_a_blocking_thread_is_left_running_and_the_attempt_ends_at_the_deadline() -> None:
    release, finished = threading.Event(), threading.Event()

    def block() -> None:
        release.wait(WAIT)
        finished.set()

    deadline = Deadline(GRACE)
    try:
        with pytest.raises(AttemptTimeout):
            await deadline.run(asyncio.to_thread(block), seconds=0.05)
        # The attempt is over while the thread still runs: nothing waited for it.
        assert not finished.is_set()
    finally:
        release.set()
    await asyncio.to_thread(finished.wait, WAIT)


async def test_work_that_ignores_cancellation_is_abandoned_and_its_result_discarded() -> None:
    carry_on = asyncio.Event()
    returned: list[str] = []

    async def stubborn() -> str:
        while True:
            try:
                await carry_on.wait()
                returned.append("late")
                return "late"
            except asyncio.CancelledError:
                continue  # ignores cancellation, as some libraries do

    deadline = Deadline(GRACE)
    with capture_logs() as logs:
        started = time.monotonic()
        with pytest.raises(AttemptTimeout):
            await deadline.run(stubborn(), seconds=0.05)
        gave_up_after = time.monotonic() - started
        assert deadline.abandoned == 1
        carry_on.set()
        await wait_until(lambda: deadline.abandoned == 0)

    events = [e["event"] for e in logs]
    assert events == ["attempt_overdue", "abandoned_attempt_ended"]
    assert logs[0]["deadline_seconds"] == 0.05
    assert returned == ["late"]  # it did finish, after the attempt had been recorded
    assert gave_up_after >= 0.05 + GRACE  # not before the grace was spent


async def test_cancelled_from_outside_the_work_is_cancelled_too() -> None:
    cleaned = asyncio.Event()

    running = asyncio.ensure_future(Deadline(GRACE).run(hang(cleaned), seconds=WAIT))
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert cleaned.is_set()


async def test_cancel_abandoned_cancels_what_still_runs_past_its_deadline() -> None:
    stop_ignoring = asyncio.Event()

    async def stubborn() -> None:
        while not stop_ignoring.is_set():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    deadline = Deadline(0.01)
    with pytest.raises(AttemptTimeout):
        await deadline.run(stubborn(), seconds=0.01)
    stop_ignoring.set()
    deadline.cancel_abandoned()
    await wait_until(lambda: deadline.abandoned == 0)
