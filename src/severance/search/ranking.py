"""The steps of a search after fusion, over arrays: the best ``wanted`` fused results, the
similarity floor, the query-analysis re-ranking, repeats moved last.

Each step reads the per-slot columns the index hands down (:class:`.columns.Columns`) and the
two candidate lists, never the index itself; :class:`.ranked.Ranked` keeps every value of a
result aligned through the re-orderings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .columns import Columns, SearchMode
from .documents import Filter, Hit
from .hybrid import DenseScorer, Fusion, fuse
from .query import QueryAnalysis, rerank
from .ranked import Ranked
from .scoring import ranks, repeats_last
from .scratch import Scratch

__all__ = ["Candidates", "KeywordStage", "Settings", "best", "hits_of", "rank", "top_of"]

Slots = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class KeywordStage:
    """The part of a search that needs no query vector, done ahead (while the query is
    embedded): the filter's mask (None: no filter), every slot's BM25 score (None: no keyword
    search) and the slots with a positive score passing the filter. Valid for the tokens,
    filter and index ``version`` it was made for; a search given a stale one redoes it."""

    tokens: tuple[str, ...]
    flt: Filter
    version: tuple[int, int]
    mask: npt.NDArray[np.bool_] | None
    scores: npt.NDArray[np.float32] | None
    touched: Slots
    #: Whether a slot addressing someone by a query term was left out of that term's matches
    #: (:attr:`.hybrid.Fusion.skip_addressed`).
    skip_addressed: bool = True
    #: (pool, the best ``pool`` of ``touched`` by score, best first): the keyword candidate
    #: list of a search asking for that many (None: not ranked ahead).
    ranked: tuple[int, list[int]] | None = None
    #: The power each query term's idf was raised to (:attr:`.hybrid.Fusion.idf_power` in a
    #: hybrid search, 1 in a keyword one).
    idf_power: float = 1.0

    def serves(
        self,
        tokens: Sequence[str],
        flt: Filter,
        version: tuple[int, int],
        mode: str,
        fusion: Fusion,
    ) -> bool:
        """Whether this stage is what a ``mode`` search for ``tokens`` under ``flt`` with
        ``fusion``'s keyword settings would prepare on the index at ``version``."""
        return (
            self.version == version
            and self.flt == flt
            and self.tokens == tuple(tokens)
            and (self.scores is not None or mode == "dense")
            and self.skip_addressed == fusion.skip_addressed
            and self.idf_power == (fusion.idf_power if mode == "hybrid" else 1.0)
        )


@dataclass(frozen=True, slots=True)
class Candidates:
    """What the first stage of a search found: the two ranked lists (best first), every
    slot's BM25 score (None: no keyword search) and the cosine of any slots (None: no query
    vector)."""

    dense: Slots
    keyword: Slots
    keyword_scores: npt.NDArray[np.float32] | None
    cosine: DenseScorer | None
    #: Per-slot work arrays lent for the search (None: look-ups by sorting instead).
    scratch: Scratch | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """How a search ranks its fused results (see :meth:`.index.PersonaIndex.search`)."""

    k: int
    wanted: int
    mode: SearchMode
    fusion: Fusion
    recency: float
    half_life_days: float
    now: float
    analysis: QueryAnalysis | None
    min_similarity: float | None


def best(
    seqs: npt.NDArray[np.int64], slots: Slots, values: npt.NDArray[np.float64], k: int
) -> npt.NDArray[np.intp]:
    """Where in ``slots`` the ``k`` best are, highest value first, ties to the lower seq."""
    if len(slots) > k:
        # Keep every slot tied with the k-th best, then break ties by seq.
        kth = np.partition(-values, k - 1)[k - 1]
        keep = np.flatnonzero(-values <= kth)
        order = np.lexsort((seqs[slots[keep]], -values[keep]))[:k]
        chosen: npt.NDArray[np.intp] = keep[order]
        return chosen
    ranked: npt.NDArray[np.intp] = np.lexsort((seqs[slots], -values))[:k]
    return ranked


def top_of(
    seqs: npt.NDArray[np.int64],
    candidates: Slots,
    values: npt.NDArray[np.float32],
    k: int,
) -> list[int]:
    """The best ``k`` of ``candidates`` by ``values``. Ties go to the lower ``seq`` (not the
    lower slot), so the answer depends on the stored rows only, not on how the index was
    built (live writes, snapshot plus tail, or a rebuild order slots differently)."""
    if len(candidates) == 0 or k <= 0:
        return []
    if len(candidates) > k:
        # Keep every candidate tied with the k-th best, then break ties by seq.
        neg = -values
        kth = np.partition(neg, k - 1)[k - 1]
        keep = neg <= kth
        candidates, values = candidates[keep], values[keep]
    order = np.lexsort((seqs[candidates], -values))[:k]
    result: list[int] = candidates[order].tolist()
    return result


def hits_of(
    cols: Columns,
    vectors: npt.NDArray[np.floating],
    ids: Sequence[str],
    found: Candidates,
    mask: npt.NDArray[np.bool_] | None,
    how: Settings,
) -> list[Hit]:
    """The search's results, best first: the candidates fused (a hybrid search; ``mask``
    is its filter, None: none), then ranked (see :func:`rank`); ``ids`` by slot."""
    cosine, keyword_scores = found.cosine, found.keyword_scores
    if how.mode == "dense" and cosine is not None:
        slots, fused = found.dense, cosine(found.dense)
    elif how.mode == "keyword" and keyword_scores is not None:
        slots, fused = found.keyword, keyword_scores[found.keyword].astype(np.float64)
    else:
        slots, fused = fuse(
            cols,
            found.dense,
            found.keyword,
            cosine,
            keyword_scores,
            how.fusion,
            mask,
            found.scratch,
        )
    return rank(cols, vectors, found, slots, fused, how).hits(ids, keyword_scores)


def rank(
    cols: Columns,
    vectors: npt.NDArray[np.floating],
    found: Candidates,
    slots: Slots,
    fused: npt.NDArray[np.float64],
    how: Settings,
) -> Ranked:
    """The best ``how.k`` of the fused ``slots`` (scores ``fused``), best first.

    ``vectors`` are the index's unit vectors by slot (for telling repeats apart)."""
    fusion, cosine, keyword_scores = how.fusion, found.cosine, found.keyword_scores
    if how.recency > 0.0 and len(slots):
        # Blend in an exponential decay by age of the memory (occurred_at).
        age_days = np.maximum(0.0, how.now - cols.occurred[slots]) / 86400.0
        decay = 0.5 ** (age_days / how.half_life_days)
        fused = fused * ((1.0 - how.recency) + how.recency * decay)
    marks = found.scratch.marks if found.scratch is not None else None
    order = best(cols.seqs, slots, fused, how.wanted)
    slots = slots[order]
    ranked = Ranked(
        slots,
        fused[order],
        ranks(found.dense, slots, marks),
        ranks(found.keyword, slots, marks),
        cosine(slots) if cosine is not None else None,
    )
    if how.min_similarity is not None:
        keep = ranked.keyword_rank > 0
        if ranked.cosine is not None:
            keep |= ranked.cosine >= how.min_similarity
        ranked = ranked.take(keep)
    hybrid = how.mode == "hybrid"
    analysis = how.analysis
    if analysis is not None and hybrid and fusion.reranks and analysis.has_signals:
        head = min(len(ranked.slots), fusion.rerank_depth)
        boosted = ranked.fused.copy()
        boosted[:head] = rerank(analysis, cols, ranked.slots[:head], ranked.fused[:head], fusion)
        # Stable: ties keep the fused order.
        again = np.concatenate(
            [np.argsort(-boosted[:head], kind="stable"), np.arange(head, len(ranked.slots))]
        )
        ranked = ranked.rescored(boosted).take(again)
    if hybrid and fusion.repeats_last:
        top = ranked.slots[: max(how.k, fusion.rerank_depth)]
        moved = repeats_last(
            ranked.fused,
            top,
            vectors,
            ranked.cosine[: len(top)] if ranked.cosine is not None else None,
            keyword_scores[top] if keyword_scores is not None else None,
            cols.speaker_codes[top],
            cols.kind_codes[top],
        )
        if moved is not None:
            again, new_scores = moved  # the scores come back in the new order
            ranked = ranked.take(again).rescored(new_scores)
    return ranked.take(slice(None, how.k))
