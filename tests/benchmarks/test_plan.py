"""benchmarks._plan: BENCH_* settings, the scenario matrix, and each scenario's Locust command."""

from pathlib import Path

import pytest

from benchmarks._plan import (
    BenchSettings,
    file_prefix,
    ladder_users,
    locust_command,
    matrix,
)


def ids(settings: BenchSettings) -> list[str]:
    return [s.id for s in matrix(settings)]


def test_the_default_run_measures_the_reference_app_on_sqlite_and_the_lab() -> None:
    settings = BenchSettings.from_env({})
    assert settings == BenchSettings()
    found = ids(settings)
    assert found[0] == "sqlite/health-closed"
    assert {"sqlite/background-open", "sqlite/inline-open", "sqlite/ladder"} <= set(found)
    assert {"lab/blocking-open", "lab/cpu-offloaded-open", "lab/threadpool-saturation"} <= set(
        found
    )
    assert not any(i.startswith("postgres/") for i in found)
    # The default run stays within about five minutes of load on 2 cores.
    assert sum(s.seconds for s in matrix(settings)) <= 240


def test_a_database_url_adds_the_reference_app_on_postgres() -> None:
    settings = BenchSettings.from_env({"BENCH_DATABASE_URL": "postgresql+asyncpg://u@h/db"})
    found = ids(settings)
    assert found.index("sqlite/health-closed") < found.index("postgres/health-closed")
    assert found.index("postgres/ladder") < found.index("lab/accept-capacity")


def test_quick_is_a_short_subset_and_every_knob_has_a_variable() -> None:
    quick = BenchSettings.from_env({"BENCH_QUICK": "1"})
    assert quick.quick
    assert quick.seconds < BenchSettings().seconds
    assert 5 <= len(matrix(quick)) < len(matrix(BenchSettings()))
    assert sum(s.seconds for s in matrix(quick)) <= 40
    custom = BenchSettings.from_env(
        {
            "BENCH_SECONDS": "30",
            "BENCH_USERS": "4",
            "BENCH_RATE": "80",
            "BENCH_P95_BUDGET_MS": "150",
            "BENCH_IO_MS": "100",
            "BENCH_LADDER": "10,20,40",
            "BENCH_PROCESSES": "2",
            "BENCH_RESULTS": "/tmp/elsewhere",
            "BENCH_ONLY": "background-open, lab/blocking",
        }
    )
    assert (custom.seconds, custom.users, custom.rate, custom.budget_ms) == (30, 4, 80, 150)
    assert (custom.io_ms, custom.ladder, custom.processes) == (100, (10, 20, 40), 2)
    assert custom.results == Path("/tmp/elsewhere")
    assert ids(custom) == ["sqlite/background-open", "lab/blocking-open", "lab/blocking-closed"]


def test_nonsense_settings_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="BENCH_USERS"):
        BenchSettings.from_env({"BENCH_USERS": "0"})
    with pytest.raises(ValueError, match="BENCH_LADDER"):
        BenchSettings.from_env({"BENCH_LADDER": "20,30"})


def test_a_ladder_rises_in_multiples_of_its_first_rate() -> None:
    assert ladder_users((25, 50, 100, 300)) == [1, 2, 4, 12]
    with pytest.raises(ValueError, match="BENCH_LADDER"):
        ladder_users((50, 25))


def scenario(key: str, settings: BenchSettings = BenchSettings()):  # noqa: B008
    return next(s for s in matrix(settings) if s.id == key)


def command(key: str, settings: BenchSettings = BenchSettings()) -> list[str]:  # noqa: B008
    return locust_command(
        scenario(key, settings),
        settings,
        python="python",
        host="http://127.0.0.1:9",
        prefix=Path("/r/x"),
        webhook_url="http://127.0.0.1:7/hook",
    )


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_a_closed_loop_command_paces_its_users_to_the_open_model_rate() -> None:
    cmd = command("sqlite/background-closed")
    assert cmd[:5] == ["python", "-m", "locust", "-f", "benchmarks/inline_vs_background.py"]
    assert cmd[-1] == "BackgroundUser"
    assert option(cmd, "-u") == "10"
    assert option(cmd, "--user-rate") == "5"  # 10 users x 5/s = the open model's 50/s
    assert option(cmd, "-t") == "12s"
    assert option(cmd, "--io-ms") == "300"
    assert option(cmd, "--requests-csv") == "/r/x_requests.csv"
    assert option(cmd, "--run-json") == "/r/x_locust.json"
    assert option(cmd, "--exit-code-on-error") == "0"  # the gate decides the exit code
    assert "--processes" not in cmd
    assert "--webhook-url" not in cmd
    assert option(command("sqlite/webhook-open"), "--webhook-url") == "http://127.0.0.1:7/hook"


def test_an_open_model_command_arrives_for_the_run_and_splits_the_rate_across_processes() -> None:
    cmd = command("sqlite/background-open")
    assert (option(cmd, "-u"), option(cmd, "--arrival-rate")) == ("1", "50")
    assert option(cmd, "--arrivals-for") == "12"
    two = command("sqlite/background-open", BenchSettings(processes=2))
    assert (option(two, "-u"), option(two, "--arrival-rate")) == ("2", "25")
    assert option(two, "--processes") == "2"


def test_a_ladder_command_adds_the_shape_file_explicitly() -> None:
    cmd = command("sqlite/ladder")
    assert option(cmd, "-f") == "benchmarks/inline_vs_background.py,benchmarks_shapes/steps.py"
    assert option(cmd, "--steps") == "1,2,4,8,12"
    assert option(cmd, "--arrival-rate") == "50"
    assert option(cmd, "--arrivals-for") == "20"  # 5 steps of 4 s; the shape then holds the last
    assert "-u" not in cmd
    assert all(
        "benchmarks_shapes" not in option(command(s.id), "-f")
        for s in matrix(BenchSettings())
        if s.model != "ladder"
    )


def test_each_scenario_writes_files_of_its_own() -> None:
    prefixes = [s.file_prefix for s in matrix(BenchSettings(database_url="postgresql://x/y"))]
    assert len(prefixes) == len(set(prefixes))
    assert file_prefix("sqlite/background-open") == "sqlite-background-open"
