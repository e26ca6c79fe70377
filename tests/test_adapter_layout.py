"""The adapters (CLI, HTTP, MCP, console) keep their shape: no import circles among their
modules, pages that never import the app, and modules small enough to read.

Imports are read from the source with :mod:`ast`, so the ones inside functions and under
``TYPE_CHECKING`` count too (as they do for grimp and import-linter): a lazy import that closes
a circle is still a design loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import severance

SRC = Path(severance.__file__).parent
ADAPTERS = ("severance.cli", "severance.console", "severance.http", "severance.mcp")
MAX_LINES = 650


def _module_name(path: Path) -> str:
    parts = ["severance", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from . import pages_x` imports the module pages_x (not the package, as grimp
            # counts it); `from .x import name` imports x (and x.name if that is a module).
            targets = [f"{base}.{alias.name}" for alias in node.names]
            if node.module is not None:
                targets.append(base)
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _is_adapter(name: str) -> bool:
    return any(name == a or name.startswith((a + ".", a + "_")) for a in ADAPTERS)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_reader_sees_lazy_and_relative_imports() -> None:
    graph = _graph()
    assert "severance.mcp" in graph["severance.cli.serve"]  # imported inside a function
    assert "severance.console.pages_memories" in graph["severance.console.app"]
    assert "severance.http.schemas" in graph["severance.http.app"]


def test_no_import_circles_among_the_adapters() -> None:
    graph = _graph()
    adapters = {v: {w for w in ws if _is_adapter(w)} for v, ws in graph.items() if _is_adapter(v)}
    assert _cycles(adapters) == []


def test_console_pages_never_import_the_app() -> None:
    graph = _graph()
    for name, imported in graph.items():
        if name.startswith(("severance.console.pages_", "severance.console.forms")):
            assert "severance.console.app" not in imported, name


def test_adapter_modules_are_small() -> None:
    for name, path in _modules().items():
        if _is_adapter(name):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert lines <= MAX_LINES, (name, lines)


def test_mcp_is_the_module_and_the_sdk_is_still_mcp() -> None:
    import mcp

    import severance.mcp as server

    assert not (SRC / "mcp_server.py").exists()
    assert Path(mcp.__file__).parent.name == "mcp" and "site-packages" in mcp.__file__
    assert server.create_mcp_server.__module__ == "severance.mcp"
