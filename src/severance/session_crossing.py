"""What crossings may do on one persona: :class:`Crossing`, and the verbs a
:class:`~severance.session.Session` offers them (:class:`CrossingAPI`).

Reintegration and re-embedding work on two personas (or one, wholesale) inside one
transaction that holds the store's writer lock. They do it through these verbs — never
through a session's rows, codec or index directly — so that every write still goes through the
session's checks (open, not erased, quarantine, index kept in step). A :class:`Crossing` is
handed the parts of the session it works with (its rows, codec, row reader, index keeper and
its guard) and knows nothing of the session itself; :class:`CrossingAPI`, the session's base,
holds one and lends its verbs the session's name. Kept apart from ``session.py`` by concept:
these are the crossings' verbs, not the persona's everyday ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager

import numpy as np
import numpy.typing as npt

from .backends.base import MemoryRow, PersonaRows, VectorRows
from .codec import MemoryCodec
from .embedders import Embedder
from .errors import ConflictError, IntegrityError
from .model import Memory
from .quarantine import RowReader
from .search import Filter
from .session_index import SCAN_BATCH, IndexKeeper

__all__ = ["Crossing", "CrossingAPI", "Progress"]

#: A progress callback: (done, total).
Progress = Callable[[int, int], None]
#: A context manager factory.
Context = Callable[[], AbstractContextManager[None]]


class Crossing:
    """The crossings' verbs on one persona, over the parts of its session.

    ``guard`` holds the session's lock and checks it is open (not closed, not erased, not
    expired) for as long as it is entered; ``writing`` turns "the persona is gone" from the
    back-end into the session's erasure; ``transaction`` is the store's. ``vector_rows`` are
    the persona's plain vectors in the database (indexed mode, PostgreSQL + pgvector), if any.
    """

    def __init__(
        self,
        rows: PersonaRows,
        codec: MemoryCodec,
        embedder: Embedder,
        reader: RowReader,
        keeper: IndexKeeper,
        vector_rows: VectorRows | None,
        *,
        guard: Context,
        writing: Context,
        transaction: Context,
    ) -> None:
        self._rows = rows
        self._codec = codec
        self._embedder = embedder
        self._reader = reader
        self._keeper = keeper
        self._vector_rows = vector_rows
        self._guard = guard
        self._writing = writing
        self._transaction = transaction

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    def lock(self) -> None:
        with self._writing():
            self._rows.lock()

    def mark(self) -> int:
        with self._guard():
            return self._rows.high_water()

    def changed_since(self, mark: int) -> bool:
        with self._guard():
            changes = self._rows.changes_since(mark)
            # Tombstones dropped after the mark may hide a deletion: count that as a change.
            return bool(changes.changed or changes.deleted or changes.compacted)

    def versions(self, ids: Sequence[str]) -> dict[str, int]:
        with self._guard():
            return {i: r.version for i, r in self._rows.get_many(list(ids)).items()}

    def take(self, ids: Sequence[str]) -> list[tuple[Memory, npt.NDArray[np.float32]]]:
        with self._guard():
            rows = self._rows.get_many(list(ids))
            out = []
            for memory_id in dict.fromkeys(ids):
                row = rows.get(memory_id)
                if row is None:
                    continue
                memory = self._reader.open(row)
                if memory is None:
                    continue
                try:
                    out.append((memory, self._codec.open_vector(row)))
                except IntegrityError:
                    self._reader.quarantine(row)
            return out

    def texts(self) -> list[Memory]:
        with self._guard():
            out: list[Memory] = []
            for batch in self._rows.scan(SCAN_BATCH):
                out.extend(m for m in map(self._reader.open, batch) if m is not None)
            return out

    def delete(self, expected_versions: Mapping[str, int]) -> int:
        with self._guard():
            with self._writing(), self._transaction():
                self._rows.lock()
                current = self._rows.get_many(list(expected_versions))
                changed = [
                    i
                    for i, v in expected_versions.items()
                    if i not in current or current[i].version != v
                ]
                if changed:
                    raise ConflictError(
                        f"{len(changed)} memories changed while being moved; nothing was moved"
                    )
                deleted = self._rows.delete_many(list(expected_versions))
            self._keeper.remove(expected_versions)
            return deleted

    def matching(self, flt: Filter) -> list[str]:
        with self._guard():
            return list(self._keeper.sync().ids_matching(flt))

    def nearest(self, vectors: npt.NDArray[np.float32], k: int) -> list[list[tuple[str, float]]]:
        with self._guard():
            index = self._keeper.sync()
            out = []
            for vector in vectors:
                dense_hits = (
                    self._vector_rows.nearest(vector, k) if self._vector_rows is not None else None
                )
                hits = index.search(vector, (), k, mode="dense", depth=k, dense_hits=dense_hits)
                out.append([(h.id, float(h.dense_score or 0.0)) for h in hits])
            return out

    def reembed(self, commit: Callable[[], None], progress: Progress | None = None) -> int:
        with self._guard():
            mark = self._rows.high_water()
            rows = [r for batch in self._rows.scan(SCAN_BATCH) for r in batch]
            total = len(rows)
            fresh = self._embed_rows(rows, progress, total)
            with self._writing(), self._transaction():
                self._rows.lock()
                changes = self._rows.changes_since(mark)
                gone: Iterable[str] = changes.deleted
                if changes.compacted:
                    # Tombstones after the mark were dropped by a snapshot meanwhile: what is
                    # no longer there was deleted (nothing can change now, under the lock).
                    present = self._rows.changes_since(0).changed
                    gone = [memory_id for memory_id in fresh if memory_id not in present]
                for memory_id in gone:
                    fresh.pop(memory_id, None)
                moved = self._rows.get_many(list(changes.changed))
                fresh.update(self._embed_rows(list(moved.values()), None, 0))
                for memory_id in set(changes.changed) - set(moved):
                    fresh.pop(memory_id, None)
                sealed = {
                    i: (version, self._codec.seal_vector(i, version, v))
                    for i, (version, v) in fresh.items()
                }
                written = self._rows.update_vectors(sealed)
                if written != len(sealed):
                    raise ConflictError("memories changed during re-embedding; run it again")
                if self._vector_rows is not None:
                    self._vector_rows.set_vectors({i: v for i, (_, v) in fresh.items()})
                self._rows.drop_snapshot()
                commit()
            self._keeper.drop()
            return written

    def _embed_rows(
        self, rows: Sequence[MemoryRow], progress: Progress | None, total: int
    ) -> dict[str, tuple[int, npt.NDArray[np.float32]]]:
        out: dict[str, tuple[int, npt.NDArray[np.float32]]] = {}
        opened = [(r, self._reader.open(r)) for r in rows]
        live = [(r, m) for r, m in opened if m is not None]
        for start in range(0, len(live), 256):
            part = live[start : start + 256]
            vectors = self._embedder.embed([m.text for _, m in part])
            for (r, _), v in zip(part, vectors, strict=True):
                out[r.id] = (r.version, v)
            if progress is not None:
                progress(min(start + 256, len(live)), total)
        return out


class CrossingAPI:
    """The named internal API crossings use on a :class:`~severance.session.Session`: each
    verb is its :class:`Crossing`'s, handed in by the session (which builds it from its parts)."""

    def __init__(self, crossing: Crossing) -> None:
        self._crossing = crossing

    def transaction(self) -> AbstractContextManager[None]:
        """The store's transaction (joined if one is open)."""
        return self._crossing.transaction()

    def lock(self) -> None:
        """Inside a transaction: keep every other writer of the store out until it ends, so
        what is read next cannot change before the commit."""
        self._crossing.lock()

    def mark(self) -> int:
        """The store-wide sequence number now (for :meth:`changed_since`)."""
        return self._crossing.mark()

    def changed_since(self, mark: int) -> bool:
        """Whether any memory of the persona was written or deleted after ``mark``."""
        return self._crossing.changed_since(mark)

    def versions(self, ids: Sequence[str]) -> dict[str, int]:
        """The current version of each memory in ``ids`` that exists (nothing decrypted)."""
        return self._crossing.versions(ids)

    def take(self, ids: Sequence[str]) -> list[tuple[Memory, npt.NDArray[np.float32]]]:
        """The current version of each memory in ``ids`` that exists (and opens), with its
        vector, in the order given."""
        return self._crossing.take(ids)

    def texts(self) -> list[Memory]:
        """Every memory of the persona (the current version; quarantined ones left out),
        without an audit entry: for a crossing's planning inside its own audited step."""
        return self._crossing.texts()

    def delete(self, expected_versions: Mapping[str, int]) -> int:
        """Delete memories (with their history) if each is still at the version given;
        :class:`ConflictError` (nothing deleted) if any changed or vanished."""
        return self._crossing.delete(expected_versions)

    def matching(self, flt: Filter) -> list[str]:
        """Ids of every memory passing ``flt`` (the index is brought up to date first)."""
        return self._crossing.matching(flt)

    def nearest(self, vectors: npt.NDArray[np.float32], k: int) -> list[list[tuple[str, float]]]:
        """For each vector, the ids and cosine similarities of its ``k`` nearest memories."""
        return self._crossing.nearest(vectors, k)

    @property
    def embedder(self) -> Embedder:
        return self._crossing.embedder

    def reembed(self, commit: Callable[[], None], progress: Progress | None = None) -> int:
        """Re-embed every memory with this session's embedder; ``commit`` runs inside the
        writing transaction (to record the persona's new embedder and the audit entry).

        The bulk is embedded outside any transaction; then, under the store's writer lock,
        every memory changed or added meanwhile is embedded again from its current version,
        and each vector is written only onto the version it was sealed for. So a concurrent
        update is never paired with a vector of its old text or sealed for its old version.
        """
        return self._crossing.reembed(commit, progress)
