"""The store's personas as kept: looking one up by name, describing them, adding one with a
fresh data key, and erasing one for good (clean slate).

A :class:`PersonaBook` is handed its collaborators by the store — the authenticated records
(through a getter that refuses once the store is closed), the :class:`~severance.keys.Keyring`
that wraps data keys, the audit log's ``append`` and the embedder — and knows nothing of the
store. Waking a persona is :mod:`severance.waker`'s.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from .backends.base import PersonaRow
from .embedders import Embedder
from .errors import AlreadyExistsError, InvalidInputError, PersonaNotFoundError
from .extractor_settings import erase_extractor
from .floors import check_name
from .keys import Keyring, Secret
from .model import PersonaInfo, from_epoch, new_id
from .records import AuthenticatedBackend
from .seal import new_key

__all__ = ["PersonaBook"]


class PersonaBook:
    """The personas of one store."""

    def __init__(
        self,
        records: Callable[[], AuthenticatedBackend],
        keys: Keyring,
        audit: Callable[..., object],
        embedder: Callable[[], Embedder],
    ) -> None:
        self._records = records
        self._keys = keys
        self._audit = audit
        self._embedder = embedder

    def row(self, name: str) -> PersonaRow:
        """The record of persona ``name``; :class:`PersonaNotFoundError` if there is none."""
        for row in self._records().personas():
            if row.name == name:
                return row
        raise PersonaNotFoundError(f"no persona named {name!r}")

    def info(self, row: PersonaRow) -> PersonaInfo:
        return _info(row, self._vector_mode(row.id))

    def all(self) -> list[PersonaInfo]:
        return [self.info(r) for r in self._records().personas()]

    def count(self, name: str) -> int:
        """How many memories persona ``name`` holds (counted without unlocking it)."""
        return self._records().rows(self.row(name).id).count()

    def add(self, name: str, sealed_with: Secret | None, vectors: str) -> PersonaInfo:
        """See :meth:`severance.store.Store.add_persona`."""
        check_name(name, "persona")
        if vectors not in ("sealed", "indexed"):
            raise InvalidInputError("vectors must be 'sealed' or 'indexed'")
        backend = self._records()
        if vectors == "indexed" and not backend.indexed_vectors:
            raise InvalidInputError("this back-end keeps vectors sealed only (use PostgreSQL)")
        embedder = self._embedder()
        persona_id = new_id("p_")
        data_key = new_key()
        wrapped, kdf = self._keys.wrap(persona_id, data_key, sealed_with)
        row = PersonaRow(
            id=persona_id,
            name=name,
            created_at=time.time(),
            wrapped_key=wrapped,
            sealed=sealed_with is not None,
            seal_kdf=kdf,
            embedder=embedder.name,
            dimension=embedder.dimension,
        )
        with backend.transaction():
            backend.lock()
            if sealed_with is None and self._keys.refresh():
                # Another process rotated the master key: wrap under the one now in force.
                row = dataclasses.replace(row, wrapped_key=self._keys.wrap(persona_id, data_key)[0])
            if any(p.name == name for p in backend.personas()):
                raise AlreadyExistsError(f"a persona named {name!r} already exists")
            backend.insert_persona(row)
            if vectors == "indexed":
                backend.vector_rows(persona_id).enable_vectors(embedder.dimension)
            self._audit("persona_added", persona_id, name, sealed=row.sealed, vectors=vectors)
        return _info(row, vectors)

    def erase(self, row: PersonaRow) -> int:
        """Erase a persona for good (its live sessions already stopped): destroy its wrapped
        key, delete its rows, history, snapshots, floors and settings, reclaim the space.
        Returns how many memories were erased."""
        backend = self._records()
        rows = backend.rows(row.id)
        with backend.transaction():
            # Under the writer lock, so the count is of exactly what is erased, and every
            # write another process makes after it finds the persona gone (and fails).
            rows.lock()
            erased = rows.count()
            backend.delete_persona(row.id)
            if f"override:{row.id}" in backend.get_meta():
                backend.set_meta(f"override:{row.id}", "0")  # end a running override
            erase_extractor(backend, row.id)
            self._audit("clean_slate", row.id, row.name, memories=erased)
        backend.reclaim()
        return erased

    def _vector_mode(self, persona_id: str) -> str:
        backend = self._records()
        if not backend.indexed_vectors:
            return "sealed"
        indexed = backend.vector_rows(persona_id).vector_dimension() is not None
        return "indexed" if indexed else "sealed"


def _info(row: PersonaRow, vectors: str = "sealed") -> PersonaInfo:
    return PersonaInfo(
        vectors=vectors,
        id=row.id,
        name=row.name,
        created_at=from_epoch(row.created_at),
        sealed=row.sealed,
        embedder=row.embedder,
        dimension=row.dimension,
    )
