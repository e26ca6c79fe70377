"""Shared fixtures: an isolated environment for every test, and stores on every back-end.

``store_location`` is parametrised over the back-ends: the same tests run on SQLite and (when
its server is available) PostgreSQL. Tests get the real bundled embedder, loaded once per
process by ``load_embedder``'s cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import severance

pytest_plugins = ["pg_server"]

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME and XDG config dir; no SEVERANCE_* variables leak in from outside."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in list(os.environ):
        if name.startswith("SEVERANCE_"):
            monkeypatch.delenv(name)
    return home


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_location(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a fresh, empty store may be created on the back-end under test."""
    if backend_name == "sqlite":
        return str(tmp_path / "store")
    factory = request.getfixturevalue("postgres_store_url")
    return str(factory)


@pytest.fixture
def store(store_location: str) -> Iterator[severance.Store]:
    """A store with personas work, home and side, and a floor for each."""
    s = severance.Store.init(store_location)
    for persona, floor in (("work", "office"), ("home", "house"), ("side", "studio")):
        s.add_persona(persona)
        s.add_floor(floor, persona=persona)
    yield s
    s.close()
