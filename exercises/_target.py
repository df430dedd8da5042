"""Which file the checks run against: the learner's stub, the reference solution, or a path.

``EXERCISE_TARGET`` picks it: ``stub`` (the default, the file you edit), ``solution`` (what the
test suite runs, so the checks are proven to pass), or a path to any ``.py`` file of your own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "load_target", "uvicorn_target"]

ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "EXERCISE_TARGET"


def _choice() -> str:
    return os.environ.get(ENV_VAR, "stub").strip() or "stub"


def _module_name(exercise: str) -> str | None:
    """The dotted name for ``stub`` and ``solution``, None for a path."""
    choice = _choice()
    if choice == "stub":
        return f"exercises.{exercise}.exercise"
    if choice == "solution":
        return f"exercises.solutions.{exercise}"
    return None


def _path() -> Path:
    path = Path(_choice()).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{ENV_VAR}={_choice()!r}: use stub, solution, or a .py file")
    return path


def load_target(exercise: str) -> ModuleType:
    """Import the module under test for ``exercise`` (a folder name: ``ex03_short_sessions``)."""
    name = _module_name(exercise)
    if name is not None:
        return importlib.import_module(name)
    path = _path()
    spec = importlib.util.spec_from_file_location(f"exercise_target_{exercise}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def uvicorn_target(exercise: str) -> tuple[str, list[str]]:
    """``module:app`` and extra uvicorn arguments, to serve the module under test for real."""
    name = _module_name(exercise)
    if name is not None:
        return f"{name}:app", []
    path = _path()
    return f"{path.stem}:app", ["--app-dir", str(path.parent)]
