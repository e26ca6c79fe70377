"""The life of one awake persona's index: wake it, keep it in step with the rows, migrate it.

A session holds the index, the last ``seq`` it has seen and a count of changes not yet in a
snapshot; these functions do the work on them and hand the new values back, so the session
keeps only thin call sites. They are handed the persona's rows and a way to open one row
(which needs the persona's key): nothing here decrypts by itself.

* :func:`wake` — from the encrypted snapshot plus the rows changed after it, or, when there is
  no snapshot or it fails authentication or parsing, rebuilt from the rows (the source of
  truth; the rejected snapshot is dropped and reported).
* :func:`catch_up` — apply what changed since the last ``seq`` seen (also writes by other
  processes).
* A snapshot written before the re-ranking features existed (format 1 to 3) or the identity
  keys of the duplicate check (format 1 to 6), or with other feature or identity rules or
  another tokenizer than today's (their versions are in the snapshot), is migrated on wake:
  its vectors and graph are kept and only the features, the identity keys or the keyword
  postings are derived again from the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import MemoryRow, PersonaRows, Snapshot
from .search import Doc, PersonaIndex
from .search.container import Buffer
from .search.documents import features
from .search.identity import identity_key
from .search.keyword import tokenize

__all__ = ["SCAN_BATCH", "Awake", "catch_up", "seen_after_write", "wake"]

#: Rows read per batch when rebuilding or migrating.
SCAN_BATCH = 2_000

#: One row as the index keeps it (decrypted by the caller), or None for a row the caller
#: cannot open (it is then kept out of the index).
OpenRow = Callable[[MemoryRow], Doc | None]
#: One row's decrypted payload (text, kind, tags, metadata, ...).
OpenPayload = Callable[[MemoryRow], Mapping[str, Any]]


@dataclass
class Awake:
    """An index and where it stands: ``seen`` is the last ``seq`` it includes, ``pending``
    how many of its changes are in no snapshot yet.

    ``checked`` is the store's high water the index was last found up to date with (other
    personas' writes included). It is kept apart from ``seen``, which is the persona's own
    last change and becomes a snapshot's watermark: a watermark past the persona's changes
    would tell the anchor that its tombstones may have been dropped, and a row deleted
    behind the store's back would go unreported."""

    index: PersonaIndex
    seen: int
    pending: int
    checked: int = 0

    def saw(self, high_water: int) -> bool:
        """Whether every change up to the store's ``high_water`` is in the index."""
        return max(self.seen, self.checked) >= high_water


def wake(
    rows: PersonaRows,
    dimension: int,
    open_snapshot: Callable[[Snapshot], Buffer],
    open_row: OpenRow,
    open_payload: OpenPayload,
    rejected: Callable[[], object],
    *,
    migrated_pending: int,
    deleted: Callable[[str], object] | None = None,
) -> Awake:
    """The persona's index, up to date with its rows. ``rejected`` is called when a snapshot
    is dropped as untrustworthy; a migrated snapshot counts ``migrated_pending`` changes, so
    that the caller snapshots it again."""
    try:
        snapshot = rows.read_snapshot()
        if snapshot is not None:
            index = PersonaIndex.from_bytes(open_snapshot(snapshot))
            pending = 0
            if index.missing_features or index.stale_keywords or index.stale_identities:
                _migrate(index, rows, open_payload)
                pending = migrated_pending
            return catch_up(
                Awake(index, snapshot.watermark, pending), rows, open_row, deleted=deleted
            )
    except Exception:
        # A snapshot that is torn, fails authentication or parsing is never trusted; the
        # rows are the source of truth, so rebuild from them.
        rows.drop_snapshot()
        rejected()
    index = PersonaIndex(dimension)
    # Every change up to the store's high water has committed, so the scan after it sees
    # them all; later ones the catch-up lists. The mark is the persona's own last change
    # below it, though, not the store's: it becomes the snapshot's watermark, and one past
    # the persona's changes would tell the anchor that its tombstones may have been
    # dropped, so a row deleted behind the store's back would go unreported.
    high_water = rows.high_water()
    seen = 0
    for batch in rows.scan(SCAN_BATCH):
        index.upsert(_docs(batch, open_row))
        seen = max((row.seq for row in batch if row.seq <= high_water), default=seen)
    return catch_up(Awake(index, seen, len(index)), rows, open_row, deleted=deleted)


def catch_up(
    awake: Awake,
    rows: PersonaRows,
    open_row: OpenRow,
    *,
    deleted: Callable[[str], object] | None = None,
) -> Awake:
    """Apply the changes after ``awake.seen`` to ``awake.index`` (in place; returned).
    ``deleted`` is told of every memory deleted since (by anyone)."""
    index = awake.index
    high_water = rows.high_water()
    if awake.saw(high_water):
        # Nothing was written since (the usual case between two recalls), or only for other
        # personas: one read of the store's counter instead of a scan of the changes.
        return awake
    changes = rows.changes_since(awake.seen)
    stale = [mid for mid, seq in changes.changed.items() if index.seq_of(mid) != seq]
    if stale:
        fresh = rows.get_many(stale)
        docs = _docs(fresh.values(), open_row)
        opened = {doc.id for doc in docs}
        for memory_id in stale:
            if memory_id not in opened:
                # Gone again since the change was listed, or not openable: not searchable.
                index.remove(memory_id)
        index.upsert(docs)
        awake.pending += len(fresh)
    gone = list(changes.deleted)
    through = changes.high_water
    if changes.compacted > awake.seen:
        # Another session's snapshot dropped tombstones we had not read: what is missing
        # from the persona's rows now is what was deleted. Read after the changes, so it
        # also covers every deletion up to the snapshot's watermark (later ones are later).
        present = rows.changes_since(0).changed
        gone += [memory_id for memory_id in list(index.slot_of) if memory_id not in present]
        through = max(through, changes.compacted)
    for memory_id in gone:
        if deleted is not None:
            deleted(memory_id)
        if index.remove(memory_id):
            awake.pending += 1
    # No further than the counter read first: a row's seq is not authenticated, and one set
    # far ahead in the database would otherwise move the mark past every later write.
    awake.seen = min(through, max(high_water, awake.seen))
    # Seqs follow commit order, and the changes were read after the counter: every change up
    # to it is in the index now, whichever persona's.
    awake.checked = max(awake.checked, high_water)
    return awake


def _docs(rows: Iterable[MemoryRow], open_row: OpenRow) -> list[Doc]:
    return [doc for doc in map(open_row, rows) if doc is not None]


def _migrate(index: PersonaIndex, rows: PersonaRows, open_payload: OpenPayload) -> None:
    """Derive again from the rows what the snapshot lacks or has from older rules: the
    re-ranking features, the identity keys, the keyword postings (payloads only: the vectors
    and the graph of the snapshot are kept). A row changed since the snapshot is left to
    :func:`catch_up`, which replaces its slot."""
    features_too, keywords_too = index.missing_features, index.stale_keywords
    identities_too = index.stale_identities
    tokens_of: dict[int, list[str]] = {}
    for batch in rows.scan(SCAN_BATCH):
        for row in batch:
            data = open_payload(row)
            if features_too:
                index.set_features(row.id, row.seq, *features(data["text"], data["metadata"]))
            if identities_too and "kind" in data:
                key = identity_key(data["text"], data["kind"], data["tags"], data["metadata"])
                index.set_identity(row.id, row.seq, key)
            slot = index.slot_of.get(row.id)
            if keywords_too and slot is not None and index.seq_of(row.id) == row.seq:
                tokens_of[slot] = tokenize(data["text"])
    if keywords_too:
        index.retokenize(tokens_of)
    index.missing_features = index.stale_identities = False


def seen_after_write(seen: int, seqs: Sequence[int]) -> int:
    """The last ``seq`` an index has seen once the caller wrote rows ``seqs`` (increasing)
    and applied them to it itself. Sequence numbers are store-wide, so when they directly
    follow ``seen`` nothing else was written in between and the next :func:`catch_up` need
    not list them again (after an import, that list would hold every row just written);
    otherwise ``seen`` stays and the next catch-up finds the others' writes as usual."""
    if seqs and seqs[0] == seen + 1 and seqs[-1] == seen + len(seqs):
        return seqs[-1]
    return seen
