"""A schedule's slots (interval and cron, in UTC), its keys, and which due slots each
catch-up policy runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reference_app.tasks.schedules import MISFIRE_GRACE, Schedule, slot_text


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


HOURLY = Schedule("hourly", kind="process_data", every=timedelta(hours=1))
NIGHTLY = Schedule("nightly", kind="process_data", cron="0 3 * * *")


# Declaring one -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one"),
        ({"every": timedelta(hours=1), "cron": "0 3 * * *"}, "exactly one"),
        ({"every": timedelta(milliseconds=500)}, "whole seconds"),
        ({"every": timedelta(seconds=1.5)}, "whole seconds"),
        ({"every": timedelta(0)}, "whole seconds"),
        ({"cron": "0 3 * *"}, "not a cron expression"),
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"every": timedelta(hours=1), "catch_up": "some"}, "catch_up"),
    ],
)
def test_a_schedule_refuses_what_it_could_not_run(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule("report", kind="process_data", **options)


@pytest.mark.parametrize("name", ["", "Report", "-report", "a b", "a:b", "x" * 101])
def test_a_name_goes_into_keys_so_it_is_a_plain_slug(name: str) -> None:
    with pytest.raises(ValueError, match="schedule name"):
        Schedule(name, kind="process_data", every=timedelta(hours=1))


# Slots ---------------------------------------------------------------------------------


def test_interval_slots_count_from_the_epoch_so_an_hour_is_on_the_hour() -> None:
    assert HOURLY.latest_slot(at("2026-12-04T03:59:59.999+00:00")) == at("2026-12-04T03:00Z")
    assert HOURLY.latest_slot(at("2026-12-04T03:00Z")) == at("2026-12-04T03:00Z")
    assert HOURLY.next_slot(at("2026-12-04T03:00Z")) == at("2026-12-04T04:00Z")
    assert HOURLY.next_slot(at("2026-12-04T02:59:59+00:00")) == at("2026-12-04T03:00Z")


def test_an_odd_interval_has_the_same_slots_in_every_process() -> None:
    # 7 s from 1970: no process's start time moves them.
    every7 = Schedule("seven", kind="process_data", every=timedelta(seconds=7))
    slot = every7.latest_slot(at("2026-12-04T03:00Z"))
    assert (slot - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % 7 == 0
    assert every7.next_slot(slot) - slot == timedelta(seconds=7)
    assert every7.latest_slot(slot + timedelta(seconds=6.9)) == slot


def test_cron_slots_come_from_croniter_in_utc() -> None:
    assert NIGHTLY.latest_slot(at("2026-12-04T10:00Z")) == at("2026-12-04T03:00Z")
    assert NIGHTLY.latest_slot(at("2026-12-04T03:00Z")) == at("2026-12-04T03:00Z")
    assert NIGHTLY.latest_slot(at("2026-12-04T02:59:59+00:00")) == at("2026-12-03T03:00Z")
    assert NIGHTLY.next_slot(at("2026-12-04T03:00Z")) == at("2026-12-05T03:00Z")
    assert NIGHTLY.next_slot(at("2026-12-04T02:00Z")).tzinfo == UTC


def test_cron_is_read_in_utc_whatever_offset_now_is_given_in() -> None:
    # 04:00 at UTC+1 is 03:00 UTC: the slot itself, not an hour past it.
    plus_one = datetime.fromisoformat("2026-12-04T04:00+01:00")
    assert NIGHTLY.latest_slot(plus_one) == at("2026-12-04T03:00Z")
    assert NIGHTLY.next_slot(plus_one) == at("2026-12-05T03:00Z")


def test_a_weekday_cron_skips_the_weekend() -> None:
    weekdays = Schedule("weekdays", kind="process_data", cron="30 6 * * mon-fri")
    friday = at("2026-12-04T06:30Z")  # a Friday
    assert weekdays.next_slot(friday) == at("2026-12-07T06:30Z")  # Monday


# Keys ----------------------------------------------------------------------------------


def test_a_slot_key_is_deterministic_and_reads_back_as_its_slot() -> None:
    slot = at("2026-12-04T03:00Z")
    assert NIGHTLY.key(slot) == "schedule:nightly:2026-12-04T03:00:00Z"
    assert NIGHTLY.key(at("2026-12-04T04:00+01:00")) == NIGHTLY.key(slot)
    assert NIGHTLY.slot_of(NIGHTLY.key(slot)) == slot
    with pytest.raises(ValueError, match="not a key of schedule"):
        NIGHTLY.slot_of(HOURLY.key(slot))


def test_keys_sort_in_time_order_inside_the_key_range() -> None:
    slots = [at("2026-12-04T03:00Z") + timedelta(hours=h) for h in (0, 9, 10, 100, 10_000)]
    keys = [HOURLY.key(s) for s in slots]
    lowest, highest = HOURLY.key_range()
    assert sorted(keys) == keys
    assert all(lowest <= key <= highest for key in keys)
    assert not lowest <= Schedule("hourly2", kind="k", every=timedelta(1)).key(slots[0]) <= highest
    assert slot_text(slots[0]) == "2026-12-04T03:00:00Z"


# Catch-up ------------------------------------------------------------------------------

LAST = at("2026-12-04T03:00Z")
ON_TIME = at("2026-12-04T04:00:02+00:00")  # 04:00 seen 2 s late
AFTER_DOWNTIME = at("2026-12-04T07:30Z")  # 04:00 ... 07:00 missed


def hourly(catch_up: str) -> Schedule:
    return Schedule("hourly", kind="process_data", every=timedelta(hours=1), catch_up=catch_up)  # type: ignore[arg-type]


@pytest.mark.parametrize("catch_up", ["one", "all", "none"])
def test_every_policy_runs_the_slot_that_is_due_on_time_and_nothing_twice(catch_up: str) -> None:
    schedule = hourly(catch_up)
    assert schedule.due_slots(LAST, ON_TIME, limit=100) == [at("2026-12-04T04:00Z")]
    assert schedule.due_slots(at("2026-12-04T04:00Z"), ON_TIME, limit=100) == []
    assert schedule.due_slots(LAST, at("2026-12-04T03:59:59+00:00"), limit=100) == []


def test_after_downtime_one_runs_the_newest_missed_slot_only() -> None:
    assert hourly("one").due_slots(LAST, AFTER_DOWNTIME, limit=100) == [at("2026-12-04T07:00Z")]


def test_after_downtime_all_runs_every_missed_slot_oldest_first_up_to_the_limit() -> None:
    missed = [at(f"2026-12-04T0{h}:00Z") for h in (4, 5, 6, 7)]
    assert hourly("all").due_slots(LAST, AFTER_DOWNTIME, limit=100) == missed
    assert hourly("all").due_slots(LAST, AFTER_DOWNTIME, limit=3) == missed[:3]


def test_after_downtime_none_runs_nothing_until_the_next_slot() -> None:
    schedule = hourly("none")
    assert schedule.due_slots(LAST, AFTER_DOWNTIME, limit=100) == []
    eight = at("2026-12-04T08:00Z")
    assert schedule.due_slots(LAST, eight + MISFIRE_GRACE, limit=100) == [eight]
    assert schedule.due_slots(LAST, eight + MISFIRE_GRACE + timedelta(seconds=1), limit=100) == []


@pytest.mark.parametrize("catch_up", ["one", "all", "none"])
def test_a_schedule_with_no_task_yet_does_not_backfill(catch_up: str) -> None:
    schedule = hourly(catch_up)
    assert schedule.due_slots(None, AFTER_DOWNTIME, limit=100) == []  # 07:00, 30 min late
    assert schedule.due_slots(None, ON_TIME, limit=100) == [at("2026-12-04T04:00Z")]
