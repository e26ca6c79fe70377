"""The codebase's shape is a contract: layers, no circles, no borrowed private names, small modules.

The layers and the circle rule live in ``pyproject.toml`` (``[tool.importlinter]``) and are
checked by import-linter over the whole import graph, TYPE_CHECKING imports included: a circle
that only type checkers see is still a design loop. Private names and module sizes are checked
here by reading the source, because no import graph shows ``other._private``.
"""

from __future__ import annotations

import ast
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (ROOT / "src" / "severance", ROOT / "bench")
MAX_LINES = 650

# Underscore names that are public API by convention (namedtuple, os, sys).
CONVENTIONAL = frozenset({"_replace", "_asdict", "_fields", "_make", "_exit", "_getframe"})


def _modules() -> Iterator[Path]:
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            if "node_modules" not in path.parts:
                yield path


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(tree: ast.Module) -> set[str]:
    """The private names a module defines itself: attributes it assigns, functions, classes."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
    return own


def borrowed_private_names(source: str, filename: str = "<src>") -> list[str]:
    """``other._name`` uses and ``from x import _name`` imports of names this module does not own.

    ``self._x`` and ``cls._x`` are the module's own business, as is ``other._x`` when the module
    itself defines ``_x`` (another instance of its own class, e.g. in ``__eq__`` or a
    constructor classmethod).
    """
    tree = ast.parse(source, filename)
    own = _own_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name) and alias.name not in CONVENTIONAL:
                    found.append(
                        f"{filename}:{node.lineno}: from {node.module} import {alias.name}"
                    )
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr in own or node.attr in CONVENTIONAL:
                continue
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_import_layers_and_no_circles() -> None:
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter reads pyproject.toml from the working directory
    try:
        status = lint_imports(no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert status == 0, "import-linter contracts broken: run `lint-imports` for the details"


def test_every_top_level_module_has_a_layer() -> None:
    """A new module cannot slip past the layer contract by not being named in it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {name.strip() for layer in layers for name in re.split(r"[:|]", layer)}
    package = ROOT / "src" / "severance"
    modules = {
        f"severance.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and not path.name.startswith("__"))
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert sorted(modules - named) == []
    assert sorted(named - modules) == []


def test_no_module_uses_another_modules_private_names() -> None:
    found = [
        hit
        for path in _modules()
        for hit in borrowed_private_names(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_no_module_is_over_the_size_guideline() -> None:
    big = {
        str(path.relative_to(ROOT)): n
        for path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("class A:\n    def f(self):\n        return self._x\n", 0),
        ("def f(b):\n    return b._tx()\n", 1),
        ("def f(self):\n    return self._b._query()\n", 1),
        (
            "class A:\n    def __init__(self):\n        self._x = 1\n"
            "    def eq(self, other):\n        return other._x\n",
            0,
        ),
        ("from severance.store import _fields\n", 0),  # conventional namedtuple name
        ("from severance.store import _context\n", 1),
        ("def f(p):\n    return p._replace(a=1)\n", 0),
    ],
)
def test_the_private_name_scan_catches_what_it_should(source: str, expected: int) -> None:
    assert len(borrowed_private_names(source)) == expected
