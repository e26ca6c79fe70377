"""Session: one persona awake — the only handle through which memories are read or written.

A session is bound to exactly one persona for its whole life. It holds that persona's data
key and its in-memory index; its storage calls go through a :class:`PersonaRows` handle bound
to the persona's id; none of its methods takes a persona argument. So "recall from the wrong
persona" is not a mistake a caller can make: there is no way to say it.

The index is loaded lazily on the first read (from the encrypted snapshot plus the rows
changed after it) and kept in step before every read by asking the back-end what changed
since the last sequence number it saw — which also picks up writes made by other processes.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import chat, duplicates, index_lifecycle, validate
from .audit import to_entries
from .backends.base import HistoryRow, MemoryRow, PersonaRow, Snapshot, VectorRows
from .drafts import to_draft
from .errors import (
    InvalidInputError,
    MemoryNotFoundError,
    NoExtractorError,
    SessionClosedError,
)
from .extract import ChatClient, Extraction, ExtractorSettings, Writer, meta_key, open_settings
from .extract.run import extract as run_extraction
from .extract.run import relevant_memories
from .index_snapshots import open_snapshot, seal_snapshot
from .model import (
    AuditEntry,
    Memory,
    MemoryDraft,
    Notice,
    Page,
    Recall,
    from_epoch,
    new_id,
    to_epoch,
)
from .seal import Sealer, aad
from .search import Doc, Filter, Fusion, PersonaIndex, SearchMode, tokenize
from .search.dense import pack_vector, unpack_vector
from .search.index import document
from .search.query import analyze

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Session"]

#: Snapshot the index on close once this many changes were applied since the last snapshot.
SNAPSHOT_MIN_CHANGES = 256
#: A ``remember_many`` of at least this many memories wakes the index before writing.
WAKE_INDEX_FOR_IMPORT = 512
_SCAN_BATCH = 2_000
Progress = Callable[[int, int], None]


class Session:
    """A persona awake. Create one with :meth:`Store.enter`; use it as a context manager."""

    def __init__(
        self,
        store: Store,
        persona: PersonaRow,
        data_key: bytes,
        floor: str | None,
        expires_at: float | None = None,
        notices: Sequence[Notice] = (),
        audited: bool = True,
    ) -> None:
        self._store = store
        self._persona = persona
        self._sealer = Sealer(data_key)
        self._rows = store._backend.rows(persona.id)
        # Indexed mode (PostgreSQL + pgvector): plain vectors also live in the database and
        # dense search runs there. Decided once, at wake.
        self._vector_rows: VectorRows | None = None
        if (
            store._backend.indexed_vectors
            and isinstance(self._rows, VectorRows)
            and self._rows.vector_dimension() is not None
        ):
            self._vector_rows = self._rows
        self._lock = threading.RLock()
        self._index: PersonaIndex | None = None
        self._known: duplicates.KnownMemories | None = None
        self._seen = 0
        self._unsnapshotted = 0
        self._closed = False
        self._expires_at = expires_at
        self._notices = tuple(notices)
        self.audited = audited
        self.floor = floor
        self.counts = {"remembered": 0, "recalled": 0, "updated": 0, "forgotten": 0}

    # -- identity and lifetime ----------------------------------------------------------------
    @property
    def persona(self) -> str:
        """The name of the awake persona."""
        return self._persona.name

    @property
    def persona_id(self) -> str:
        return self._persona.id

    @property
    def expires_at(self) -> datetime | None:
        """When an override session stops working (None for a normal session)."""
        return None if self._expires_at is None else from_epoch(self._expires_at)

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError("this session is closed")
        if self._expires_at is not None and time.time() >= self._expires_at:
            raise SessionClosedError("this override has expired; the persona is asleep again")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Put the persona back to sleep: snapshot the index if worthwhile, log the exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._index is not None and self._unsnapshotted >= SNAPSHOT_MIN_CHANGES:
                    self._write_snapshot()
            finally:
                self._store._session_closed(self)
                self._index = None

    def _abandon(self) -> None:
        """Close without writing anything (the persona is being erased)."""
        with self._lock:
            self._closed = True
            self._index = None
            self.audited = False
            self._store._session_closed(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- sealing ------------------------------------------------------------------------------
    def _aad(self, memory_id: str, field: str, version: int) -> bytes:
        return aad(self._store.store_id, self._persona.id, memory_id, field, str(version))

    def _seal_payload(
        self,
        memory_id: str,
        version: int,
        text: str,
        kind: str,
        tags: Sequence[str],
        metadata: Mapping[str, Any],
        source: str | None,
        provenance: Sequence[Mapping[str, Any]] = (),
    ) -> bytes:
        body = json.dumps(
            {
                "text": text,
                "kind": kind,
                "tags": list(tags),
                "metadata": metadata,
                "source": source,
                "provenance": list(provenance),
            },
            separators=(",", ":"),
        ).encode()
        return self._sealer.seal(body, self._aad(memory_id, "payload", version))

    def _open_payload(self, memory_id: str, version: int, blob: bytes) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self._sealer.open(blob, self._aad(memory_id, "payload", version))
        )
        return data

    def _seal_vector(self, memory_id: str, version: int, vector: npt.NDArray[np.float32]) -> bytes:
        return self._sealer.seal(pack_vector(vector), self._aad(memory_id, "vector", version))

    def _open_vector(self, row: MemoryRow) -> npt.NDArray[np.float32]:
        raw = self._sealer.open(row.vector, self._aad(row.id, "vector", row.version))
        return unpack_vector(raw, self._persona.dimension)

    def _to_memory(self, row: MemoryRow) -> Memory:
        data = self._open_payload(row.id, row.version, row.payload)
        return Memory(
            id=row.id,
            text=data["text"],
            kind=data["kind"],
            tags=tuple(data["tags"]),
            metadata=data["metadata"],
            occurred_at=from_epoch(row.occurred_at),
            learned_at=from_epoch(row.learned_at),
            updated_at=from_epoch(row.updated_at),
            version=row.version,
            source=data.get("source"),
            provenance=tuple(data.get("provenance") or ()),
        )

    # -- writing ------------------------------------------------------------------------------
    def remember(
        self,
        text: str,
        *,
        kind: str = "note",
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        source: str | None = None,
    ) -> Memory:
        """Store one memory; when this returns it is durably on disk."""
        draft = MemoryDraft(
            text=text,
            kind=kind,
            tags=tags,  # type: ignore[arg-type]
            metadata=metadata,  # type: ignore[arg-type]
            occurred_at=occurred_at,  # type: ignore[arg-type]
            source=source,
        )
        return self.remember_many([draft])[0]

    def remember_many(
        self,
        items: Iterable[MemoryDraft | Mapping[str, Any] | str],
        *,
        progress: Progress | None = None,
        batch_size: int = 256,
    ) -> list[Memory]:
        """Store many memories with batched embedding: the fast path for imports.

        Every item is validated before anything is written. Items are committed in batches of
        ``batch_size``; each batch is atomic and durable when the next one starts.
        """
        with self._lock:
            self._check_open()
            if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
                raise InvalidInputError("remember_many takes a list of memories")
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise InvalidInputError("batch_size must be a positive integer")
            drafts = [to_draft(item) for item in items]
            if self._index is None and len(drafts) >= WAKE_INDEX_FOR_IMPORT:
                # Wake the index first so the writes below keep it up to date from the
                # plaintext and vectors in hand, rather than the first recall rebuilding it
                # from the rows (decrypting and re-tokenising everything just written).
                self._sync()
            embedder = self._store.embedder

            def write(fresh: list[MemoryDraft]) -> list[Memory]:
                stored: list[Memory] = []
                for start in range(0, len(fresh), batch_size):
                    batch = fresh[start : start + batch_size]
                    vectors = embedder.embed([d.text for d in batch])
                    stored.extend(self._write_new(batch, vectors))
                    if progress is not None:
                        progress(len(stored), len(fresh))
                self.counts["remembered"] += len(stored)
                return stored

            if self._known is None:
                self._known = duplicates.KnownMemories(self._rows, self._to_memory)
            return duplicates.remember_once(drafts, self._known, self._live, write)

    def _live(self, memory_ids: list[str]) -> dict[str, Memory]:
        return {mid: self._to_memory(row) for mid, row in self._rows.get_many(memory_ids).items()}

    def remember_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        session: str | None = None,
        at: datetime | str | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        progress: Progress | None = None,
        infer: bool = False,
        keep_turns: bool = False,
    ) -> list[Memory]:
        """Remember a conversation: chat messages (``role``/``content``) or turns, in order.

        Each turn becomes an ``episode`` memory; see :mod:`severance.chat` for the shapes, how
        a missing timestamp or session is filled in and which messages are skipped.

        With ``infer=True`` the persona's extractor turns the conversation into facts instead
        (see :meth:`extract`; ``keep_turns=True`` stores the turns as episodes as well) and
        the facts added or changed are returned.
        """
        conversation = chat.read_conversation(
            messages, session=session, at=at, tags=tags, metadata=metadata, source=source
        )
        if infer:
            return self.extract([conversation], keep_turns=keep_turns, progress=progress).memories
        if keep_turns:
            raise InvalidInputError("keep_turns goes with infer=True")
        return self.remember_many(conversation.drafts, progress=progress)

    # -- extraction (optional; see severance.extract) -------------------------------------------
    def extractor(self) -> ExtractorSettings | None:
        """This persona's extractor settings, opened with its own key (None if it has none)."""
        with self._lock:
            self._check_open()
            value = self._store._backend.get_meta().get(meta_key(self._persona.id))
            return open_settings(value, self._sealer, self._store.store_id, self._persona.id)

    def extract(
        self,
        conversations: Iterable[chat.Conversation],
        *,
        keep_turns: bool = False,
        progress: Progress | None = None,
        settings: ExtractorSettings | None = None,
    ) -> Extraction:
        """Turn conversations into facts with this persona's extractor.

        Only this persona's endpoint is called, and each prompt holds only the new turns and
        the memories this session's own recall finds relevant. Every call is made and its
        answer validated before anything is written: a failure (endpoint down, timeout,
        invalid answer after one retry, an id it was not shown) raises an
        :class:`~severance.errors.ExtractorError` and changes nothing. ``settings`` overrides
        the stored ones for this run.
        """
        self._check_open()
        runs = list(conversations) if isinstance(conversations, Iterable) else [conversations]
        if not all(isinstance(c, chat.Conversation) for c in runs):
            raise InvalidInputError("extract takes conversations (see severance.chat)")
        chosen = settings if settings is not None else self.extractor()
        if chosen is None:
            raise NoExtractorError(
                f"persona {self.persona!r} has no extractor: set one with "
                f"`severance persona set {self.persona} --extractor SPEC`"
            )
        writer = Writer(
            get=self.get,
            add=self._remember_with_provenance,
            revise=lambda memory_id, text, meta, origin: self.update(
                memory_id, text, metadata=meta, _provenance=origin
            ),
            episodes=self.remember_many,
        )
        with ChatClient(chosen) as client:
            result = run_extraction(
                runs,
                client,
                lambda texts, limit: relevant_memories(self.recall, texts, limit),
                writer,
                keep_turns=keep_turns,
                progress=progress,
            )
        self._store._audit.append(
            "extraction",
            self._persona.id,
            self._persona.name,
            extractor=chosen.spec.protocol,
            calls=result.cost.calls,
            added=len(result.added),
            updated=len(result.updated),
            superseded=len(result.superseded),
        )
        return result

    def _remember_with_provenance(
        self, drafts: Sequence[MemoryDraft], provenance: Sequence[Mapping[str, Any]]
    ) -> list[Memory]:
        with self._lock:
            self._check_open()
            clean = [to_draft(d) for d in drafts]
            stored = self._write_new(
                clean,
                self._store.embedder.embed([d.text for d in clean]),
                [[p] for p in provenance],
            )
            self.counts["remembered"] += len(stored)
            return stored

    def _write_new(
        self,
        drafts: Sequence[MemoryDraft],
        vectors: npt.NDArray[np.float32],
        provenance: Sequence[Sequence[Mapping[str, Any]]] | None = None,
    ) -> list[Memory]:
        now = time.time()
        rows: list[MemoryRow] = []
        memories: list[Memory] = []
        origins = provenance if provenance is not None else [()] * len(drafts)
        for draft, vector, origin in zip(drafts, vectors, origins, strict=True):
            memory_id = new_id("m_")
            occurred = to_epoch(draft.occurred_at) if draft.occurred_at else now
            rows.append(
                MemoryRow(
                    id=memory_id,
                    seq=0,
                    version=1,
                    learned_at=now,
                    occurred_at=occurred,
                    updated_at=now,
                    payload=self._seal_payload(
                        memory_id,
                        1,
                        draft.text,
                        draft.kind,
                        draft.tags,
                        draft.metadata,
                        draft.source,
                        origin,
                    ),
                    vector=self._seal_vector(memory_id, 1, vector),
                )
            )
            memories.append(
                Memory(
                    id=memory_id,
                    text=draft.text,
                    kind=draft.kind,
                    tags=draft.tags,
                    metadata=draft.metadata,
                    occurred_at=from_epoch(occurred),
                    learned_at=from_epoch(now),
                    updated_at=from_epoch(now),
                    version=1,
                    source=draft.source,
                    provenance=tuple(dict(o) for o in origin),
                )
            )
        with self._store._backend.transaction():
            seqs = self._rows.insert(rows)
            if self._vector_rows is not None:
                self._vector_rows.set_vectors({r.id: v for r, v in zip(rows, vectors, strict=True)})
        if self._index is not None:
            self._index.upsert(
                [
                    document(m.id, seq, m.kind, m.tags, r.occurred_at, now, v, m.text, m.metadata)
                    for m, r, seq, v in zip(memories, rows, seqs, vectors, strict=True)
                ]
            )
            self._unsnapshotted += len(rows)
            self._seen = index_lifecycle.seen_after_write(self._seen, seqs)
        return memories

    def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        kind: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        _provenance: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Change a memory, keeping the previous version in its history."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            new_text = validate.text(text) if text is not None else None
            new_kind = validate.kind(kind) if kind is not None else None
            new_tags = validate.tags(tags) if tags is not None else None
            new_meta = validate.metadata(metadata) if metadata is not None else None
            new_when = validate.when(occurred_at, "occurred_at")
            row = self._rows.get(memory_id)
            if row is None:
                raise MemoryNotFoundError(memory_id)
            old = self._to_memory(row)
            merged = Memory(
                id=old.id,
                text=new_text if new_text is not None else old.text,
                kind=new_kind or old.kind,
                tags=new_tags if new_tags is not None else old.tags,
                metadata=new_meta if new_meta is not None else old.metadata,
                occurred_at=new_when or old.occurred_at,
                learned_at=old.learned_at,
                updated_at=old.updated_at,
                version=old.version,
                source=old.source,
                provenance=old.provenance + ((dict(_provenance),) if _provenance else ()),
            )
            if merged == old:
                return old
            now = time.time()
            version = row.version + 1
            if merged.text != old.text:
                vector = self._store.embedder.embed([merged.text])[0]
            else:
                vector = self._open_vector(row)
            new_row = MemoryRow(
                id=row.id,
                seq=0,
                version=version,
                learned_at=row.learned_at,
                occurred_at=to_epoch(merged.occurred_at),
                updated_at=now,
                payload=self._seal_payload(
                    row.id,
                    version,
                    merged.text,
                    merged.kind,
                    merged.tags,
                    merged.metadata,
                    merged.source,
                    merged.provenance,
                ),
                vector=self._seal_vector(row.id, version, vector),
            )
            previous = HistoryRow(
                memory_id=row.id,
                version=row.version,
                occurred_at=row.occurred_at,
                updated_at=row.updated_at,
                replaced_at=now,
                payload=row.payload,
            )
            with self._store._backend.transaction():
                seq = self._rows.replace(new_row, previous)
                if self._vector_rows is not None and merged.text != old.text:
                    self._vector_rows.set_vectors({row.id: vector})
            if self._known is not None:
                self._known.touched(row.id)
            if self._index is not None:
                self._index.upsert(
                    [
                        document(
                            row.id,
                            seq,
                            merged.kind,
                            merged.tags,
                            new_row.occurred_at,
                            row.learned_at,
                            vector,
                            merged.text,
                            merged.metadata,
                        )
                    ]
                )
                self._unsnapshotted += 1
            self.counts["updated"] += 1
            return dataclasses.replace(merged, version=version, updated_at=from_epoch(now))

    def forget(self, memory_id: str) -> None:
        """Delete a memory for good, with its whole history."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            if not self._rows.delete(memory_id):
                raise MemoryNotFoundError(memory_id)
            if self._index is not None:
                self._index.remove(memory_id)
                self._unsnapshotted += 1
            self.counts["forgotten"] += 1

    # -- reading ------------------------------------------------------------------------------
    def get(self, memory_id: str) -> Memory:
        """One memory by id. Ids of other personas' memories are simply not found."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            row = self._rows.get(memory_id)
            if row is None:
                raise MemoryNotFoundError(memory_id)
            return self._to_memory(row)

    def history(self, memory_id: str) -> list[Memory]:
        """Every version of a memory, oldest first; the current version is last."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            row = self._rows.get(memory_id)
            if row is None:
                raise MemoryNotFoundError(memory_id)
            current = self._to_memory(row)
            versions = []
            for old in self._rows.history(memory_id):
                data = self._open_payload(memory_id, old.version, old.payload)
                versions.append(
                    Memory(
                        id=memory_id,
                        text=data["text"],
                        kind=data["kind"],
                        tags=tuple(data["tags"]),
                        metadata=data["metadata"],
                        occurred_at=from_epoch(old.occurred_at),
                        learned_at=current.learned_at,
                        updated_at=from_epoch(old.updated_at),
                        version=old.version,
                        source=data.get("source"),
                        provenance=tuple(data.get("provenance") or ()),
                    )
                )
            return [*versions, current]

    def memories(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
        kind: str | Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> Page:
        """A page of memories in the order they were learned.

        Filters as :meth:`recall` takes them: ``kind`` (one or several), ``tags`` (all must
        be present), ``since`` / ``until`` on when the memory occurred.
        """
        with self._lock:
            self._check_open()
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
                raise InvalidInputError("limit must be an integer from 1 to 1000")
            if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
                raise InvalidInputError("offset must be a non-negative integer")
            if any(f is not None for f in (kind, tags, since, until)):
                flt = _filter(kind, tags, since, until)
                rows = self._rows.get_many(list(self._sync().ids_matching(flt)))
                ordered = sorted(
                    rows.values(), key=lambda r: (r.learned_at, r.seq, r.id), reverse=newest_first
                )
                chosen = tuple(self._to_memory(r) for r in ordered[offset : offset + limit])
                end = offset + len(chosen)
                return Page(chosen, len(ordered), end if end < len(ordered) else None)
            total = self._rows.count()
            items = tuple(self._to_memory(r) for r in self._rows.page(offset, limit, newest_first))
            end = offset + len(items)
            return Page(items, total, end if end < total else None)

    def export(self) -> list[Memory]:
        """Every memory of the persona, decrypted (logged in the audit chain as an export)."""
        with self._lock:
            self._check_open()
            out = [self._to_memory(row) for batch in self._rows.scan(_SCAN_BATCH) for row in batch]
            self._store._audit.append(
                "export", self._persona.id, self._persona.name, memories=len(out)
            )
            return out

    def log_import(self, importer: str, **counts: int) -> None:
        """Log one ``import`` audit entry for this persona (the importer's name and counts)."""
        with self._lock:
            self._check_open()
            self._store._audit.append(
                "import", self._persona.id, self._persona.name, importer=importer, **counts
            )

    def count(self) -> int:
        with self._lock:
            self._check_open()
            return self._rows.count()

    def recall(
        self,
        query: str,
        k: int = 10,
        *,
        kind: str | Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        recency: float = 0.0,
        mode: SearchMode = "hybrid",
        fusion: Fusion | None = None,
        min_similarity: float | None = None,
        include_superseded: bool = False,
    ) -> list[Recall]:
        """The memories that best answer ``query``: dense and keyword ranks, fused.

        Filters: ``kind`` (one or several), ``tags`` (all must be present), ``since`` /
        ``until`` on when the memory occurred. ``recency`` in [0, 1] blends in a 30-day
        half-life decay. ``mode`` picks ``hybrid`` (default), ``dense`` or ``keyword``.
        ``min_similarity`` drops results that share no keyword with the query and whose
        cosine similarity is below it (useful to answer "nothing" rather than a best guess).
        Superseded memories (see :mod:`severance.extract.supersession`) are left out unless
        ``include_superseded`` asks for history too.
        """
        with self._lock:
            self._check_open()
            validate.query(query)
            validate.k(k)
            if mode not in ("hybrid", "dense", "keyword"):
                raise InvalidInputError("mode must be 'hybrid', 'dense' or 'keyword'")
            if (
                isinstance(recency, bool)
                or not isinstance(recency, int | float)
                or not (0.0 <= recency <= 1.0)
            ):
                raise InvalidInputError("recency must be a number from 0 to 1")
            kinds: frozenset[str] | None = None
            if kind is not None:
                if not isinstance(kind, str | Iterable):
                    raise InvalidInputError("kind must be a kind or a list of kinds")
                kinds = frozenset(
                    [validate.kind(kind)] if isinstance(kind, str) else map(validate.kind, kind)
                )
            if fusion is not None and not isinstance(fusion, Fusion):
                raise InvalidInputError("fusion must be a severance.search.Fusion")
            if min_similarity is not None and (
                isinstance(min_similarity, bool) or not isinstance(min_similarity, int | float)
            ):
                raise InvalidInputError("min_similarity must be a number")
            flt = Filter(
                kinds=kinds,
                tags=frozenset(validate.tags(tags)) if tags is not None else None,
                since=_epoch_or_none(validate.when(since, "since")),
                until=_epoch_or_none(validate.when(until, "until")),
            )
            index = self._sync()
            vector = self._store.embedder.embed([query])[0] if mode != "keyword" else None
            fusion = fusion or Fusion()
            # The index re-ranks and cuts to k itself; superseded memories (filtered out
            # below) can take places, so the search widens until k current ones are found.
            depth = wanted = k
            while True:
                hits = index.search(
                    vector,
                    tokenize(query),
                    depth,
                    flt,
                    mode=mode,
                    fusion=fusion,
                    recency=float(recency),
                    now=time.time(),
                    dense_hits=(
                        self._vector_rows.nearest(vector, max(100, 4 * k))
                        if self._vector_rows is not None and vector is not None
                        else None
                    ),
                    analysis=analyze(query) if mode == "hybrid" else None,
                    min_similarity=min_similarity,
                )
                rows = self._rows.get_many([h.id for h in hits])
                ghosts = [h.id for h in hits if h.id not in rows]
                if not ghosts and not include_superseded:
                    memories = {h.id: self._to_memory(rows[h.id]) for h in hits}
                    current = [h for h in hits if memories[h.id].valid_until is None]
                    if len(current) < wanted and len(hits) >= depth:
                        depth *= 2  # superseded memories took places: look deeper
                        continue
                    hits = current[:wanted]
                if not ghosts:
                    break
                # Deleted by another process in a way our sync did not see (its tombstone was
                # dropped by another session's snapshot): drop them and search again, so they
                # do not take the places of live memories.
                for memory_id in ghosts:
                    index.remove(memory_id)
                self._unsnapshotted += len(ghosts)
            memories = {h.id: self._to_memory(rows[h.id]) for h in hits}
            results = []
            for hit in hits:
                results.append(
                    Recall(
                        memory=memories[hit.id],
                        score=hit.score,
                        dense_rank=hit.dense_rank,
                        keyword_rank=hit.keyword_rank,
                        dense_score=hit.dense_score,
                        keyword_score=hit.keyword_score,
                    )
                )
            self.counts["recalled"] += 1
            return results

    # -- the persona's own audit trail --------------------------------------------------------
    def audit(self) -> list[AuditEntry]:
        """The audit entries about this persona (never another persona's)."""
        with self._lock:
            self._check_open()
            return to_entries(self._store._backend.audit_rows(self._persona.id))

    def notices(self) -> list[Notice]:
        """Overrides and reintegrations that touched this persona since it last woke normally
        (as of when this session woke)."""
        with self._lock:
            self._check_open()
            return list(self._notices)

    # -- the index ------------------------------------------------------------------------------
    def _doc(self, row: MemoryRow) -> Doc:
        data = self._open_payload(row.id, row.version, row.payload)
        return document(
            row.id,
            row.seq,
            data["kind"],
            tuple(data["tags"]),
            row.occurred_at,
            row.learned_at,
            self._open_vector(row),
            data["text"],
            data["metadata"],
        )

    def _load(self) -> PersonaIndex:
        awake = index_lifecycle.wake(
            self._rows,
            self._persona.dimension,
            self._open_snapshot,
            self._doc,
            lambda row: self._open_payload(row.id, row.version, row.payload),
            lambda: self._store._audit.append(
                "snapshot_rejected", self._persona.id, self._persona.name
            ),
            migrated_pending=SNAPSHOT_MIN_CHANGES,
        )
        self._index, self._seen, self._unsnapshotted = awake.index, awake.seen, awake.pending
        return awake.index

    def _sync(self) -> PersonaIndex:
        if self._index is None:
            return self._load()
        awake = index_lifecycle.catch_up(
            index_lifecycle.Awake(self._index, self._seen, self._unsnapshotted),
            self._rows,
            self._doc,
        )
        self._seen, self._unsnapshotted = awake.seen, awake.pending
        return awake.index

    def _open_snapshot(self, snapshot: Snapshot) -> bytearray:
        return open_snapshot(self._sealer, self._store.store_id, self._persona.id, snapshot)

    def _write_snapshot(self) -> None:
        index = self._sync()
        sealed = seal_snapshot(
            self._sealer, self._store.store_id, self._persona.id, self._seen, index.to_bytes()
        )
        self._rows.write_snapshot(sealed)
        self._unsnapshotted = 0

    def checkpoint(self) -> None:
        """Write the encrypted index snapshot now, so the next wake starts from it."""
        with self._lock:
            self._check_open()
            self._write_snapshot()


def _epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)


def _filter(
    kind: str | Iterable[str] | None,
    tags: Iterable[str] | None,
    since: datetime | str | None,
    until: datetime | str | None,
) -> Filter:
    kinds: frozenset[str] | None = None
    if kind is not None:
        if not isinstance(kind, str | Iterable):
            raise InvalidInputError("kind must be a kind or a list of kinds")
        kinds = frozenset(
            [validate.kind(kind)] if isinstance(kind, str) else map(validate.kind, kind)
        )
    return Filter(
        kinds=kinds,
        tags=frozenset(validate.tags(tags)) if tags is not None else None,
        since=_epoch_or_none(validate.when(since, "since")),
        until=_epoch_or_none(validate.when(until, "until")),
    )
