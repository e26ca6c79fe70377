"""How a session answers ``recall``: its arguments checked, the index searched (dense and
keyword ranks fused), and the hits opened — widening the search while superseded memories
take places, and dropping hits whose rows are gone (deleted by another process, or
quarantined) so they never take the places of live memories.

The query's embedding and the keyword half of a hybrid search (the query's tokens and
analysis, the filter, BM25) overlap: the bundled model's inference releases the GIL. With a
:class:`~severance.embedders.base.QueryEmbedder` (the bundled model) and a loaded index, the
query is embedded on the caller's thread and the keyword half runs on a worker thread, started
when the model starts (``embed_query`` says when): the worker has the model's whole run for
its part and is done when the vector arrives, so no thread has to wake on the way to the
results (the other way round, the caller waited for the worker to get its model running and
then to hand the vector back, two thread wake-ups on the critical path). To wake an index (a
first recall), or with another embedder, the query is embedded on the worker while the caller
does the rest. A query the embedder has cached is answered at once, without a thread; an
embedder that answers faster than a thread hand-off (a test double) is called inline.

A loaded index is checked against the store where the hits are fetched, in the same read
(:meth:`~severance.backends.base.PersonaRows.payloads_and_high_water`): if another process
changed the persona meanwhile, the index catches up and the search runs again.

Also the one filter builder (kind, tags, time) that ``recall`` and ``memories`` share.
A :class:`Recaller` is built by its :class:`~severance.session.Session` from the same
collaborators; the session holds its lock and checks it is open.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from . import validate
from .backends.base import PayloadRow, PersonaRows, VectorRows
from .embedders import Embedder
from .embedders.base import QueryEmbedder
from .errors import InvalidInputError
from .model import Memory, Page, Recall, to_epoch
from .quarantine import RowReader
from .search import Filter, Fusion, Hit, PersonaIndex, SearchMode, tokenize
from .search.query import QueryAnalysis, analyze
from .search.ranking import KeywordStage
from .session_index import IndexKeeper

__all__ = [
    "CLOCK",
    "OVERLAP",
    "OVERLAP_CHOOSES",
    "OVERLAP_FROM",
    "PROBE_EVERY",
    "Recaller",
    "check_page",
    "check_recall",
    "memory_filter",
]

#: Whether a hybrid recall may embed its query on the worker thread at all (tests turn it
#: off to compare results both ways).
OVERLAP = True

#: Embedding the query goes to the worker thread when the embedder's recent single queries
#: took at least this long (seconds, a moving average); faster ones are called inline, where
#: a hand-off between threads would cost more than it hides.
OVERLAP_FROM = 0.0005

#: Whether a recaller chooses, from its own timings, between embedding on the worker and
#: embedding inline. Overlapping pays while a second core is free; on a machine whose cores
#: are all busy the two threads only take turns, and the hand-offs cost more than they hide.
#: So each way's time for a whole hybrid recall is kept (a moving average), the faster way
#: is taken, and the other is tried again every
#: :data:`PROBE_EVERY` choices, as the machine's load changes. Off: always overlap.
OVERLAP_CHOOSES = True
PROBE_EVERY = 16
#: The clock those timings are read from (tests inject one).
CLOCK: Callable[[], float] = time.perf_counter

T = TypeVar("T")
#: How a recall gets its vector: "inline" (no choice: cached, dense or keyword mode, or an
#: embedder faster than a hand-off), "chose inline" (overlapping was the slower way lately),
#: "ahead" (a query embedder and a loaded index: the query embedded on the caller's thread,
#: the keyword half on the worker) or "worker" (embedded on the worker while the caller does
#: the keyword half: another embedder, or a wake to do).
Way = Literal["inline", "chose inline", "ahead", "worker"]
#: What the keyword half gives: the query's tokens, its analysis (hybrid searches) and the
#: index's keyword stage.
KeywordHalf = tuple[list[str], QueryAnalysis | None, KeywordStage]


def memory_filter(
    kind: str | Iterable[str] | None,
    tags: Iterable[str] | None,
    since: datetime | str | None,
    until: datetime | str | None,
) -> Filter:
    """The filter ``recall`` and ``memories`` take: ``kind`` (one or several), ``tags`` (all
    must be present), ``since`` / ``until`` on when the memory occurred."""
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


def check_recall(
    query: str,
    k: int,
    mode: SearchMode,
    recency: float,
    fusion: Fusion | None,
    min_similarity: float | None,
) -> float | None:
    """Refuse bad ``recall`` arguments (nothing searched); the similarity floor, checked."""
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
    if fusion is not None and not isinstance(fusion, Fusion):
        raise InvalidInputError("fusion must be a severance.search.Fusion")
    return validate.similarity(min_similarity) if min_similarity is not None else None


class Recaller:
    """Searches one persona's index and opens what it finds."""

    def __init__(
        self,
        rows: PersonaRows,
        reader: RowReader,
        keeper: IndexKeeper,
        embedder: Embedder,
        vector_rows: VectorRows | None,
        confirm_alive: Callable[[], None],
    ) -> None:
        self._rows = rows
        self._reader = reader
        self._keeper = keeper
        self._embedder = embedder
        self._query_embedder = embedder if isinstance(embedder, QueryEmbedder) else None
        self._vector_rows = vector_rows
        self._confirm_alive = confirm_alive
        #: Seconds one query's embedding took, on average (None: not measured yet).
        self._embed_seconds: float | None = None
        #: Overlapped or not -> seconds a hybrid recall took, on average (see
        #: :data:`OVERLAP_CHOOSES`); and how many choices were made.
        self._pace: dict[bool, float | None] = {True: None, False: None}
        self._choices = 0
        self._worker: ThreadPoolExecutor | None = None
        self._worker_lock = threading.Lock()
        # A forked child inherits the executor but not its thread (submit would wait forever)
        # and maybe a lock held by another thread: the worker belongs to the process that made it.
        self._worker_pid = os.getpid()

    def close(self) -> None:
        """Let the embedding thread go (it also goes when this recaller is collected)."""
        self._forget_if_forked()
        with self._worker_lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)

    def _forget_if_forked(self) -> None:
        if self._worker_pid != os.getpid():
            self._worker, self._worker_lock = None, threading.Lock()
            self._worker_pid = os.getpid()

    def _embed(self, query: str) -> npt.NDArray[np.float32]:
        t0 = time.perf_counter()
        vector = self._embedder.embed([query])[0]
        took = time.perf_counter() - t0
        last = self._embed_seconds
        self._embed_seconds = took if last is None else 0.8 * last + 0.2 * took
        return np.asarray(vector, dtype=np.float32)

    def _start_embedding(
        self, query: str, mode: SearchMode, loaded: bool
    ) -> tuple[npt.NDArray[np.float32] | None, Future[npt.NDArray[np.float32]] | None, Way]:
        """The query's vector at once (the embedder has it cached: nothing is embedded
        again), or its embedding started on the worker thread, or neither; and how the
        rest goes (see :data:`Way`; whether it overlaps, when that was a choice to time,
        see :data:`OVERLAP_CHOOSES`)."""
        if mode == "keyword":
            return None, None, "inline"
        if self._query_embedder is not None:
            hit = self._query_embedder.cached_query(query)
            if hit is not None:
                return np.asarray(hit[0], dtype=np.float32), None, "inline"
        took = self._embed_seconds
        if (
            mode != "hybrid"
            or not OVERLAP
            or (self._query_embedder is None and took is not None and took < OVERLAP_FROM)
        ):
            return None, None, "inline"  # nothing to overlap with, or faster than a hand-off
        if not self._choose():
            return None, None, "chose inline"
        if self._query_embedder is not None and loaded:
            return None, None, "ahead"  # embedded here, the keyword half on the worker
        return None, self._embed_later(query), "worker"

    def _choose(self) -> bool:
        """Whether this hybrid recall overlaps its embedding (see :data:`OVERLAP_CHOOSES`)."""
        if not OVERLAP_CHOOSES:
            return True
        self._choices += 1
        on, off = self._pace[True], self._pace[False]
        if on is None or off is None:
            return on is None  # each way timed once first
        faster = on <= off
        return faster != (self._choices % PROBE_EVERY == 0)

    def _note_pace(self, overlapped: bool, seconds: float) -> None:
        last = self._pace[overlapped]
        self._pace[overlapped] = seconds if last is None else 0.8 * last + 0.2 * seconds

    def _submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """``fn(*args)`` started on the worker thread (made on first use)."""
        self._forget_if_forked()
        with self._worker_lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="severance-embed")
                # The thread ends with this recaller (its session), not at interpreter exit.
                weakref.finalize(self, self._worker.shutdown, wait=False)
            return self._worker.submit(fn, *args)

    def _embed_later(self, query: str) -> Future[npt.NDArray[np.float32]]:
        """The query's embedding started on the worker thread."""
        embedder = self._query_embedder
        if embedder is None:
            return self._submit(self._embed, query)
        running = threading.Event()
        future = self._submit(self._embed_query, embedder, query, running)
        # Until its model runs, the worker needs the interpreter's lock, which this thread's
        # keyword half would hold for up to a switch interval at a time: let it get there
        # first, so the inference and the keyword half overlap instead of taking turns.
        running.wait()
        return future

    @staticmethod
    def _embed_query(
        embedder: QueryEmbedder, query: str, running: threading.Event
    ) -> npt.NDArray[np.float32]:
        try:
            return np.asarray(embedder.embed_query(query, running.set)[0], dtype=np.float32)
        finally:
            running.set()  # also when it failed before its model ran

    def _embed_ahead(
        self, embedder: QueryEmbedder, index: PersonaIndex, query: str, flt: Filter, fusion: Fusion
    ) -> tuple[npt.NDArray[np.float32], KeywordHalf]:
        """The query embedded on this thread while the worker does the keyword half.

        This way round, nothing waits for a thread to wake on the way to the results: the
        worker starts when the model does (``embed_query``'s signal; until then it would
        take the interpreter's lock from this thread's tokenising), has the model's whole
        run for its part (which needs no vector), and is done when the vector arrives. Had
        it not even started by then (a busy machine), the keyword half is done here."""
        go = threading.Event()
        abandoned: list[bool] = []
        ahead = self._submit(self._keyword_half_when, go, abandoned, index, query, flt, fusion)
        try:
            vector = np.asarray(embedder.embed_query(query, go.set)[0], dtype=np.float32)
        except BaseException:
            abandoned.append(True)
            go.set()
            if not ahead.cancel():
                wait([ahead])  # nothing of this recall outlives it
            raise
        go.set()  # an embedder that never said its model ran
        if ahead.cancel():
            return vector, _keyword_half(index, query, flt, "hybrid", fusion)
        half = ahead.result()
        assert half is not None
        return vector, half

    @staticmethod
    def _keyword_half_when(
        go: threading.Event,
        abandoned: list[bool],
        index: PersonaIndex,
        query: str,
        flt: Filter,
        fusion: Fusion,
    ) -> KeywordHalf | None:
        go.wait()
        if abandoned:
            return None
        return _keyword_half(index, query, flt, "hybrid", fusion)

    def _open_hits(
        self,
        hits: Sequence[Hit],
        memories: dict[str, Memory],
        verify: Callable[[], PersonaIndex] | None,
    ) -> tuple[list[str], bool]:
        """Open the hits not opened yet into ``memories``; the ids of those that are gone
        (no row) or quarantined (it fails authentication), in rank order.

        Only the payloads are read (the hits are ranked already: their vectors are not
        needed), and each is opened by the session's reader with every check of a ``get``.
        With ``verify`` (the session's sync), the store's high water comes in the same read:
        if the index has not seen it, the index is synced, and if that changed it nothing is
        opened and True is returned (the caller searches again).
        """
        fresh = [h.id for h in hits if h.id not in memories]
        rows: dict[str, PayloadRow] = {}
        if verify is not None:
            rows, high = self._rows.payloads_and_high_water(fresh)
            if not self._keeper.saw(high):
                # Written meanwhile, by another process or for another persona: catch up.
                # The hits stand unless that changed this index.
                before = self._keeper.unsnapshotted
                verify()
                self._keeper.saw_through(high)
                if self._keeper.unsnapshotted != before:
                    return [], True
        elif fresh:
            rows = self._rows.get_payloads(fresh)
        for memory_id in fresh:
            row = rows.get(memory_id)
            memory = self._reader.open(row) if row is not None else None
            if memory is not None:
                memories[memory_id] = memory
        return [h.id for h in hits if h.id not in memories], False

    def page(
        self,
        sync: Callable[[], PersonaIndex],
        offset: int,
        limit: int,
        newest_first: bool,
        flt: Filter | None,
    ) -> Page:
        """A page of memories in the order they were learned (quarantined ones skipped),
        all of them or those passing ``flt`` (found by the index, brought up to date)."""
        if flt is not None:
            found = self._rows.get_payloads(list(sync().ids_matching(flt)))
            ordered = sorted(
                found.values(), key=lambda r: (r.learned_at, r.seq, r.id), reverse=newest_first
            )
            window = ordered[offset : offset + limit]
            chosen = tuple(m for m in map(self._reader.open, window) if m is not None)
            end = offset + len(window)
            return Page(chosen, len(ordered), end if end < len(ordered) else None)
        total = self._rows.count()
        rows = self._rows.page(offset, limit, newest_first)
        if total == 0:
            self._confirm_alive()
        opened = [self._reader.open(r) for r in rows]
        items = tuple(m for m in opened if m is not None)
        end = offset + len(rows)
        return Page(items, total, end if end < total else None)

    def recall(
        self,
        sync: Callable[[], PersonaIndex],
        query: str,
        k: int,
        flt: Filter,
        *,
        recency: float,
        mode: SearchMode,
        fusion: Fusion,
        min_similarity: float | None,
        include_superseded: bool,
    ) -> list[Recall]:
        """The ``k`` best memories for ``query`` (arguments already checked) in the index
        ``sync`` brings up to date: an index not loaded yet is synced while the query is
        being embedded (as the keyword half is done), a loaded one is checked where the hits
        are fetched."""
        started = CLOCK()
        # A loaded index is checked against the store where the hits are fetched, in the
        # same read (one round trip less on PostgreSQL); an index not loaded yet wakes.
        loaded = self._keeper.current
        vector, pending, way = self._start_embedding(query, mode, loaded is not None)
        if way == "ahead" and loaded is not None and self._query_embedder is not None:
            vector, (tokens, analysis, prepared) = self._embed_ahead(
                self._query_embedder, loaded, query, flt, fusion
            )
            index = loaded
        else:
            try:
                index = loaded if loaded is not None else sync()
                # The keyword half needs no vector: done while the worker embeds the query.
                tokens, analysis, prepared = _keyword_half(index, query, flt, mode, fusion)
            except BaseException:
                if pending is not None:
                    wait([pending])  # nothing of this recall outlives it
                raise
            if pending is not None:
                vector = pending.result()
            elif vector is None and mode != "keyword":
                vector = self._embed(query)
        verify = loaded is not None
        depth = wanted = k
        memories: dict[str, Memory] = {}
        checked = False
        dense_hits = (
            self._vector_rows.nearest(vector, max(100, 4 * k))
            if self._vector_rows is not None and vector is not None
            else None
        )
        while True:
            hits = index.search(
                vector,
                tokens,
                depth,
                flt,
                mode=mode,
                fusion=fusion,
                recency=float(recency),
                now=time.time(),
                dense_hits=dense_hits,
                analysis=analysis,
                min_similarity=min_similarity,
                prepared=prepared,
            )
            ghosts, changed = self._open_hits(hits, memories, sync if verify else None)
            verify = False
            if changed:
                index = sync()  # up to date already: search again, as if synced before
                continue
            if not ghosts and not include_superseded:
                # Superseded memories are left out: they may take places, so the search
                # widens until k current ones are found (the index cuts to depth).
                current = [h for h in hits if memories[h.id].valid_until is None]
                if len(current) < wanted and len(hits) >= depth:
                    depth *= 2
                    continue
                hits = current
            if not ghosts:
                break
            if not checked and len(ghosts) == len(hits):
                self._confirm_alive()  # every hit gone: was the persona erased?
                checked = True
            # Deleted by another process in a way our sync did not see (its tombstone was
            # dropped by another session's snapshot), or quarantined: drop them and search
            # again, so they do not take the places of live memories.
            self._keeper.remove(ghosts)
        if way != "inline":
            # The whole recall, not only until the vector: what runs after an overlapped
            # embedding may run slower (caches the model's run left cold on this core).
            self._note_pace(way != "chose inline", CLOCK() - started)
        return [
            Recall(
                memory=memories[hit.id],
                score=hit.score,
                dense_rank=hit.dense_rank,
                keyword_rank=hit.keyword_rank,
                dense_score=hit.dense_score,
                keyword_score=hit.keyword_score,
            )
            for hit in hits[:wanted]
        ]


def _keyword_half(
    index: PersonaIndex, query: str, flt: Filter, mode: SearchMode, fusion: Fusion
) -> KeywordHalf:
    """What a search can do before it has the query's vector: the query's tokens and
    analysis, and the index's keyword stage (:meth:`PersonaIndex.prepare`)."""
    tokens = tokenize(query) if mode != "dense" else []
    analysis = analyze(query) if mode == "hybrid" else None
    prepared = index.prepare(tokens, flt, mode, fusion.skip_addressed, idf_power=fusion.idf_power)
    return tokens, analysis, prepared


def _epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)


def check_page(limit: int, offset: int) -> None:
    """Refuse a bad page of ``memories`` (1 to 1000 from a non-negative offset)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInputError("limit must be an integer from 1 to 1000")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
        raise InvalidInputError("offset must be a non-negative integer")
