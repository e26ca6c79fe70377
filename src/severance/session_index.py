"""One persona's in-memory search index, kept in step with its rows.

Loaded lazily on the first read (from the encrypted snapshot plus the rows changed after it,
or from the rows alone) and brought up to date before every read by asking the back-end what
changed since the last sequence number it saw — which also picks up writes made by other
processes. Rows that fail authentication are left out (see :mod:`severance.quarantine`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .backends.base import PersonaRows
from .codec import MemoryCodec
from .quarantine import RowReader
from .search import Doc, PersonaIndex

__all__ = ["SNAPSHOT_MIN_CHANGES", "IndexKeeper"]

#: Snapshot the index on close once this many changes were applied since the last snapshot.
SNAPSHOT_MIN_CHANGES = 256
_SNAPSHOT_CHUNK = 16 * 1024 * 1024
SCAN_BATCH = 2_000


class IndexKeeper:
    """The index of one persona and what it has seen of the rows."""

    def __init__(
        self,
        rows: PersonaRows,
        codec: MemoryCodec,
        reader: RowReader,
        on_rejected_snapshot: Callable[[], None],
    ) -> None:
        self._rows = rows
        self._codec = codec
        self._reader = reader
        self._on_rejected = on_rejected_snapshot
        self._index: PersonaIndex | None = None
        self._seen = 0
        self.unsnapshotted = 0

    @property
    def loaded(self) -> bool:
        return self._index is not None

    @property
    def current(self) -> PersonaIndex | None:
        """The index as loaded (None before the first read), without syncing it."""
        return self._index

    def drop(self) -> None:
        self._index = None

    def sync(self) -> PersonaIndex:
        """The index, up to date with every committed change."""
        if self._index is None:
            return self._load()
        return self._apply_changes(self._index)

    def upsert(self, docs: Sequence[Doc]) -> None:
        """Apply our own write (only if loaded: a later load reads it from the rows)."""
        if self._index is not None:
            self._index.upsert(docs)
            self.unsnapshotted += len(docs)

    def remove(self, memory_ids: Iterable[str]) -> None:
        if self._index is not None:
            for memory_id in memory_ids:
                if self._index.remove(memory_id):
                    self.unsnapshotted += 1

    def snapshot_due(self) -> bool:
        return self._index is not None and self.unsnapshotted >= SNAPSHOT_MIN_CHANGES

    def write_snapshot(self) -> None:
        index = self.sync()
        data = index.to_bytes()
        pieces = [data[i : i + _SNAPSHOT_CHUNK] for i in range(0, len(data), _SNAPSHOT_CHUNK)]
        self._rows.write_snapshot(self._codec.seal_snapshot(self._seen, pieces))
        self.unsnapshotted = 0

    def _load(self) -> PersonaIndex:
        snapshot = self._rows.read_snapshot()
        if snapshot is not None:
            try:
                index = PersonaIndex.from_bytes(self._codec.open_snapshot(snapshot))
                self._seen = snapshot.watermark
                self._index = index
                return self._apply_changes(index)
            except Exception:
                # A snapshot that fails authentication or parsing is never trusted; the rows
                # are the source of truth, so rebuild from them.
                self._rows.drop_snapshot()
                self._on_rejected()
        index = PersonaIndex(self._codec.dimension)
        self._seen = self._rows.high_water()
        for batch in self._rows.scan(SCAN_BATCH):
            index.upsert(self._reader.docs(batch))
        self.unsnapshotted = len(index)
        self._index = index
        return self._apply_changes(index)

    def _apply_changes(self, index: PersonaIndex) -> PersonaIndex:
        changes = self._rows.changes_since(self._seen)
        stale = [mid for mid, seq in changes.changed.items() if index.seq_of(mid) != seq]
        if stale:
            fresh = self._rows.get_many(stale)
            docs = self._reader.docs(fresh.values())
            # Gone since, or an update that fails authentication (quarantined): not indexed.
            for memory_id in set(stale) - {d.id for d in docs}:
                index.remove(memory_id)
            index.upsert(docs)
            self.unsnapshotted += len(fresh)
        for memory_id in changes.deleted:
            self._reader.forget(memory_id)
            if index.remove(memory_id):
                self.unsnapshotted += 1
        self._seen = changes.high_water
        return index
