"""``python -m benchmarks.notebooks``: run the notebooks on a results folder, top to bottom.

    python -m benchmarks.notebooks --results results/local/20261128T182340Z
    python -m benchmarks.notebooks --figures docs/figures      # the README's figures

Each ``notebooks/NN_*.py`` (jupytext ``py:percent``) is executed with nbclient, its
parameters injected in a cell after the one tagged ``parameters`` (papermill's
convention), and written as ``.ipynb`` to ``--out`` to open in JupyterLab.
``make notebooks-run RESULTS=...`` and ``make figures`` call this.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

__all__ = ["NOTEBOOKS", "execute", "inject_parameters", "notebook_paths", "prepare", "run"]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = Path("results/local/notebooks")


def notebook_paths() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def inject_parameters(notebook: Any, parameters: Mapping[str, object]) -> Any:
    """Add a cell tagged ``injected-parameters`` right after the ``parameters`` cell."""
    tagged = [
        n
        for n, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})  # type: ignore[no-untyped-call]
    notebook.cells.insert(tagged[0] + 1, cell)
    return notebook


def prepare(path: Path, parameters: Mapping[str, object] | None = None) -> Any:
    """The notebook at ``path`` (a jupytext file), with ``parameters`` injected."""
    notebook = jupytext.read(path)
    if parameters:
        inject_parameters(notebook, parameters)
    return notebook


def run(notebook: Any, *, timeout: float = 120) -> Any:
    """Execute ``notebook`` in place from the repository root; raise on the first failing cell."""
    client = NotebookClient(
        notebook,
        timeout=timeout,
        startup_timeout=120,  # a kernel on a busy 2-core machine can take its time
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    return notebook


def execute(
    path: Path, parameters: Mapping[str, object] | None = None, *, timeout: float = 120
) -> Any:
    """The notebook at ``path``, executed with ``parameters``; raises ``CellExecutionError``."""
    return run(prepare(path, parameters), timeout=timeout)


def _from_here(path: str) -> str:
    """``path`` as the notebooks take it: relative to the repository when inside it."""
    absolute = Path(path).resolve()
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(absolute)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.notebooks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--results", default="results/reference", help="a make bench folder")
    parser.add_argument("--figures", default="", help="export the key figures as PNG here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per cell")
    parser.add_argument("only", nargs="*", help="notebooks whose name contains one of these")
    args = parser.parse_args(argv)
    results = _from_here(args.results)
    if not (ROOT / results / "summary.json").is_file():
        parser.error(f"{args.results} has no summary.json: not a `make bench` results folder")
    paths = [p for p in notebook_paths() if not args.only or any(o in p.name for o in args.only)]
    os.environ.setdefault("MPLBACKEND", "Agg")  # the kernels inherit it; no display needed
    out = args.out if args.out.is_absolute() else ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    figures = _from_here(args.figures) if args.figures else ""
    parameters = {"RESULTS": results, "FIGURES": figures}
    failed = []
    for path in paths:
        target = out / f"{path.stem}.ipynb"
        notebook = prepare(path, parameters)
        try:
            run(notebook, timeout=args.timeout)
        except CellExecutionError as exc:
            failed.append(path.name)
            print(f"FAILED {path.name}: {exc.ename}: {exc.evalue} (see {target})", flush=True)
        else:
            print(f"ok     {path.name} -> {target}", flush=True)
        nbformat.write(notebook, target)  # type: ignore[no-untyped-call]
    if figures:
        print(f"figures: {figures}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
