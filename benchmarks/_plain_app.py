"""The plain FastAPI route the accept group measures first: what FastAPI alone costs.

``POST /process-data`` reads the reference app's body model, answers 202 and adds
a non-durable ``BackgroundTasks`` task: no auth, no middleware, no database, no
worker. ``uvicorn benchmarks._plain_app:app``. Not an app to copy: a crash loses
the work it accepted.
"""

from __future__ import annotations

import asyncio

from fastapi import BackgroundTasks, FastAPI

from reference_app.api.schemas import ProcessDataIn

__all__ = ["app"]

app = FastAPI(title="plain BackgroundTasks route")


async def pretend_io(io_ms: int) -> None:
    await asyncio.sleep(io_ms / 1000)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/process-data", status_code=202)
async def process_data(body: ProcessDataIn, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(pretend_io, body.io_ms)
    return {"status": "scheduled"}
