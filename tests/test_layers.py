"""The import rules, read from the source (ast), lazy imports inside functions included:

- imports point only down: cli/app modules -> exporter -> trainer -> runtime;
- nothing imports `runtime`, `trainer` or `exporter` as top-level packages;
- no TensorFlow, Keras, tf2onnx or onnx is reachable from a runtime module, through any chain of
  gru_edge modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Repository folder -> installed package (pyproject's package-dir).
FOLDERS = {
    "gru_edge": "gru_edge",
    "runtime": "gru_edge.runtime",
    "trainer": "gru_edge.trainer",
    "exporter": "gru_edge.exporter",
}
RANK = {"gru_edge.runtime": 0, "gru_edge.trainer": 1, "gru_edge.exporter": 2}
APP_RANK = 3  # gru_edge itself and its top-level modules: the CLI and what it calls
TRAINING_SIDE = {"tensorflow", "keras", "tf_keras", "tf2onnx", "onnx"}
BARE_NAMES = {"runtime", "trainer", "exporter"}


def source_modules() -> dict[str, Path]:
    """Every installed module name -> its file in the repository."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def imported_names(module: str, source: str, is_package: bool = False) -> Iterator[str]:
    """Every module name ``source`` imports, anywhere in the file; ``from X import y`` yields
    both X and X.y (y may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def rank(name: str) -> int | None:
    """The layer of a gru_edge module name; None for anything else."""
    if name != "gru_edge" and not name.startswith("gru_edge."):
        return None
    for package, value in RANK.items():
        if name == package or name.startswith(package + "."):
            return value
    return APP_RANK


def upward_imports(module: str, source: str, is_package: bool = False) -> list[str]:
    """The imports of ``module`` that point to a higher layer (or to a bare top-level name)."""
    own = rank(module)
    wrong = []
    for name in imported_names(module, source, is_package):
        if (
            name.split(".")[0] in BARE_NAMES
            or own is not None
            and (target := rank(name)) is not None
            and target > own
        ):
            wrong.append(name)
    return sorted(set(wrong))


def _parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def reachable_externals(start: str, modules: dict[str, Path]) -> dict[str, list[str]]:
    """External top-level packages reachable from ``start`` -> one import chain to each."""
    graph = {
        name: set(imported_names(name, path.read_text(encoding="utf-8"), path.stem == "__init__"))
        for name, path in modules.items()
    }
    found: dict[str, list[str]] = {}
    chains = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for name in sorted(graph[current]):
            for target in [*_parents(name), name]:
                if target in modules:
                    if target not in chains:
                        chains[target] = [*chains[current], target]
                        todo.append(target)
                elif rank(target) is None:
                    found.setdefault(target.split(".")[0], [*chains[current], target])
    return found


MODULES = source_modules()


def test_the_module_list_covers_every_layer():
    assert {rank(m) for m in MODULES} == {0, 1, 2, APP_RANK}
    assert "gru_edge.runtime.generator" in MODULES and "gru_edge.cli" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_only_down(module):
    path = MODULES[module]
    source = path.read_text(encoding="utf-8")
    assert upward_imports(module, source, path.stem == "__init__") == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if rank(m) == 0))
def test_no_training_side_package_is_reachable_from_the_runtime(module):
    reached = reachable_externals(module, MODULES)
    bad = {name: " -> ".join(chain) for name, chain in reached.items() if name in TRAINING_SIDE}
    assert bad == {}


def test_tests_never_import_the_bare_folder_names():
    for path in sorted((REPO / "tests").glob("*.py")):
        names = imported_names("tests." + path.stem, path.read_text(encoding="utf-8"))
        assert not [n for n in names if n.split(".")[0] in BARE_NAMES], path.name


# --- the checks themselves catch what they are for ---------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("gru_edge.runtime.x", "def f():\n    from gru_edge.cli import app\n", ["gru_edge.cli"]),
        ("gru_edge.runtime.x", "import gru_edge\n", ["gru_edge"]),
        ("gru_edge.runtime.x", "from gru_edge import __version__\n", ["gru_edge"]),
        ("gru_edge.trainer.x", "from gru_edge.exporter import export\n", ["gru_edge.exporter"]),
        ("gru_edge.trainer.x", "from ..exporter.export import run\n", ["gru_edge.exporter"]),
        ("gru_edge.exporter.x", "from runtime.errors import E\n", ["runtime"]),
        ("gru_edge.exporter.x", "from gru_edge.trainer import rundir\n", []),
        ("gru_edge.cli", "from gru_edge.runtime.errors import E\n", []),
    ],
)
def test_upward_imports_are_found(module, source, expected):
    found = upward_imports(module, source)
    assert all(any(name.startswith(e) for name in found) for e in expected), found
    assert bool(found) == bool(expected)


def test_reachability_follows_chains_and_lazy_imports(tmp_path):
    files = {
        "gru_edge.runtime.a": "from gru_edge.runtime import b\n",
        "gru_edge.runtime.b": "def later():\n    import onnx.helper\n",
        "gru_edge.runtime.c": "import numpy\n",
    }
    fake = {}
    for name, text in files.items():
        fake[name] = tmp_path / f"{name}.py"
        fake[name].write_text(text, encoding="utf-8")
    reached = reachable_externals("gru_edge.runtime.a", fake)
    assert reached["onnx"] == ["gru_edge.runtime.a", "gru_edge.runtime.b", "onnx"]
    assert "numpy" not in reached
