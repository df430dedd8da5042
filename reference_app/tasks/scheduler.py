"""The scheduler: an in-app loop, beside the sweeper, that makes each due slot of every
schedule into one task.

Every process runs one. A slot's task carries the slot's idempotency key, so whichever
process accepts it first commits it and the others find it; and the last slot done is
read from the database when the loop starts, so a restart neither repeats nor skips a
slot. The task is ``scheduled`` with its slot as due time: the sweeper runs it, woken by
``on_enqueued``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from reference_app.core.logging import get_logger
from reference_app.store import BacklogFull, IdempotencyMismatch, Submission, TaskStore
from reference_app.store.keyed import KeyedTask
from reference_app.tasks.schedules import Schedule, slot_text

__all__ = ["ScheduleState", "Scheduler"]

log = get_logger(__name__)

# Slots one schedule makes tasks for in one pass ("all" after a long downtime); the next
# pass follows at once.
MAX_SLOTS_PER_PASS = 100


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """Where a schedule stands: its next due slot, and the task of its newest slot."""

    schedule: Schedule
    next_due_at: datetime
    last: KeyedTask | None
    last_slot: datetime | None


class Scheduler:
    """At start, after each slot comes due, and at least every ``interval`` seconds: make
    the tasks of the due slots (``Schedule.due_slots``) of every schedule."""

    def __init__(
        self,
        store: TaskStore,
        schedules: Sequence[Schedule],
        *,
        default_org: str,
        interval: float,
        kinds: Collection[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        names = [s.name for s in schedules]
        if len(set(names)) != len(names):
            raise ValueError(f"schedule names must be unique: {sorted(names)}")
        unknown = sorted({s.kind for s in schedules} - set(kinds)) if kinds is not None else []
        if unknown:
            raise ValueError(f"schedules name kinds that have no handler: {unknown}")
        self.store = store
        self.schedules = list(schedules)
        self.default_org = default_org
        self.interval = interval
        self.clock = clock or store.clock
        self.on_enqueued = on_enqueued
        # The newest slot each schedule is known to have a task for (None: none yet). Read
        # from the database on the first pass, then kept up as slots are done.
        self._last: dict[str, datetime | None] = {}
        self._behind = False  # a pass stopped at MAX_SLOTS_PER_PASS
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def org_of(self, schedule: Schedule) -> str:
        """The org that owns the schedule's tasks."""
        return schedule.org_id or self.default_org

    # The loop ---------------------------------------------------------------

    def start(self) -> None:
        if not self.schedules:
            return
        log.info("scheduler_started", schedules=[s.name for s in self.schedules])
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let the current pass finish, then end the loop; cancel it only if it hangs."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
        except TimeoutError:
            self._task.cancel()
            await asyncio.wait([self._task])
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping:
            wait = self.interval
            try:
                await self.run_due()
                wait = 0.0 if self._behind else min(wait, self._until_next_slot())
            except Exception:
                log.exception("schedule_pass_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _until_next_slot(self) -> float:
        now = self.clock()
        return min((s.next_slot(now) - now).total_seconds() for s in self.schedules)

    # One pass ---------------------------------------------------------------

    async def run_due(self) -> int:
        """Make the tasks of every slot due now; how many were new (others' processes may
        have made the rest)."""
        now = self.clock()
        self._behind = False
        made = 0
        for schedule in self.schedules:
            made += await self._run_schedule(schedule, now)
        if made and self.on_enqueued is not None:
            self.on_enqueued()
        return made

    async def _run_schedule(self, schedule: Schedule, now: datetime) -> int:
        if schedule.name not in self._last:
            self._last[schedule.name] = await self._last_slot(schedule)
        slots = schedule.due_slots(self._last[schedule.name], now, limit=MAX_SLOTS_PER_PASS)
        self._behind |= len(slots) == MAX_SLOTS_PER_PASS
        made = 0
        for slot in slots:
            fields = {"schedule": schedule.name, "slot": slot_text(slot)}
            try:
                accepted = await self.store.accept(self._submission(schedule, slot))
            except BacklogFull:
                log.warning("schedule_slot_deferred", **fields, reason="the due backlog is full")
                break  # the next pass tries this slot again
            except IdempotencyMismatch:
                # Made already, with other params: the schedule's code changed since.
                log.warning("schedule_slot_made_with_other_params", **fields)
            else:
                if accepted.created:
                    made += 1
                    log.info("schedule_slot_enqueued", **fields, task_id=str(accepted.task_id))
            self._last[schedule.name] = slot
        return made

    def _submission(self, schedule: Schedule, slot: datetime) -> Submission:
        return Submission(
            org_id=self.org_of(schedule),
            user_id=schedule.user_id,
            kind=schedule.kind,
            params=dict(schedule.params),
            idempotency_key=schedule.key(slot),
            not_before=slot,
            run_at=slot,
        )

    async def _last_slot(self, schedule: Schedule) -> datetime | None:
        last = await self.store.newest_by_key(self.org_of(schedule), *schedule.key_range())
        return None if last is None else schedule.slot_of(last.idempotency_key)

    # Reading ----------------------------------------------------------------

    async def states(self, org_id: str) -> list[ScheduleState]:
        """The org's schedules, each with its next due slot and its newest slot's task, as
        the database has them (whichever process made them)."""
        now = self.clock()
        states = []
        for schedule in self.schedules:
            if self.org_of(schedule) != org_id:
                continue
            last = await self.store.newest_by_key(org_id, *schedule.key_range())
            last_slot = None if last is None else schedule.slot_of(last.idempotency_key)
            due = schedule.due_slots(last_slot, now, limit=1)
            next_due = due[0] if due else schedule.next_slot(now)
            states.append(ScheduleState(schedule, next_due, last, last_slot))
        return states
