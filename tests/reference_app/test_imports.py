"""Imports point one way: api -> tasks/webhooks -> store -> events/db -> core.

Read from the source (``ast``), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reference_app"

# Lower layers never import higher ones. webhooks sits above tasks: it is a task kind
# (its handler and its terminal hook), and tasks/ knows nothing of it.
LAYERS = {
    "core": 0,
    "db": 1,
    "events": 2,
    "store": 3,
    "tasks": 4,
    "webhooks": 5,
    # Prometheus metrics: hooks on the store, the sweeper and the errors; api serves them.
    "metrics": 5,
    "api": 6,
    # The app's wiring and its tools: they may import everything.
    "main": 7,
    "__main__": 7,
    "testing": 7,
    "__init__": 7,
}


def layer_of(module: str) -> int:
    """The layer of ``reference_app.<part>...``."""
    part = module.split(".")[1] if "." in module else "__init__"
    return LAYERS[part]


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """The ``reference_app`` modules (or packages) ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("reference_app.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "reference_app":
                names |= {f"reference_app.{a.name}" for a in node.names}
            elif node.module.startswith("reference_app."):
                names.add(node.module)
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_top_level_module_has_a_layer() -> None:
    tops = {module_name(p).split(".")[1] for p in MODULES if "." in module_name(p)}
    assert tops <= set(LAYERS), f"give these a layer: {tops - set(LAYERS)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_layer_or_lower(path: Path) -> None:
    name = module_name(path)
    mine = layer_of(name) if name != "reference_app" else LAYERS["__init__"]
    upward = sorted(m for m in imported(path) if layer_of(m) > mine)
    assert upward == [], f"{name} imports {upward}, above its layer"


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    # The rule's own test: a core module that imports the worker is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("from reference_app.tasks.worker import Worker\nimport reference_app.api.deps\n")
    assert {layer_of(m) for m in imported(bad)} == {LAYERS["tasks"], LAYERS["api"]}
    assert all(layer_of(m) > LAYERS["core"] for m in imported(bad))


def test_tasks_never_import_webhooks() -> None:
    for path in (PACKAGE / "tasks").glob("*.py"):
        assert not any(m.startswith("reference_app.webhooks") for m in imported(path)), path


def test_metrics_never_import_webhooks() -> None:
    # Beside webhooks, not above it: main tells the metrics the delivery kind's name.
    for path in (PACKAGE / "metrics").glob("*.py"):
        assert not any(m.startswith("reference_app.webhooks") for m in imported(path)), path
