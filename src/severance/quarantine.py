"""Opening one persona's rows without letting one bad row make the persona unreadable.

A row whose payload or vector fails authentication (swapped, corrupted, sealed for another
version) is *quarantined*: :class:`RowReader` returns None for it instead of raising, keeps its
id, and records one ``memory_quarantined`` audit entry per id and version. Every read of a
session (listing, recall, export, the index) skips such rows; ``get`` and ``history`` raise
:class:`~severance.errors.QuarantinedError` naming the memory; ``forget`` removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .backends.base import MemoryRow, PayloadRow
from .codec import MemoryCodec
from .errors import IntegrityError, QuarantinedError
from .model import Memory
from .search import Doc
from .search.index import document

__all__ = ["RowReader"]


class RowReader:
    """Opens rows with a codec; remembers (and reports once) the rows that fail."""

    def __init__(self, codec: MemoryCodec, report: Callable[[str, int], None]) -> None:
        self._codec = codec
        self._report = report
        #: id -> the version that failed
        self._bad: dict[str, int] = {}

    def open(self, row: PayloadRow) -> Memory | None:
        """The memory of ``row``, or None (quarantined) if it fails authentication (its
        payload is opened with the AAD naming this store, persona, memory id and version)."""
        try:
            memory = self._codec.memory(row)
        except IntegrityError:
            self.quarantine(row)
            return None
        self._bad.pop(row.id, None)
        return memory

    def open_or_raise(self, row: PayloadRow) -> Memory:
        memory = self.open(row)
        if memory is None:
            raise QuarantinedError(row.id)
        return memory

    def quarantine(self, row: PayloadRow) -> None:
        if self._bad.get(row.id) == row.version:
            return
        self._bad[row.id] = row.version
        self._report(row.id, row.version)

    def doc(self, row: MemoryRow) -> Doc | None:
        """The index entry of ``row`` (payload and vector), or None if it fails."""
        memory = self.open(row)
        if memory is None:
            return None
        try:
            vector = self._codec.open_vector(row)
        except IntegrityError:
            self.quarantine(row)
            return None
        return document(
            row.id,
            row.seq,
            memory.kind,
            memory.tags,
            row.occurred_at,
            row.learned_at,
            vector,
            memory.text,
            memory.metadata,
        )

    def docs(self, rows: Iterable[MemoryRow]) -> list[Doc]:
        """Index entries of the rows that open (payload and vector)."""
        return [d for d in map(self.doc, rows) if d is not None]

    def payload(self, row: MemoryRow) -> Mapping[str, Any]:
        """The decrypted payload of ``row`` (text, kind, tags, metadata), for reading index
        features; a row that fails gives an empty text and no metadata, kind or tags (it is
        kept out of the index)."""
        memory = self.open(row)
        if memory is None:
            return {"text": "", "metadata": {}}
        return {
            "text": memory.text,
            "kind": memory.kind,
            "tags": memory.tags,
            "metadata": memory.metadata,
        }

    def forget(self, memory_id: str) -> None:
        self._bad.pop(memory_id, None)

    def ids(self) -> list[str]:
        return sorted(self._bad)
