"""benchmarks._accept: which runs the accept group makes, and about how long they take."""

from __future__ import annotations

from benchmarks._accept import accept_ids, estimate
from benchmarks._plan import BenchSettings

BASE = [
    "plain/accept-closed",
    "plain/accept-fixed",
    "floor/accept-closed",
    "floor/accept-fixed",
    "floor-state/accept-closed",
    "floor-state/accept-fixed",
]
SQLITE = [
    "sqlite/accept-closed",
    "sqlite/accept-fixed",
    "sqlite/scrape-none",
    "sqlite/scrape-1hz",
    "sqlite/finished-work",
    "sqlite/overload",
]


def test_the_default_group_is_the_two_yardsticks_then_the_reference_app_per_backend() -> None:
    assert accept_ids(BenchSettings()) == BASE + SQLITE
    with_postgres = accept_ids(BenchSettings(database_url="postgresql+asyncpg://x/y"))
    assert with_postgres == BASE + SQLITE + [s.replace("sqlite", "postgres") for s in SQLITE]


def test_bench_only_picks_runs_and_an_accept_run_brings_its_yardsticks() -> None:
    assert accept_ids(BenchSettings(only=("sqlite/overload",))) == ["sqlite/overload"]
    assert accept_ids(BenchSettings(only=("sqlite/",))) == BASE + SQLITE
    assert accept_ids(BenchSettings(only=("floor/",))) == BASE[2:4]
    assert accept_ids(BenchSettings(only=("floor-state/",))) == BASE[4:]
    assert accept_ids(BenchSettings(only=("lab/",))) == []
    # The scrape pair alone, on the reference app: no yardsticks, they are each other's.
    assert accept_ids(BenchSettings(only=("scrape",))) == SQLITE[2:4]


def test_bench_accept_off_skips_the_group_and_quick_shortens_it() -> None:
    assert accept_ids(BenchSettings.from_env({"BENCH_ACCEPT": "0"})) == []
    quick = BenchSettings.from_env({"BENCH_QUICK": "1"})
    assert accept_ids(quick) == BASE + SQLITE
    assert 0 < estimate(quick) < estimate(BenchSettings()) <= 240
