"""How a session answers ``recall``: its arguments checked, the index searched (dense and
keyword ranks fused), and the hits opened — widening the search while superseded memories
take places, and dropping hits whose rows are gone (deleted by another process, or
quarantined) so they never take the places of live memories.

The query is embedded on a worker thread while the keyword half of a hybrid search (the
query's tokens and analysis, the filter, BM25) runs on the caller's: the bundled model's
inference releases the GIL, so a recall costs about the embedding plus the dense half and
the ranking, not the sum of everything. An embedder that answers faster than a thread
hand-off (a cached query, a test double) is called inline instead.

Also the one filter builder (kind, tags, time) that ``recall`` and ``memories`` share.
A :class:`Recaller` is built by its :class:`~severance.session.Session` from the same
collaborators; the session holds its lock and checks it is open.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime

import numpy as np
import numpy.typing as npt

from . import validate
from .backends.base import PersonaRows, VectorRows
from .embedders import Embedder
from .errors import InvalidInputError
from .model import Memory, Page, Recall, to_epoch
from .quarantine import RowReader
from .search import Filter, Fusion, PersonaIndex, SearchMode, tokenize
from .search.query import analyze
from .session_index import IndexKeeper

__all__ = ["OVERLAP", "OVERLAP_FROM", "Recaller", "check_page", "check_recall", "memory_filter"]

#: Whether a hybrid recall may embed its query on the worker thread at all (tests turn it
#: off to compare results both ways).
OVERLAP = True

#: Embedding the query goes to the worker thread when the embedder's recent single queries
#: took at least this long (seconds, a moving average); faster ones are called inline, where
#: a hand-off between threads would cost more than it hides.
OVERLAP_FROM = 0.0005


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
        self._vector_rows = vector_rows
        self._confirm_alive = confirm_alive
        #: Seconds one query's embedding took, on average (None: not measured yet).
        self._embed_seconds: float | None = None
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

    def _embed_later(self, query: str) -> Future[npt.NDArray[np.float32]] | None:
        """The query's embedding started on the worker thread, or None when it is better
        done inline (see :data:`OVERLAP_FROM`)."""
        took = self._embed_seconds
        if not OVERLAP or (took is not None and took < OVERLAP_FROM):
            return None
        self._forget_if_forked()
        with self._worker_lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="severance-embed")
                # The thread ends with this recaller (its session), not at interpreter exit.
                weakref.finalize(self, self._worker.shutdown, wait=False)
            return self._worker.submit(self._embed, query)

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
            found = self._rows.get_many(list(sync().ids_matching(flt)))
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
        index: PersonaIndex,
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
        """The ``k`` best memories for ``query`` (arguments already checked)."""
        pending = self._embed_later(query) if mode == "hybrid" else None
        try:
            tokens = tokenize(query) if mode != "dense" else []
            analysis = analyze(query) if mode == "hybrid" else None
            # The keyword half needs no vector: done while the worker embeds the query.
            prepared = index.prepare(
                tokens, flt, mode, fusion.skip_addressed, idf_power=fusion.idf_power
            )
        except BaseException:
            if pending is not None:
                wait([pending])  # nothing of this recall outlives it
            raise
        vector: npt.NDArray[np.float32] | None = None
        if pending is not None:
            vector = pending.result()
        elif mode != "keyword":
            vector = self._embed(query)
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
            rows = self._rows.get_many([h.id for h in hits])
            for h in hits:
                if h.id in rows and h.id not in memories:
                    memory = self._reader.open(rows[h.id])
                    if memory is not None:
                        memories[h.id] = memory
            ghosts = [h.id for h in hits if h.id not in memories]
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
            if not checked and not rows:
                self._confirm_alive()  # every hit gone: was the persona erased?
                checked = True
            # Deleted by another process in a way our sync did not see (its tombstone was
            # dropped by another session's snapshot), or quarantined: drop them and search
            # again, so they do not take the places of live memories.
            self._keeper.remove(ghosts)
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


def _epoch_or_none(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)


def check_page(limit: int, offset: int) -> None:
    """Refuse a bad page of ``memories`` (1 to 1000 from a non-negative offset)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInputError("limit must be an integer from 1 to 1000")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
        raise InvalidInputError("offset must be a non-negative integer")
