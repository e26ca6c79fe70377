"""One persona's in-memory search index, kept in step with its rows.

Loaded lazily on the first read (from the encrypted snapshot plus the rows changed after it,
or from the rows alone) and brought up to date before every read by asking the back-end what
changed since the last sequence number it saw — which also picks up writes made by other
processes. Rows that fail authentication are left out (see :mod:`severance.quarantine`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from . import index_lifecycle
from .backends.base import PersonaRows
from .codec import MemoryCodec
from .index_lifecycle import SCAN_BATCH, Awake
from .quarantine import RowReader
from .search import Doc, PersonaIndex

__all__ = ["SCAN_BATCH", "SNAPSHOT_MIN_CHANGES", "IndexKeeper"]

#: Snapshot the index on close once this many changes were applied since the last snapshot.
SNAPSHOT_MIN_CHANGES = 256


class IndexKeeper:
    """The index of one persona and what it has seen of the rows (the work itself is in
    :mod:`severance.index_lifecycle`; this holds its state for one session)."""

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
        self._awake: Awake | None = None

    @property
    def loaded(self) -> bool:
        return self._awake is not None

    @property
    def current(self) -> PersonaIndex | None:
        """The index as loaded (None before the first read), without syncing it."""
        return self._awake.index if self._awake is not None else None

    def saw(self, high_water: int) -> bool:
        """Whether the loaded index is up to date with a store whose high water is this (it
        has seen every change up to it; our own writes included)."""
        return self._awake is not None and self._awake.saw(high_water)

    def saw_through(self, high_water: int) -> None:
        """Note that the index has seen every change up to ``high_water``: called right after
        a :meth:`sync` begun once the store's high water was read as that (sequence numbers
        follow commit order, so the sync's read of the changes found all of them). The mark
        is only checked against, never written as a snapshot's watermark (see
        :class:`~severance.index_lifecycle.Awake`)."""
        if self._awake is not None:
            self._awake.checked = max(self._awake.checked, high_water)

    @property
    def unsnapshotted(self) -> int:
        return self._awake.pending if self._awake is not None else 0

    def drop(self) -> None:
        self._awake = None

    def sync(self) -> PersonaIndex:
        """The index, up to date with every committed change."""
        if self._awake is None:
            self._awake = index_lifecycle.wake(
                self._rows,
                self._codec.dimension,
                self._codec.open_snapshot,
                self._reader.doc,
                self._reader.payload,
                self._on_rejected,
                migrated_pending=SNAPSHOT_MIN_CHANGES,
                deleted=self._reader.forget,
            )
        else:
            index_lifecycle.catch_up(
                self._awake, self._rows, self._reader.doc, deleted=self._reader.forget
            )
        return self._awake.index

    def upsert(self, docs: Sequence[Doc], seqs: Sequence[int] = ()) -> None:
        """Apply our own write (only if loaded: a later load reads it from the rows).
        ``seqs`` are the rows' new sequence numbers, when the write inserted them in order."""
        if self._awake is not None:
            self._awake.index.upsert(docs)
            self._awake.pending += len(docs)
            self._awake.seen = index_lifecycle.seen_after_write(self._awake.seen, seqs)

    def remove(self, memory_ids: Iterable[str]) -> None:
        if self._awake is not None:
            for memory_id in memory_ids:
                if self._awake.index.remove(memory_id):
                    self._awake.pending += 1

    def snapshot_due(self) -> bool:
        return self.unsnapshotted >= SNAPSHOT_MIN_CHANGES

    def write_snapshot(self) -> None:
        index = self.sync()
        assert self._awake is not None  # sync() woke it
        pieces = index.snapshot_pieces()
        self._rows.write_snapshot(self._codec.stream_snapshot(self._awake.seen, pieces))
        self._awake.pending = 0
