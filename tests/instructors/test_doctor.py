"""``make doctor``: every verdict, each failure made real (a bound port, a file in the way)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from instructors import doctor
from instructors.doctor import FAIL, OK, WARN
from reference_app.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 with a real listener on it, as an earlier `make run` leaves one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _project(tmp_path: Path, pyproject: str, constraints: str) -> tuple[Path, Path]:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    (tmp_path / "constraints.txt").write_text(constraints)
    return tmp_path / "pyproject.toml", tmp_path / "constraints.txt"


def test_the_running_python_passes() -> None:
    assert doctor.check_python().status == OK


def test_an_old_python_fails_and_says_which_version_to_install() -> None:
    check = doctor.check_python((3, 10, 12))
    assert check.status == FAIL
    assert "Python 3.10.12 is too old" in check.detail
    assert "3.11" in check.fix
    assert "make clean install" in check.fix


def test_this_venv_has_every_session_package_at_its_pinned_version() -> None:
    check = doctor.check_dependencies(ROOT / "pyproject.toml", ROOT / "constraints.txt")
    assert check.status == OK, check.render()
    assert "packages at the pinned versions" in check.detail


def test_a_package_at_another_version_than_its_pin_fails(tmp_path: Path) -> None:
    installed = metadata.version("fastapi")
    files = _project(
        tmp_path,
        '[project]\nname = "x"\ndependencies = ["fastapi>=0.1"]\n',
        "# pinned\nfastapi==0.0.1\n",
    )
    check = doctor.check_dependencies(*files)
    assert check.status == FAIL
    assert f"not at the pinned version: fastapi {installed} (pinned 0.0.1)" in check.detail
    assert "make install" in check.fix


def test_a_missing_package_of_an_included_group_fails(tmp_path: Path) -> None:
    files = _project(
        tmp_path,
        '[project]\nname = "x"\ndependencies = ["httpx>=0.28"]\n'
        "[dependency-groups]\n"
        'test = ["fbj_Not.A-real-package>=1"]\n'
        'dev = [{ include-group = "test" }]\n',
        f"httpx=={metadata.version('httpx')}\n",
    )
    check = doctor.check_dependencies(*files)
    assert check.status == FAIL
    assert check.detail.startswith("not installed: fbj-not-a-real-package")
    assert "httpx" not in check.detail


def test_a_free_port_passes() -> None:
    assert doctor.check_port(free_port()).status == OK


def test_a_port_with_a_listener_fails_and_says_how_to_find_it(busy_port: int) -> None:
    check = doctor.check_port(busy_port)
    assert check.status == FAIL
    assert f"127.0.0.1:{busy_port} is busy" in check.detail
    assert f"lsof -nP -iTCP:{busy_port} -sTCP:LISTEN" in check.fix


def test_the_database_folder_is_created_and_written(tmp_path: Path) -> None:
    check = doctor.check_database_folder(f"sqlite+aiosqlite:///{tmp_path}/var/app.db")
    assert check.status == OK
    assert (tmp_path / "var").is_dir()
    assert list((tmp_path / "var").iterdir()) == []  # the probe file is gone


def test_a_database_folder_that_cannot_be_made_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("a file where the folder should be")
    check = doctor.check_database_folder(f"sqlite+aiosqlite:///{blocker}/app.db")
    assert check.status == FAIL
    assert f"cannot write to {blocker}/" in check.detail
    assert "APP_DATABASE_URL=sqlite+aiosqlite:////tmp/app.db" in check.fix


def test_a_postgresql_database_url_has_no_folder_to_check() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert doctor.check_database_folder(url).status == OK


def test_unreachable_postgresql_is_a_warning_that_hides_the_password() -> None:
    url = f"postgresql+asyncpg://trainer:s3cret@127.0.0.1:{free_port()}/test"
    check = doctor.check_postgres(url)
    assert check.status == WARN
    assert "not reachable" in check.detail
    assert "s3cret" not in check.render()
    assert "trainer:***@" in check.detail
    assert "SQLite" in check.fix


@pytest.fixture
def room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A laptop in a fresh folder, with PostgreSQL switched off."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APP_DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")


@pytest.mark.usefixtures("room")
def test_a_ready_laptop_exits_0_with_postgresql_only_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert doctor.main(["--port", str(free_port())]) == 0
    out = capsys.readouterr().out
    assert "[warn] postgresql" in out
    assert "READY (1 warning(s), optional parts only)." in out


@pytest.mark.usefixtures("room")
def test_one_busy_port_makes_it_exit_1_and_names_the_problem(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor.main(["--port", str(free_port()), "--port", str(busy_port)]) == 1
    out = capsys.readouterr().out
    assert f"NOT READY: 1 problem(s): port {busy_port}." in out


def test_python_dash_m_runs_it(busy_port: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "instructors.doctor", "--port", str(busy_port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "APP_DATABASE_URL": f"sqlite:///{tmp_path}/app.db"},
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"[FAIL] port {busy_port}" in result.stdout
