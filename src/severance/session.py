"""Session: one persona awake — the only handle through which memories are read or written.

A session is bound to exactly one persona for its whole life. It holds that persona's
:class:`~severance.codec.MemoryCodec` (its data key) and its in-memory index; its storage calls
go through a :class:`PersonaRows` handle bound to the persona's id; none of its methods takes a
persona argument. So "recall from the wrong persona" is not a mistake a caller can make: there
is no way to say it.

A session is built from its collaborators (rows, codec, embedder, transaction, audit, close
callback) and knows nothing of the :class:`~severance.store.Store` that made it. Crossings use
its named methods inside one transaction (see :mod:`severance.session_crossing`).

This module holds the persona's verbs and their checks (open, not erased, valid input, the
session's lock); the work behind them is in modules handed the same collaborators: writing
in :mod:`severance.session_writes`, recall and listing in :mod:`severance.session_recall`,
extraction in :mod:`severance.session_extract`, and the index — loaded on the first read and
kept in step with other processes' writes — in :mod:`severance.session_index`.

Quarantine: a row that fails authentication (a swapped or corrupted payload or vector) never
makes the persona unreadable. Listing, recall, export and the index skip it; ``get`` and
``history`` raise :class:`~severance.errors.QuarantinedError` naming it; it is reported by id
in :meth:`Session.quarantined` and in a ``memory_quarantined`` audit entry, and ``forget``
removes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from . import chat, duplicates, validate
from .audit import persona_view, to_entries
from .backends.base import AuditRow, PersonaRow, PersonaRows, VectorRows
from .codec import MemoryCodec
from .drafts import Patch, to_draft
from .embedders import Embedder
from .errors import (
    IntegrityError,
    InvalidInputError,
    MemoryNotFoundError,
    PersonaErasedError,
    PersonaNotFoundError,
    QuarantinedError,
    SessionClosedError,
)
from .extract import Extraction, ExtractorSettings, meta_key, open_settings
from .model import AuditEntry, Memory, MemoryDraft, Notice, Page, Recall, from_epoch
from .quarantine import RowReader
from .search import Fusion, PersonaIndex, SearchMode
from .session_crossing import Crossing, CrossingAPI, Progress
from .session_extract import PrimedEmbedder, extract_with
from .session_index import SCAN_BATCH, IndexKeeper
from .session_recall import Recaller, check_page, check_recall, memory_filter
from .session_writes import MemoryWriter, embedded_batches

__all__ = ["Session"]

#: A ``remember_many`` of at least this many memories wakes the index before writing.
WAKE_INDEX_FOR_IMPORT = 512
Audit = Callable[..., object]


class Session(CrossingAPI):
    """A persona awake. Create one with :meth:`Store.enter`; use it as a context manager."""

    def __init__(
        self,
        persona: PersonaRow,
        *,
        rows: PersonaRows,
        codec: MemoryCodec,
        embedder: Embedder,
        transaction: Callable[[], AbstractContextManager[None]],
        audit: Audit,
        audit_rows: Callable[[str], Sequence[AuditRow]],
        on_close: Callable[[Session], None],
        read_meta: Callable[[], Mapping[str, str]] = dict,
        vector_rows: VectorRows | None = None,
        floor: str | None = None,
        expires_at: float | None = None,
        notices: Sequence[Notice] = (),
        audited: bool = True,
    ) -> None:
        self._persona = persona
        self._rows = rows
        self._codec = codec
        self._transaction = transaction
        self._audit = audit
        self._audit_rows = audit_rows
        self._on_close = on_close
        # The store's settings (signed; see severance.records): the extractor's live there.
        self._read_meta = read_meta
        # Indexed mode (PostgreSQL + pgvector): plain vectors also live in the database and
        # dense search runs there. Decided once, at wake.
        self._vector_rows = vector_rows
        self._lock = threading.RLock()
        self._reader = RowReader(codec, self._report_quarantined)
        self._keeper = IndexKeeper(rows, codec, self._reader, self._report_rejected_snapshot)
        self._primed = PrimedEmbedder(embedder)
        self._writer = MemoryWriter(
            rows,
            codec,
            self._primed,
            self._reader,
            self._keeper,
            vector_rows,
            transaction,
            self._writing,
        )
        self._recaller = Recaller(
            rows, self._reader, self._keeper, embedder, vector_rows, self._confirm_alive
        )
        parts = (rows, codec, embedder, self._reader, self._keeper, vector_rows)
        super().__init__(
            Crossing(*parts, guard=self._open, writing=self._writing, transaction=transaction)
        )
        self._closed = False
        self._erased = False
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
        if self._erased:
            raise PersonaErasedError("this persona was erased (clean slate); it holds nothing")
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
                if self._keeper.snapshot_due():
                    self._write_snapshot()
            except PersonaErasedError:
                pass
            finally:
                self._keeper.drop()
                self._recaller.close()
                self._on_close(self)

    def abandon(self, *, erased: bool = False) -> None:
        """Close without writing anything: a crossing's helper session, or (``erased``) a
        session whose persona a clean slate is erasing — its calls then raise
        :class:`PersonaErasedError`."""
        with self._lock:
            self._erased = self._erased or erased
            if self._closed:
                return
            self._closed = True
            self._keeper.drop()
            self._recaller.close()
            self.audited = False
            self._on_close(self)

    def _became_erased(self) -> None:
        """The persona's row is gone (a clean slate, maybe by another process)."""
        self._erased = True
        self._keeper.drop()
        self.audited = False
        if not self._closed:
            self._closed = True
            # As close() does: nothing else ends the embedding thread while a caller holds us.
            self._recaller.close()
            self._on_close(self)

    @contextmanager
    def _open(self) -> Iterator[None]:
        """Holds the session's lock, checked open, for the block."""
        with self._lock:
            self._check_open()
            yield

    def _confirm_alive(self) -> None:
        """Called when a read finds less than expected: was the persona erased meanwhile?"""
        if not self._rows.alive():
            self._became_erased()
            self._check_open()

    @property
    def search_index(self) -> PersonaIndex | None:
        """The loaded index, if any (diagnostics, tests, benchmarks; not a stable API)."""
        return self._keeper.current

    @property
    def closed(self) -> bool:
        return self._closed

    # -- quarantine ---------------------------------------------------------------------------
    def _report_quarantined(self, memory_id: str, version: int) -> None:
        self._audit(
            "memory_quarantined",
            self._persona.id,
            self._persona.name,
            memory_id=memory_id,
            version=version,
        )

    def _report_rejected_snapshot(self) -> None:
        self._audit("snapshot_rejected", self._persona.id, self._persona.name)

    def quarantined(self) -> list[str]:
        """Ids of the memories found failing authentication (skipped by every read; they can
        only be forgotten). Complete once the index has loaded (after any recall or export)."""
        with self._open():
            return self._reader.ids()

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
            if not self._keeper.loaded and len(drafts) >= WAKE_INDEX_FOR_IMPORT:
                # Wake the index first so the writes below keep it up to date from the
                # plaintext and vectors in hand, rather than the first recall rebuilding it
                # from the rows (decrypting and re-tokenising everything just written).
                self._sync()
            embedder = self._primed
            known = self._writer.known()

            def write(fresh: list[MemoryDraft]) -> list[Memory]:
                stored: list[Memory] = []
                for batch, vectors in embedded_batches(fresh, embedder, batch_size):
                    # put() tells the index of rows inside this transaction: a refused COMMIT
                    # makes it forget them and their seqs (which the next writer gets again).
                    with self._all_or_nothing():
                        # Another process may have stored one of these since they were
                        # checked: look again holding the persona's write lock, so that two
                        # writers of the same memory at the same moment store it once.
                        already = duplicates.already_stored(batch, known, self._writer.live)
                        keep = [i for i, m in enumerate(already) if m is None]
                        new = iter(self.put([batch[i] for i in keep], vectors[keep]))
                    stored.extend(m if m is not None else next(new) for m in already)
                    self.counts["remembered"] += len(keep)
                    if progress is not None:
                        progress(len(stored), len(fresh))
                return stored

            return duplicates.remember_once(drafts, known, self._writer.live, write)

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
        with self._open():
            value = self._read_meta().get(meta_key(self._persona.id))
            return open_settings(value, self._codec.sealer, self._codec.store_id, self._persona.id)

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
        :class:`~severance.errors.ExtractorError` and changes nothing. All is then written in
        one transaction, or (:class:`~severance.errors.ExtractionConflictError`: a memory it
        revises was changed or forgotten meanwhile) nothing. ``settings`` overrides the
        stored ones for this run.
        """
        self._check_open()
        return extract_with(
            settings if settings is not None else self.extractor(),
            self.persona,
            conversations,
            get=self.get,
            add=self._remember_with_provenance,
            revise=self._revise,
            episodes=self.remember_many,
            recall=self.recall,
            atomic=self._all_or_nothing,
            embedder=self._primed,
            audit=lambda **counts: self._audit(
                "extraction", self._persona.id, self._persona.name, **counts
            ),
            keep_turns=keep_turns,
            progress=progress,
        )

    @contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """One transaction under the persona's write lock; if it rolls back, what this session
        learned of its writes (index, duplicate leads, counts) goes too."""
        with self._lock:
            counts = dict(self.counts)
            try:
                with self._writing(), self._transaction():
                    self._rows.lock()
                    yield
            except BaseException:
                self._keeper.drop()  # the duplicate check's leads are the index's too
                self.counts.update(counts)
                raise

    def _remember_with_provenance(
        self, drafts: Sequence[MemoryDraft], provenance: Sequence[Mapping[str, Any]]
    ) -> list[Memory]:
        with self._open():
            clean = [to_draft(d) for d in drafts]
            stored = self.put(
                clean, self._primed.embed([d.text for d in clean]), [[p] for p in provenance]
            )
            self.counts["remembered"] += len(stored)
            return stored

    def put(
        self,
        drafts: Sequence[MemoryDraft],
        vectors: npt.NDArray[np.float32],
        provenance: Sequence[Sequence[Mapping[str, Any]]] | None = None,
    ) -> list[Memory]:
        """Write validated drafts with their vectors as new memories, in one transaction (the
        caller's, if one is open). ``provenance`` gives each its origin entries."""
        with self._open():
            return self._writer.put(drafts, vectors, provenance)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turns "the persona row is gone" from the back-end into this session's erasure."""
        try:
            yield
        except PersonaNotFoundError:
            self._became_erased()
            raise PersonaErasedError(
                "this persona was erased (clean slate); nothing was written"
            ) from None

    def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        kind: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
    ) -> Memory:
        """Change a memory, keeping the previous version in its history.

        The change is applied to the current version: if another process updates the memory
        in between, it is re-applied on top of that update (never lost, never a lost update).
        """
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            patch = Patch(
                text=validate.text(text) if text is not None else None,
                kind=validate.kind(kind) if kind is not None else None,
                tags=validate.tags(tags) if tags is not None else None,
                metadata=validate.metadata(metadata) if metadata is not None else None,
                occurred_at=validate.when(occurred_at, "occurred_at"),
            )
            return self._revise(memory_id, patch)

    def _revise(self, memory_id: str, patch: Patch) -> Memory:
        """Apply ``patch`` (validated; with its provenance, if any) as a new version."""
        with self._open():
            memory, changed = self._writer.apply(memory_id, patch, self._confirm_alive)
            self.counts["updated"] += changed
            return memory

    def annotate(
        self, memory_id: str, *, add_tags: Sequence[str], provenance: Mapping[str, Any]
    ) -> Memory:
        """Add tags and a provenance entry to a memory (a merge by a crossing)."""
        with self._open():
            return self._revise(memory_id, Patch(add_tags=tuple(add_tags), origin=provenance))

    def forget(self, memory_id: str) -> None:
        """Delete a memory for good, with its whole history (a quarantined one too)."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            with self._writing():
                gone = self._rows.delete(memory_id)
            if not gone:
                self._confirm_alive()
                raise MemoryNotFoundError(memory_id)
            self._reader.forget(memory_id)
            self._keeper.remove([memory_id])
            self.counts["forgotten"] += 1

    # -- reading ------------------------------------------------------------------------------
    def get(self, memory_id: str) -> Memory:
        """One memory by id. Ids of other personas' memories are simply not found."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            row = self._rows.get(memory_id)
            if row is None:
                self._confirm_alive()
                raise MemoryNotFoundError(memory_id)
            return self._reader.open_or_raise(row)

    def history(self, memory_id: str) -> list[Memory]:
        """Every version of a memory, oldest first; the current version is last."""
        with self._lock:
            self._check_open()
            validate.memory_id(memory_id)
            row = self._rows.get(memory_id)
            if row is None:
                self._confirm_alive()
                raise MemoryNotFoundError(memory_id)
            current = self._reader.open_or_raise(row)
            try:
                versions = [
                    self._codec.past(old, row.learned_at) for old in self._rows.history(memory_id)
                ]
            except IntegrityError:
                raise QuarantinedError(memory_id) from None
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
        """A page of memories in the order they were learned (quarantined ones skipped).

        Filters as :meth:`recall` takes them: ``kind`` (one or several), ``tags`` (all must
        be present), ``since`` / ``until`` on when the memory occurred.
        """
        with self._lock:
            self._check_open()
            check_page(limit, offset)
            filtered = any(f is not None for f in (kind, tags, since, until))
            flt = memory_filter(kind, tags, since, until) if filtered else None
            return self._recaller.page(self._sync, offset, limit, newest_first, flt)

    def export(self) -> list[Memory]:
        """Every memory of the persona, decrypted (logged in the audit chain as an export).
        Quarantined memories are left out and named in the audit entry."""
        with self._lock:
            self._check_open()
            out: list[Memory] = []
            for batch in self._rows.scan(SCAN_BATCH):
                out.extend(m for m in map(self._reader.open, batch) if m is not None)
            if not out:
                self._confirm_alive()
            self._audit(
                "export",
                self._persona.id,
                self._persona.name,
                memories=len(out),
                **({"quarantined": self._reader.ids()} if self._reader.ids() else {}),
            )
            return out

    def log_import(self, importer: str, **counts: int) -> None:
        """Log one ``import`` audit entry for this persona (the importer's name and counts)."""
        with self._open():
            self._audit("import", self._persona.id, self._persona.name, importer=importer, **counts)

    def count(self) -> int:
        with self._open():
            n = self._rows.count()
            if n == 0:
                self._confirm_alive()
            return n

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
            min_similarity = check_recall(query, k, mode, recency, fusion, min_similarity)
            flt = memory_filter(kind, tags, since, until)
            results = self._recaller.recall(
                self._sync,
                query,
                k,
                flt,
                recency=recency,
                mode=mode,
                fusion=fusion or Fusion(),
                min_similarity=min_similarity,
                include_superseded=include_superseded,
            )
            self.counts["recalled"] += 1
            return results

    # -- the persona's own audit trail --------------------------------------------------------
    def audit(self) -> list[AuditEntry]:
        """The audit entries about this persona (never another persona's)."""
        with self._open():
            return [persona_view(e) for e in to_entries(self._audit_rows(self._persona.id))]

    def notices(self) -> list[Notice]:
        """Overrides and reintegrations that touched this persona since it last woke normally
        (as of when this session woke), and memories found quarantined since."""
        with self._open():
            notices = list(self._notices)
            if self._reader.ids():
                notices.append(
                    Notice(
                        from_epoch(time.time()),
                        "memory_quarantined",
                        {"memory_ids": self._reader.ids()},
                    )
                )
            return notices

    # -- the index ------------------------------------------------------------------------------
    def _sync(self) -> PersonaIndex:
        return self._keeper.sync()

    def _write_snapshot(self) -> None:
        with self._writing():
            self._keeper.write_snapshot()

    def checkpoint(self) -> None:
        """Write the encrypted index snapshot now, so the next wake starts from it."""
        with self._open():
            self._write_snapshot()
