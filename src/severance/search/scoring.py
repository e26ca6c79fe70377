"""Small per-search helpers over slots: cosines computed once, places in a ranked list, and
repeats moved after the distinct results."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .dense import DenseIndex

__all__ = ["QUERY_SLACK", "REPEAT_COSINE", "Cosines", "ranks", "repeat_candidates", "repeats_last"]


def ranks(
    ranked: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    marks: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.int64]:
    """The 1-based place of each of ``slots`` in ``ranked`` (0: not in it). ``marks``, an
    array indexed by slot holding 0 (a :class:`.scratch.Scratch`'s), is used and put back."""
    if marks is not None:
        marks[ranked] = np.arange(1, len(ranked) + 1)
        found: npt.NDArray[np.int64] = marks[slots]
        marks[ranked] = 0
        return found
    out = np.zeros(len(slots), dtype=np.int64)
    if len(ranked) and len(slots):
        sort = np.argsort(ranked, kind="stable")
        at = np.clip(np.searchsorted(ranked, slots, sorter=sort), 0, len(ranked) - 1)
        place = sort[at]
        hit = ranked[place] == slots
        out[hit] = place[hit] + 1
    return out


#: Two results whose vectors are at least this close (cosine), with the same BM25 score,
#: speaker and kind, are one message said twice. Not 1.0: the same text embedded in another
#: batch differs in the last bits (measured: cosine 0.9999999).
REPEAT_COSINE = 0.999999
# Unit vectors that close have cosines to the query at most this far apart: a cheap first cut
# before any vector is read.
QUERY_SLACK = math.sqrt(2.0 * (1.0 - REPEAT_COSINE)) + 1e-6


def repeat_candidates(
    head: int, dense: npt.NDArray[np.float64] | None
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Pairs (later, earlier) of the first ``head`` results that may repeat each other: every
    pair, or with cosines to the query only those whose cosines are close (found by sorting
    them: a few pairs instead of ``head ** 2``). The window is a little wider than
    ``QUERY_SLACK``; the caller applies the exact test."""
    if dense is None:
        later, earlier = np.nonzero(np.tri(head, k=-1, dtype=np.bool_))
        return later, earlier
    order = np.argsort(dense[:head], kind="stable")
    ranked = dense[:head][order]
    ends = np.searchsorted(ranked, ranked + 2.0 * QUERY_SLACK, side="right")
    spans = ends - np.arange(1, head + 1)
    total = int(spans.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    first = np.repeat(np.arange(head), spans)
    # The j-th pair of position i pairs it with position i + 1 + j.
    starts = np.cumsum(spans) - spans
    second = first + 1 + (np.arange(total) - np.repeat(starts, spans))
    a, b = order[first], order[second]
    return np.maximum(a, b), np.minimum(a, b)


def repeats_last(
    scores: npt.NDArray[np.float64],
    slots: npt.NDArray[np.int64],
    matrix: npt.NDArray[np.floating],
    dense: npt.NDArray[np.float64] | None,
    keyword: npt.NDArray[np.float32] | None,
    speakers: npt.NDArray[np.int32],
    kinds: npt.NDArray[np.int32],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None:
    """Ranked results (best first, ``scores``) with every repeat among the first ones
    (``slots``, rows of ``matrix``, the index's unit vectors) moved after the distinct ones: (new
    order of all results, new scores), or None when nothing repeats. ``dense`` and
    ``keyword`` are those results' cosines to the query and BM25 scores (None: not
    searched), ``speakers`` and ``kinds`` their codes.

    A repeat is a result with the same speaker, kind and BM25 score as one ranked above it and
    a vector within :data:`REPEAT_COSINE` of its — the same message said again ("ok",
    "nothing much, just chilling", a note stored on two days), which tells nothing the first
    did not. The index keeps no text for a search to compare; these stand for it. A repeat
    keeps its place among the repeats, and its score is capped at the last distinct
    result's, so scores still fall along the list. Nothing is dropped.
    """
    head = min(len(slots), len(scores))
    if head < 2:
        return None
    later, earlier = repeat_candidates(head, dense)
    same = (speakers[later] == speakers[earlier]) & (kinds[later] == kinds[earlier])
    if keyword is not None:
        same &= keyword[later] == keyword[earlier]
    if dense is not None:
        same &= np.abs(dense[later] - dense[earlier]) <= QUERY_SLACK
    later, earlier = later[same], earlier[same]
    if len(later) == 0:
        return None
    # Cosines in float64 with the norms divided out: a persona with an HNSW graph keeps its rows
    # in float16, whose rounding moves a unit vector's norm by ~1e-4, far more than the
    # 1e-6 that tells a repeat from a near-repeat. Only the candidate pairs are widened.
    a = matrix[slots[later]].astype(np.float64)
    b = matrix[slots[earlier]].astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    close = np.einsum("ij,ij->i", a, b) >= REPEAT_COSINE * norms
    repeat = np.zeros(head, dtype=np.bool_)
    repeat[later[close]] = True
    if not repeat.any():
        return None
    distinct = np.flatnonzero(~repeat)
    order = np.concatenate([distinct, np.flatnonzero(repeat), np.arange(head, len(scores))])
    new = scores[order]
    floor = new[len(distinct) - 1]
    new[len(distinct) : head] = np.minimum(new[len(distinct) : head], floor)
    return order, new


class Cosines:
    """Cosine similarity of slots to one query, each slot computed at most once per search
    (the dense ranking, fusion, context and the results all ask for overlapping slots).

    Computed values are kept in ``cache``, an array indexed by slot holding NaN for a slot
    not computed (a :class:`.scratch.Scratch`'s ``cosines``, lent for the search); call
    :meth:`release` when done, which puts those entries back to NaN."""

    def __init__(
        self,
        dense: DenseIndex,
        query: npt.NDArray[np.float32],
        every: npt.NDArray[np.float32] | None = None,
        cache: npt.NDArray[np.float32] | None = None,
    ) -> None:
        self._dense = dense
        self._query = query
        self._every = every  # every slot's score, when exact search computed them all
        if every is None and cache is None:
            cache = np.full(dense.n + 1, np.nan, dtype=np.float32)
        self._cache = cache
        self._computed: list[npt.NDArray[np.int64]] = []

    def score(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """float32 scores of ``slots`` (no repeats), computed and remembered."""
        if self._every is not None:
            every: npt.NDArray[np.float32] = self._every[slots]
            return every
        cache = self._cache
        assert cache is not None
        values = cache[slots]
        miss = np.isnan(values)
        if miss.any():
            fresh_slots = slots[miss]  # a copy: the caller's array may change later
            fresh = self._dense.scores_at(fresh_slots, self._query)
            values[miss] = fresh
            cache[fresh_slots] = fresh
            self._computed.append(fresh_slots)
        return values

    def release(self) -> None:
        """Forget every computed value (their cache entries back to NaN)."""
        if self._cache is not None:
            for slots in self._computed:
                self._cache[slots] = np.nan
        self._computed = []

    def __call__(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return self.score(slots).astype(np.float64)
