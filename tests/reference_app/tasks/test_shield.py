"""The error shield: a task's exception is logged and swallowed, never raised into Starlette."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from structlog.testing import capture_logs

from reference_app.tasks.shield import shielded


async def _crash() -> None:
    raise RuntimeError("the task body broke")


def test_shielded_keeps_the_name_docstring_and_wrapped_function() -> None:
    async def import_rows(*, file_id: str) -> None:
        """Import the rows of one file."""

    wrapped = shielded(import_rows)

    assert wrapped.__name__ == "import_rows"
    assert wrapped.__doc__ == "Import the rows of one file."
    assert wrapped.__wrapped__ is import_rows  # type: ignore[attr-defined]


async def test_shielded_passes_arguments_through() -> None:
    seen: list[tuple[int, str]] = []

    async def record(number: int, *, label: str) -> None:
        seen.append((number, label))

    await shielded(record)(7, label="seven")

    assert seen == [(7, "seven")]


async def test_an_exception_is_swallowed_and_logged_with_its_traceback() -> None:
    with capture_logs() as logs:
        await shielded(_crash)()  # does not raise

    assert logs == [
        {
            "event": "task_crashed",
            "entry_point": "_crash",
            "exc_info": True,
            "log_level": "error",
        }
    ]


async def test_a_cancelled_error_is_re_raised() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await shielded(cancelled)()

    assert logs == []


async def test_a_shielded_task_can_be_cancelled() -> None:
    started = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(shielded(wait_forever)())
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    await asyncio.wait([task], timeout=5)

    assert task.cancelled()


def _app_with_two_tasks(first: Callable[[], Awaitable[None]], ran: list[str]) -> FastAPI:
    """An app whose endpoint queues ``first`` and then a task that records that it ran."""
    app = FastAPI()

    async def second() -> None:
        ran.append("second")

    @app.post("/jobs")
    async def jobs(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(first)
        background_tasks.add_task(second)
        return {"status": "accepted"}

    return app


async def test_without_the_shield_a_crash_skips_the_next_background_task() -> None:
    ran: list[str] = []
    app = _app_with_two_tasks(_crash, ran)
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # The response was sent, yet the exception escapes into the server...
        with pytest.raises(RuntimeError, match="the task body broke"):
            await client.post("/jobs")

    # ...and the task queued after it never ran.
    assert ran == []


async def test_with_the_shield_the_next_background_task_still_runs() -> None:
    ran: list[str] = []
    app = _app_with_two_tasks(shielded(_crash), ran)
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with capture_logs() as logs:
            response = await client.post("/jobs")

    assert response.status_code == 200
    assert ran == ["second"]
    assert [e["event"] for e in logs if e["event"] == "task_crashed"] == ["task_crashed"]


async def test_a_crash_names_the_task_from_the_entry_points_id_arguments() -> None:
    @shielded
    async def run(*, task_id: str, attempt: int) -> None:
        raise RuntimeError("database gone before any context was bound")

    with capture_logs() as logs:
        await run(task_id="t-1", attempt=2)

    [record] = logs
    assert record["event"] == "task_crashed"
    assert record["task_id"] == "t-1"
    assert "attempt" not in record  # only *_id arguments, which are safe to log
