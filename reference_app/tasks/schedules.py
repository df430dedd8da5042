"""A periodic schedule: its slots (an interval or a cron expression, in UTC), the key that
makes one task per slot, and which slots a catch-up policy runs.

A slot is a point in time ("report at 2026-12-04T03:00:00Z"). Its task carries the
idempotency key ``schedule:<name>:<slot>``, which the database keeps unique per org, so
however many processes schedule, and whenever one restarts, a slot makes one task.

Which due slots run (``catch_up``), given the last slot done and the time now:

- ``"one"`` (the default): the newest slot; older missed ones are skipped, so after
  downtime the schedule catches up by at most one slot;
- ``"all"``: every slot since the last one done, oldest first;
- ``"none"``: the newest slot only if it is at most ``MISFIRE_GRACE`` late; after
  downtime, the next slot.

A schedule that has no task yet does not backfill: whatever its policy, its first task is
the first slot seen at most ``MISFIRE_GRACE`` late (deploying a 03:00 report at 10:00 runs
it first the next day at 03:00).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from croniter import croniter

__all__ = ["KEY_PREFIX", "MISFIRE_GRACE", "CatchUp", "Schedule", "slot_text"]

CatchUp = Literal["one", "all", "none"]

# Idempotency keys that start with this are the scheduler's: the API refuses them.
KEY_PREFIX = "schedule:"
# How late a slot may be seen and still count as on time (for "none", and a first slot).
MISFIRE_GRACE = timedelta(minutes=1)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The slots a key can name: what the database's key range for a schedule spans.
_FIRST_SLOT = datetime(2000, 1, 1, tzinfo=UTC)
_LAST_SLOT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# Fixed width, whole seconds, always UTC: keys of one schedule sort in time order.
_SLOT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def slot_text(slot: datetime) -> str:
    """A slot as its key writes it: ``2026-12-04T03:00:00Z``."""
    return slot.astimezone(UTC).strftime(_SLOT_FORMAT)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Run a task of ``kind`` with ``params`` at every slot: ``every`` (whole seconds,
    counted from 1970-01-01T00:00Z, so ``timedelta(hours=1)`` is on the hour) or ``cron``
    (five fields, UTC; croniter also takes a sixth, for seconds). ``params`` are what the
    handler reads, as the kind's endpoint would store them."""

    name: str
    kind: str
    every: timedelta | None = None
    cron: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "one"
    # Who owns the tasks: None is the app's APP_SCHEDULE_ORG_ID. Callers of that org see
    # the schedule in GET /schedules and its tasks under GET /tasks/{id}.
    org_id: str | None = None
    user_id: str = "scheduler"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"schedule name {self.name!r}: 1-100 of [a-z0-9._-], not - first")
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"schedule {self.name!r}: give every= or cron=, exactly one")
        if self.every is not None and (self.every < _SECOND or self.every % _SECOND):
            raise ValueError(f"schedule {self.name!r}: every= is whole seconds, at least 1")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"schedule {self.name!r}: {self.cron!r} is not a cron expression")
        if self.catch_up not in get_args(CatchUp):
            raise ValueError(f"schedule {self.name!r}: catch_up is one of {get_args(CatchUp)}")

    # Slots ------------------------------------------------------------------

    def latest_slot(self, at: datetime) -> datetime:
        """The last slot at or before ``at``."""
        if self.every is not None:
            return _EPOCH + ((at - _EPOCH) // self.every) * self.every
        assert self.cron is not None
        # croniter reads the expression in its start time's zone: always give it UTC.
        at = at.astimezone(UTC)
        before: datetime = croniter(self.cron, at).get_prev(datetime)  # strictly before
        after = self.next_slot(before)
        return (after if after <= at else before).astimezone(UTC)

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after ``after``."""
        if self.every is not None:
            return self.latest_slot(after) + self.every
        assert self.cron is not None
        slot: datetime = croniter(self.cron, after.astimezone(UTC)).get_next(datetime)
        return slot.astimezone(UTC)

    def due_slots(self, last: datetime | None, now: datetime, *, limit: int) -> list[datetime]:
        """The slots to run at ``now``, oldest first, at most ``limit``, given the last slot
        done (None: the schedule has no task yet)."""
        newest = self.latest_slot(now)
        if last is not None and newest <= last:
            return []
        on_time = now - newest <= MISFIRE_GRACE
        if last is None or self.catch_up == "none":
            return [newest] if on_time else []
        if self.catch_up == "one":
            return [newest]
        slots: list[datetime] = []
        slot = self.next_slot(last)
        while slot <= now and len(slots) < limit:
            slots.append(slot)
            slot = self.next_slot(slot)
        return slots

    # Keys -------------------------------------------------------------------

    @property
    def key_prefix(self) -> str:
        """What every key of this schedule's tasks starts with."""
        return f"{KEY_PREFIX}{self.name}:"

    def key(self, slot: datetime) -> str:
        """The idempotency key of the slot's task."""
        return self.key_prefix + slot_text(slot)

    def key_range(self) -> tuple[str, str]:
        """The lowest and the highest key a slot of this schedule can have (years 2000 to
        9999): every key between them is this schedule's, and they sort in time order."""
        return self.key(_FIRST_SLOT), self.key(_LAST_SLOT)

    def slot_of(self, key: str) -> datetime:
        """The slot a key of this schedule names."""
        if not key.startswith(self.key_prefix):
            raise ValueError(f"{key!r} is not a key of schedule {self.name!r}")
        text = key.removeprefix(self.key_prefix)
        return datetime.strptime(text, _SLOT_FORMAT).replace(tzinfo=UTC)
