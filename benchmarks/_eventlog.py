"""Read a scenario's tasks from the reference app's database after the run (read-only)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from benchmarks._work import TaskTimes
from reference_app.db.models import Task, TaskEvent

__all__ = ["EventLog"]

_FINAL = ("succeeded", "failed")


def _utc(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


class EventLog:
    """Queries on their own event loop and connections, so they never share the app's."""

    def __init__(self, url: str) -> None:
        self._runner = asyncio.Runner()
        self._engine: AsyncEngine | None = None
        self._url = url

    def close(self) -> None:
        if self._engine is not None:
            self._runner.run(self._engine.dispose())
        self._runner.close()

    def _run(self, query: Any) -> list[Any]:
        async def execute() -> list[Any]:
            if self._engine is None:
                self._engine = create_async_engine(self._url, poolclass=NullPool)
            async with self._engine.connect() as connection:
                return list((await connection.execute(query)).all())

        return self._runner.run(execute())

    def unfinished(self, since: float) -> int:
        """Tasks (webhook deliveries included) accepted since ``since`` and not done yet."""
        query = select(func.count()).where(
            Task.created_at >= _utc(since), Task.status.not_in(_FINAL)
        )
        return int(self._run(query)[0][0])

    def task_times(self, since: float, until: float) -> list[TaskTimes]:
        """The API tasks accepted in [since, until), with their deliveries' outcome."""
        ids = select(Task.id).where(
            Task.parent_id.is_(None), Task.created_at >= _utc(since), Task.created_at < _utc(until)
        )
        statuses = dict(self._run(select(Task.id, Task.status).where(Task.id.in_(ids))))
        rows = self._run(
            select(TaskEvent.task_id, TaskEvent.stream_id, TaskEvent.type, TaskEvent.at)
            .where(TaskEvent.task_id.in_(ids))
            .order_by(TaskEvent.id)
        )
        times: dict[Any, dict[str, float]] = {task_id: {} for task_id in statuses}
        for task_id, stream_id, kind, at in rows:
            seen = times[task_id]
            if stream_id != task_id:  # the task's webhook delivery, a stream of its own
                if kind == "task_succeeded":
                    seen.setdefault("delivered", at.timestamp())
            elif kind in ("task_succeeded", "task_failed"):
                seen.setdefault("finished", at.timestamp())
            else:
                seen.setdefault(kind, at.timestamp())
        return sorted(
            (
                TaskTimes(
                    scheduled_s=seen["task_scheduled"],
                    started_s=seen.get("task_started"),
                    finished_s=seen.get("finished"),
                    status=statuses[task_id],
                    delivered_s=seen.get("delivered"),
                )
                for task_id, seen in times.items()
                if "task_scheduled" in seen
            ),
            key=lambda t: t.scheduled_s,
        )
