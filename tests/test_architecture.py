"""The import graph: layers point down only, no cycles, no hidden imports inside functions.

The layers, bottom first (a module may import from its own unit and from the units below it):
errors/fileio/console <- isa <- emulator <- relax_layers (the Relax forms of FC and LSTM layers)
<- frontend <- passes <- training <- codegen <- compression report, compiler <- byoc <- runtime
<- commands <- cli <- __main__. An import inside a function is allowed only as a deliberate
lazy load of a heavy package and carries a ``# lazy: what`` comment on one of its lines.
Imports for type checking only (``if TYPE_CHECKING:``) must point down too but do not make
cycles. Run this file as a script to print the graph, one line per pair of units.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject.toml's package-dir).
PACKAGES = {
    "eiec": "eiec",
    "isa": "eiec.isa",
    "emulator": "eiec.emulator",
    "runtime": "eiec.runtime",
}

#: Units bottom first; a unit is a package or a top-level module of eiec.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("eiec", "eiec.errors"),
    ("eiec.fileio", "eiec.console"),
    ("eiec.isa",),
    ("eiec.emulator",),
    ("eiec.relax_layers",),
    ("eiec.frontend",),
    ("eiec.passes",),
    ("eiec.training",),
    ("eiec.codegen",),
    ("eiec.compression",),
    ("eiec.compiler",),
    ("eiec.byoc",),
    ("eiec.runtime",),
    ("eiec.commands",),
    ("eiec.cli",),
    ("eiec.__main__",),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
LAZY = "# lazy:"
_TYPE_CHECKING = ("TYPE_CHECKING", "typing.TYPE_CHECKING")


@dataclass(frozen=True)
class Import:
    """One import statement of an eiec module."""

    module: str
    target: str
    line: int
    in_function: bool
    marked_lazy: bool
    type_only: bool


def modules() -> dict[str, Path]:
    """Every eiec module by its dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def unit_of(module: str) -> str:
    """The unit (package or top-level module of eiec) a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _targets(
    name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = name.split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    submodules = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]
    if len(submodules) == len(node.names):
        return submodules  # ``from package import module``: the package is initialising already
    return [module, *submodules]


def imports() -> Iterator[Import]:
    """Every import of an eiec module by an eiec module."""
    known = modules()
    for name, path in known.items():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        inside: set[int] = set()
        typing: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
            if isinstance(node, ast.If) and ast.unparse(node.test) in _TYPE_CHECKING:
                typing.update(id(sub) for sub in ast.walk(node))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            lazy = any(LAZY in line for line in lines[node.lineno - 1 : node.end_lineno])
            for target in _targets(name, path, node, set(known)):
                resolved = target
                while resolved not in known and "." in resolved:
                    resolved = resolved.rsplit(".", 1)[0]
                external = not target.startswith("eiec")
                yield Import(
                    name,
                    target if external else resolved,
                    node.lineno,
                    id(node) in inside,
                    lazy,
                    id(node) in typing,
                )


def unit_pairs() -> list[str]:
    """``a -> b`` for every pair of units where a module of ``a`` imports one of ``b``."""
    pairs = {
        (unit_of(i.module), unit_of(i.target))
        for i in imports()
        if i.target.startswith("eiec") and unit_of(i.module) != unit_of(i.target)
    }
    return [f"{a} -> {b}" for a, b in sorted(pairs)]


def test_every_unit_has_a_layer() -> None:
    assert sorted({unit_of(name) for name in modules()} - set(RANK)) == []


def test_imports_point_down() -> None:
    upward = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in imports()
        if i.target.startswith("eiec")
        and unit_of(i.module) != unit_of(i.target)
        and RANK[unit_of(i.target)] >= RANK[unit_of(i.module)]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for i in imports():
        if i.target.startswith("eiec") and i.target != i.module and not i.type_only:
            graph.setdefault(i.module, set()).add(i.target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_imports_inside_functions_are_marked_lazy_loads() -> None:
    hidden = sorted(
        {
            f"{i.module}:{i.line} imports {i.target}"
            for i in imports()
            if i.in_function and not i.marked_lazy
        }
    )
    assert not hidden, "\n".join(hidden)


def test_lazy_marks_only_on_imports_inside_functions() -> None:
    stray = sorted(
        {f"{i.module}:{i.line}" for i in imports() if i.marked_lazy and not i.in_function}
    )
    assert not stray, "\n".join(stray)


if __name__ == "__main__":
    print("\n".join(unit_pairs()))
    sys.exit(0)
