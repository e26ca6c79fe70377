"""The shape of ``severance.backends``: a registry of factories, one way to ask for the indexed
vector mode. Circles, private names and module sizes are checked for the whole package by
tests/test_layers.py."""

from __future__ import annotations

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
