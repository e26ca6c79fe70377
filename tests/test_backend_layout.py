"""The shape of ``severance.backends``: a registry of factories, one way to ask for the indexed
vector mode, composition instead of children reaching into their parent, and no import circle
(``TYPE_CHECKING`` imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import severance.backends as backends
from severance.backends import BACKENDS, open_backend
from severance.backends.base import VectorRows
from severance.backends.postgres import PostgresBackend
from severance.backends.sqlite import SQLiteBackend
from severance.errors import InvalidInputError, StorePathError

PACKAGE = Path(backends.__file__).parent


def test_the_registry_is_a_plain_dict_of_factories(tmp_path: Path) -> None:
    assert type(BACKENDS) is dict
    assert set(BACKENDS) == {"sqlite", "postgresql", "postgres"}
    assert all(callable(factory) for factory in BACKENDS.values())
    assert type(BACKENDS["sqlite"](str(tmp_path / "a"))) is SQLiteBackend
    assert type(BACKENDS["postgresql"]("postgresql:///db")) is PostgresBackend


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("{tmp}/plain", SQLiteBackend),
        ("sqlite://{tmp}/url", SQLiteBackend),
        ("postgresql://localhost/db?store=x", PostgresBackend),
        ("postgres://localhost/db", PostgresBackend),
        ("PostgreSQL://localhost/db", PostgresBackend),
    ],
)
def test_a_location_picks_its_backend_by_scheme(
    tmp_path: Path, location: str, expected: type
) -> None:
    backend = open_backend(location.format(tmp=tmp_path))
    try:
        assert type(backend) is expected  # nothing is connected or created yet
    finally:
        backend.close()
    assert not (tmp_path / "plain").exists()


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(StorePathError, match="unsupported store location scheme 'mysql'"):
        open_backend("mysql://localhost/db")


def test_indexed_vectors_is_the_one_capability_question(tmp_path: Path) -> None:
    assert SQLiteBackend.indexed_vectors is False
    assert PostgresBackend.indexed_vectors is True
    with pytest.raises(InvalidInputError, match="sealed only"):
        SQLiteBackend(tmp_path / "s").vector_rows("p_1")
    # Not a runtime-checkable protocol: nothing probes rows for their methods.
    with pytest.raises(TypeError):
        isinstance(object(), VectorRows)  # type: ignore[misc]
    probing = [p for p in PACKAGE.glob("*.py") if "runtime_checkable" in p.read_text()]
    assert probing == []


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.glob("*.py"))}


def test_no_backend_module_reaches_into_another_objects_private_names() -> None:
    # ``self._x`` is a class's own; ``other._x`` (another object's, or another module's) is
    # a child reaching into its parent: ask for a named method on it instead.
    found = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            found.append(f"{name}.py:{node.lineno}: .{attr}")
    assert found == []


def _imports(tree: ast.Module) -> set[str]:
    # Every import, wherever it stands: at the top, in a function, under TYPE_CHECKING.
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "severance.backends."
        ):
            names.add((node.module or "").split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("severance.backends."):
                    names.add(alias.name.split(".")[2])
    return names


def test_the_backend_modules_import_one_way() -> None:
    modules = _modules()
    graph = {name: _imports(tree) & set(modules) - {name} for name, tree in modules.items()}
    assert graph["postgres_rows"] >= {"postgres_connection"}
    assert "postgres" not in graph["postgres_rows"] | graph["postgres_vectors"]
    assert "sqlite" not in graph["sqlite_rows"] | graph["sqlite_connection"]
    # Depth-first search for a circle.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                raise AssertionError(" -> ".join([*path[path.index(child) :], child]))
            if child not in state:
                visit(child)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_module_checks_see_a_circle_and_a_private_reach() -> None:
    # The two checks above, on code that has what they look for.
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .postgres import PostgresBackend\n"
        "def f(b):\n    return b._tx\n"
    )
    assert _imports(tree) == {"postgres"}
    reaches = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    assert reaches == ["_tx"]


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_each_module_is_small(module: str) -> None:
    assert len((PACKAGE / module).read_text().splitlines()) <= 650
