"""The task bodies behind the three endpoints, each offloading work the right way."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any

from reference_app.db.engine import session_scope
from reference_app.db.models import Contact
from reference_app.db.statements import insert_or_ignore
from reference_app.tasks.context import Handler, TaskContext
from reference_app.tasks.errors import PermanentError
from reference_app.tasks.schedules import Schedule
from reference_app.tasks.work import burn_cpu

__all__ = [
    "HANDLERS",
    "SCHEDULES",
    "example_schedule",
    "import_contacts",
    "parse_contacts_file",
    "process_data",
    "send_notification",
]

CONTACTS_PER_FILE = 25
NOTIFICATION_SEND_SECONDS = 0.02


def parse_contacts_file(file_id: str) -> list[dict[str, str]]:
    """Read and parse a contacts file. Blocking (file and CSV work): call it in a thread.

    The demo has no upload store: a file's rows are derived from its id, and an
    id that starts with ``missing`` stands for a file that does not exist.
    """
    if file_id.startswith("missing"):
        raise PermanentError(f"contacts file {file_id!r} does not exist")
    seed = hashlib.sha256(file_id.encode()).hexdigest()[:8]
    return [
        {"email": f"contact{n}.{seed}@example.com", "name": f"Contact {n}"}
        for n in range(CONTACTS_PER_FILE)
    ]


async def import_contacts(ctx: TaskContext) -> dict[str, Any]:
    """Parse the file off the event loop, then upsert its rows in the task's own session."""
    file_id = ctx.params["file_id"]
    rows = await asyncio.to_thread(parse_contacts_file, file_id)
    async with session_scope(ctx.sessions) as session:
        values = [{**row, "org_id": ctx.org_id, "source_task_id": ctx.task_id} for row in rows]
        # At-least-once: a re-run after a crash inserts nothing twice.
        await session.execute(insert_or_ignore(session, Contact), values)
    return {"file_id": file_id, "rows": len(rows)}


async def send_notification(ctx: TaskContext) -> dict[str, Any]:
    """Send the message (simulated: an awaited network round trip)."""
    await asyncio.sleep(NOTIFICATION_SEND_SECONDS)
    return {"to": ctx.params["email"], "characters": len(ctx.params["message"])}


async def process_data(ctx: TaskContext) -> dict[str, Any]:
    """Await ``io_ms`` of I/O, then run ``cpu_ms`` of CPU work in the process pool."""
    io_ms: int = ctx.params["io_ms"]
    cpu_ms: int = ctx.params["cpu_ms"]
    data: dict[str, Any] = ctx.params["data"]
    if io_ms:
        await asyncio.sleep(io_ms / 1000)
    seed = json.dumps(data, sort_keys=True).encode()
    digest = hashlib.sha256(seed).hexdigest()
    if cpu_ms:
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(ctx.cpu_pool, burn_cpu, cpu_ms, seed)
    return {"keys": len(data), "io_ms": io_ms, "cpu_ms": cpu_ms, "digest": digest}


HANDLERS: dict[str, Handler] = {
    "import_contacts": import_contacts,
    "send_notification": send_notification,
    "process_data": process_data,
}

# Periodic work, declared beside the handlers it runs (``Schedule``): none by default.
SCHEDULES: list[Schedule] = []


def example_schedule(every: timedelta) -> Schedule:
    """The demo schedule that APP_EXAMPLE_SCHEDULE_SECONDS turns on: a small ``process_data``
    report at every slot, owned by APP_SCHEDULE_ORG_ID."""
    params = {"data": {"report": "example"}, "io_ms": 0, "cpu_ms": 0}
    return Schedule("example-report", kind="process_data", every=every, params=params)
