"""Is this laptop ready for a training session? ``make doctor`` (``python -m instructors.doctor``).

Checks, offline and in a few seconds: the Python version, the packages the
sessions use at the versions pinned in ``constraints.txt``, ports 8000 (the
apps) and 8089 (Locust's web UI) free on 127.0.0.1, the embedded SQLite
database's folder writable, and, as a warning only, PostgreSQL reachable.
Each problem comes with what to do about it. Exit code 0 when nothing failed.

Standard library only (asyncpg if it is installed), so it still runs, and
says what is wrong, when the installation is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Check",
    "check_database_folder",
    "check_dependencies",
    "check_port",
    "check_postgres",
    "check_python",
    "main",
    "run_checks",
]

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_PYTHON = (3, 11)
SESSION_PORTS = (8000, 8089)  # the apps (`make run`, the lessons), Locust's web UI
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/app.db"  # reference_app.core.config
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, how it went, and what to do if it did not."""

    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"[{self.status:^4}] {self.name}: {self.detail}"
        return f"{line}\n       -> {self.fix}" if self.fix else line


def check_python(version: Sequence[int] = sys.version_info[:3]) -> Check:
    shown = ".".join(str(part) for part in version[:3])
    if tuple(version[:2]) >= REQUIRED_PYTHON:
        return Check("python", OK, f"Python {shown}")
    need = ".".join(map(str, REQUIRED_PYTHON))
    return Check(
        "python",
        FAIL,
        f"Python {shown} is too old: the project needs {need} or newer",
        f"install Python {need}+ (python.org, pyenv or your package manager), then "
        f"`make clean install PYTHON=python{need}`",
    )


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return _normalise(match.group(1))


def _session_requirements(pyproject: Path) -> list[str]:
    """Names of the project's dependencies and of every package in its ``dev`` group."""
    import tomllib  # 3.11+: imported here so that an older Python still gets its verdict

    data: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    groups: dict[str, list[Any]] = data.get("dependency-groups", {})

    def expand(group: str) -> Iterable[str]:
        for entry in groups.get(group, []):
            if isinstance(entry, dict):
                yield from expand(entry["include-group"])
            else:
                yield entry

    names = [_requirement_name(r) for r in data["project"].get("dependencies", [])]
    names += [_requirement_name(r) for r in expand("dev")]
    return list(dict.fromkeys(names))


def _pins(constraints: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[_normalise(name)] = version.strip()
    return pins


def _some(items: list[str], shown: int = 6) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def check_dependencies(pyproject: Path, constraints: Path) -> Check:
    """Every package the sessions use is installed at the version ``constraints.txt`` pins."""
    wanted = _session_requirements(pyproject)
    pins = _pins(constraints)
    missing: list[str] = []
    wrong: list[str] = []
    for name in wanted:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        pinned = pins.get(name)
        if pinned is not None and installed != pinned:
            wrong.append(f"{name} {installed} (pinned {pinned})")
    problems = []
    if missing:
        problems.append(f"not installed: {_some(missing)}")
    if wrong:
        problems.append(f"not at the pinned version: {_some(wrong)}")
    if not problems:
        return Check("dependencies", OK, f"{len(wanted)} packages at the pinned versions")
    in_venv = sys.prefix != sys.base_prefix
    where = "" if in_venv else f" (this is {sys.executable}, not the project's .venv)"
    return Check(
        "dependencies",
        FAIL,
        "; ".join(problems) + where,
        "run `make install` from the repository root (it installs the pins from "
        "constraints.txt into .venv; needs the network once)",
    )


def check_port(port: int, host: str = "127.0.0.1") -> Check:
    """Free when a listening socket could bind it now, as uvicorn and Locust will."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name == "posix":  # as uvicorn does; a port in TIME_WAIT is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            return Check(
                f"port {port}",
                FAIL,
                f"{host}:{port} is busy ({exc.strerror or exc})",
                f"stop what listens there (an earlier `make run`, uvicorn or locust?): "
                f"find it with `lsof -nP -iTCP:{port} -sTCP:LISTEN` (or "
                f"`ss -ltnp 'sport = :{port}'`), then stop it by its PID",
            )
    return Check(f"port {port}", OK, f"{host}:{port} is free")


def _sqlite_folder(database_url: str) -> Path | None:
    """The folder of a SQLite file URL; None for an in-memory or non-SQLite database."""
    if not database_url.startswith("sqlite"):
        return None
    _, sep, path = database_url.partition(":///")
    if not sep or not path or path.startswith(":memory:"):
        return None
    return Path(path.split("?")[0]).parent


def check_database_folder(database_url: str) -> Check:
    """The embedded database's folder exists (or can be made) and takes a new file."""
    folder = _sqlite_folder(database_url)
    if folder is None:
        return Check("database folder", OK, "not an SQLite file database: nothing to check")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "database folder",
            FAIL,
            f"cannot write to {folder}/ ({type(exc).__name__}: {exc.strerror or exc})",
            "run from the repository root and make the folder writable "
            f"(`chmod u+w {folder}`), or point the app elsewhere: "
            "`export APP_DATABASE_URL=sqlite+aiosqlite:////tmp/app.db`",
        )
    return Check("database folder", OK, f"{folder.resolve()}/ is writable")


async def _connect(dsn: str, seconds: float) -> None:
    import asyncpg  # optional: only this check needs it

    async with asyncio.timeout(seconds):
        connection = await asyncpg.connect(dsn)
        await connection.close()


def _asyncpg_dsn(url: str) -> str:
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


def check_postgres(url: str, timeout: float = 2.0) -> Check:
    """A warning, never a failure: every session runs on SQLite; PostgreSQL is optional."""
    shown = re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)  # never print a password
    try:
        asyncio.run(_connect(_asyncpg_dsn(url), timeout))
    except ImportError:
        return Check("postgresql", WARN, "asyncpg is not installed", "run `make install`")
    except Exception as exc:
        return Check(
            "postgresql",
            WARN,
            f"{shown} is not reachable ({type(exc).__name__}: {exc}); optional",
            "every session runs on SQLite. For the PostgreSQL parts, start a server "
            "(e.g. `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
            "postgres`) or set TEST_POSTGRES_URL to one you have",
        )
    return Check("postgresql", OK, f"{shown} answers")


def run_checks(ports: Sequence[int] = SESSION_PORTS) -> list[Check]:
    python = check_python()
    checks = [python]
    if python.status == OK:
        checks.append(check_dependencies(ROOT / "pyproject.toml", ROOT / "constraints.txt"))
    checks += [check_port(port) for port in ports]
    checks.append(check_database_folder(os.environ.get("APP_DATABASE_URL", DEFAULT_DATABASE_URL)))
    app_url = os.environ.get("APP_DATABASE_URL", "")
    postgres_url = app_url if app_url.startswith("postgresql") else DEFAULT_POSTGRES_URL
    checks.append(check_postgres(os.environ.get("TEST_POSTGRES_URL", postgres_url)))
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        dest="ports",
        help="a port that must be free (repeatable; default: 8000 and 8089)",
    )
    args = parser.parse_args(argv)
    checks = run_checks(args.ports or SESSION_PORTS)
    for check in checks:
        print(check.render())
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        print(f"\nNOT READY: {len(failed)} problem(s): {', '.join(failed)}. Fix them and rerun.")
        return 1
    warned = sum(c.status == WARN for c in checks)
    print(f"\nREADY{f' ({warned} warning(s), optional parts only)' if warned else ''}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
