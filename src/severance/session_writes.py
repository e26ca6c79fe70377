"""How a session writes: new memories (sealed, stored, indexed) and new versions of one
(applied on top of whatever version is current, re-applied if another writer got there first).

A :class:`MemoryWriter` is built by its :class:`~severance.session.Session` from the same
collaborators (rows, codec, embedder, row reader, index keeper, plain vector rows, the store's
transaction) and does the work without the session's checks: the session holds its lock,
checks it is open, validates the input and counts what was done. ``writing`` turns "the
persona is gone" from the back-end into the session's erasure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt

from . import duplicates
from .backends.base import HistoryRow, MemoryRow, PersonaRows, VectorRows
from .codec import MemoryCodec
from .drafts import Patch
from .embedders import Embedder
from .errors import ConflictError, MemoryNotFoundError
from .model import Memory, MemoryDraft, from_epoch, new_id, to_epoch
from .quarantine import RowReader
from .search.index import document
from .session_index import IndexKeeper

__all__ = ["IMPORT_WINDOW", "UPDATE_ATTEMPTS", "MemoryWriter", "embedded_batches"]

#: How often an update is re-applied when another writer changed the memory in between.
UPDATE_ATTEMPTS = 8
#: Texts an import hands the embedder in one call. The bundled embedder sorts each call's
#: texts by length and pads every inference batch only to its longest member, so a wider
#: window pads less (measured in bench/speed_embed.py, docs/benchmarks.md); the commit
#: batches are then cut from the embedded window, in the caller's order.
IMPORT_WINDOW = 2048


def embedded_batches(
    drafts: Sequence[MemoryDraft], embedder: Embedder, batch_size: int, window: int = IMPORT_WINDOW
) -> Iterator[tuple[Sequence[MemoryDraft], npt.NDArray[np.float32]]]:
    """``drafts`` in commit batches of ``batch_size``, each with its vectors: embedded
    ``window`` texts at a time (rounded to whole batches), so the embedder sorts by length
    across the window rather than within one commit batch."""
    step = max(batch_size, window // batch_size * batch_size)
    for start in range(0, len(drafts), step):
        part = drafts[start : start + step]
        vectors = embedder.embed([d.text for d in part])
        for at in range(0, len(part), batch_size):
            yield part[at : at + batch_size], vectors[at : at + batch_size]


class MemoryWriter:
    """The writes of one persona, with its index (and duplicate check) kept in step."""

    def __init__(
        self,
        rows: PersonaRows,
        codec: MemoryCodec,
        embedder: Embedder,
        reader: RowReader,
        keeper: IndexKeeper,
        vector_rows: VectorRows | None,
        transaction: Callable[[], AbstractContextManager[None]],
        writing: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._rows = rows
        self._codec = codec
        self._embedder = embedder
        self._reader = reader
        self._keeper = keeper
        self._vector_rows = vector_rows
        self._transaction = transaction
        self._writing = writing
        self._known = duplicates.KnownMemories(keeper.sync)

    def known(self) -> duplicates.KnownMemories:
        """What is already stored, for remembering each memory once: the leads are read from
        the persona's index (woken if need be, then kept up to date with every change)."""
        return self._known

    def live(self, memory_ids: list[str]) -> dict[str, Memory]:
        """The memories among ``memory_ids`` that exist and open, by id."""
        rows = self._rows.get_many(memory_ids)
        opened = {mid: self._reader.open(row) for mid, row in rows.items()}
        return {mid: m for mid, m in opened.items() if m is not None}

    def put(
        self,
        drafts: Sequence[MemoryDraft],
        vectors: npt.NDArray[np.float32],
        provenance: Sequence[Sequence[Mapping[str, Any]]] | None = None,
    ) -> list[Memory]:
        """Write validated drafts with their vectors as new memories, in one transaction (the
        caller's, if one is open). ``provenance`` gives each its origin entries."""
        now = time.time()
        rows: list[MemoryRow] = []
        memories: list[Memory] = []
        origins = provenance if provenance is not None else [()] * len(drafts)
        for draft, vector, origin in zip(drafts, vectors, origins, strict=True):
            occurred = to_epoch(draft.occurred_at) if draft.occurred_at else now
            memory = Memory(
                id=new_id("m_"),
                text=draft.text,
                kind=draft.kind,
                tags=tuple(draft.tags),
                metadata=draft.metadata,
                occurred_at=from_epoch(occurred),
                learned_at=from_epoch(now),
                updated_at=from_epoch(now),
                version=1,
                source=draft.source,
                provenance=tuple(dict(o) for o in origin),
            )
            memories.append(memory)
            rows.append(
                self._codec.row(
                    memory, vector, learned_at=now, occurred_at=occurred, updated_at=now
                )
            )
        with self._writing(), self._transaction():
            seqs = self._rows.insert(rows)
            if self._vector_rows is not None:
                self._vector_rows.set_vectors({r.id: v for r, v in zip(rows, vectors, strict=True)})
        self._keeper.upsert(
            [
                document(m.id, seq, m.kind, m.tags, r.occurred_at, now, v, m.text, m.metadata)
                for m, r, seq, v in zip(memories, rows, seqs, vectors, strict=True)
            ],
            seqs,
        )
        return memories

    def apply(
        self, memory_id: str, patch: Patch, confirm_alive: Callable[[], None]
    ) -> tuple[Memory, bool]:
        """Apply ``patch`` to the current version as a new one; whether anything changed.
        ``confirm_alive`` is asked when the memory is not found (was the persona erased?)."""
        for _ in range(UPDATE_ATTEMPTS):
            row = self._rows.get(memory_id)
            if row is None:
                confirm_alive()
                raise MemoryNotFoundError(memory_id)
            old = self._reader.open_or_raise(row)
            merged = patch.onto(old)
            if merged == old:
                return old, False
            now = time.time()
            new = dataclasses.replace(merged, version=row.version + 1, updated_at=from_epoch(now))
            if merged.text != old.text:
                vector = self._embedder.embed([merged.text])[0]
            else:
                vector = self._codec.open_vector(row)
            new_row = self._codec.row(
                new,
                vector,
                learned_at=row.learned_at,
                occurred_at=to_epoch(new.occurred_at),
                updated_at=now,
            )
            previous = HistoryRow(
                memory_id=row.id,
                version=row.version,
                occurred_at=row.occurred_at,
                updated_at=row.updated_at,
                replaced_at=now,
                payload=row.payload,
            )
            try:
                with self._writing(), self._transaction():
                    seq = self._rows.replace(new_row, previous)
                    if self._vector_rows is not None and merged.text != old.text:
                        self._vector_rows.set_vectors({row.id: vector})
            except ConflictError:
                continue  # another writer got there first: re-apply on its version
            self._keeper.upsert(
                [
                    document(
                        row.id,
                        seq,
                        new.kind,
                        new.tags,
                        new_row.occurred_at,
                        row.learned_at,
                        vector,
                        new.text,
                        new.metadata,
                    )
                ]
            )
            return new, True
        raise ConflictError(f"memory {memory_id!r} kept changing under this update; try again")
