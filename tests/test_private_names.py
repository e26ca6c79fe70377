"""The store, session and key modules use no other object's ``_private`` names.

A module that needs another's private name is asking for a named method on it (the style
guide's "dependencies point one way"): ``store._backend`` from a CLI command,
``self._store._audit`` from passes, ``self._backend._reject`` on a wrapped object. This reads
each module's syntax tree and refuses any ``<expr>._name`` whose ``<expr>`` is not ``self`` or
``cls`` itself — so ``self._rows`` is fine, ``self._backend._reject`` and ``store._audit`` are
not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import severance

PACKAGE = Path(severance.__file__).parent
CORE = [
    "awake.py",
    "cli/store.py",
    "crossings.py",
    "extractor_settings.py",
    "floor_book.py",
    "keyfiles.py",
    "keys.py",
    "passes.py",
    "passphrases.py",
    "persona_book.py",
    "quarantine.py",
    "records.py",
    "rotation.py",
    "seal.py",
    "session.py",
    "session_crossing.py",
    "session_extract.py",
    "session_index.py",
    "session_recall.py",
    "session_writes.py",
    "store.py",
    "store_checks.py",
    "waker.py",
]


def private_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", CORE)
def test_no_other_objects_private_names(module: str) -> None:
    assert private_uses((PACKAGE / module).read_text()) == []


def test_the_check_finds_what_it_is_for() -> None:
    sample = "store._backend.get_meta()\nself._store._audit.append()\nself._rows.get()\n"
    assert private_uses(sample) == ["line 1: store._backend", "line 2: self._store._audit"]
