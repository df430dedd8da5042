"""``newest_by_key``: the org's task with the greatest key of a range, as a schedule reads
its last slot, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reference_app.db.engine import SessionFactory
from reference_app.store import TaskStore
from reference_app.tasks.schedules import Schedule
from tests.reference_app._task_kit import schedule

REPORT = Schedule("report", kind="process_data", every=timedelta(hours=1))
SLOT = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


async def test_the_newest_key_of_the_range_wins_and_nothing_outside_it_counts(
    sessions: SessionFactory,
) -> None:
    store = TaskStore(sessions, max_attempts=3, group_commit=False)
    assert await store.newest_by_key("org-a", *REPORT.key_range()) is None

    slots = [SLOT + timedelta(hours=h) for h in (0, 10, 2)]
    ids = [await schedule(sessions, idempotency_key=REPORT.key(slot)) for slot in slots]
    # Neighbours of the range: unkeyed tasks, other schedules, client keys, another org.
    for key in (None, "z" * 200, "schedule:report2:9999", "schedule:repor:2030", "schedule:"):
        await schedule(sessions, idempotency_key=key)
    later = REPORT.key(SLOT + timedelta(hours=50))
    await schedule(sessions, org_id="org-b", idempotency_key=later)

    newest = await store.newest_by_key("org-a", *REPORT.key_range())
    assert newest is not None
    assert (newest.task_id, newest.status) == (ids[1], "scheduled")
    assert REPORT.slot_of(newest.idempotency_key) == SLOT + timedelta(hours=10)
    other_org = await store.newest_by_key("org-b", *REPORT.key_range())
    assert other_org is not None
    assert other_org.idempotency_key == later
    await store.close()
