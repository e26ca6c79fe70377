"""Fusing dense and keyword rankings into one.

Two methods (:attr:`Fusion.method`):

* ``"convex"`` (the default): ``dense_weight * cosine + keyword_weight * bm25 / best_bm25``
  over the union of both candidate lists. Cosine similarity is already on a fixed scale; BM25
  is not (it grows with the query's length and the rarity of its words), so it is divided by
  the best keyword score of the query (each query word's idf raised to ``idf_power``, 3: a
  rare word of the question outweighs a common one). A strong keyword-only match (a name, a
  rare word) keeps most of its weight, unlike with rank fusion, where a document's score
  depends only on its places in the two lists.
* ``"rrf"``: reciprocal-rank fusion, each list contributing ``weight / (k0 + rank)``. It needs
  no calibration at all; ``k0 = 60`` is the constant of the original paper.

Then **conversation context** (:mod:`.context`): a memory gains ``context`` times the fused
score of its best neighbour — the memory of the same kind said just before or after it, or
``context_decay`` times that for the second one before or after (up to ``context_reach``
places) — so a question matching one turn of an exchange also brings up the rest of it.
Neighbours are found by conversation order, dated within ``context_gap`` of each other (12
hours: a reply the next morning still belongs to the exchange, a message days later does not).
Turns are memories of a kind in ``context_kinds`` (``episode``) and any memory with a speaker
(``"Ana: ..."``): a caller who stores chat messages with plain
``remember(text, occurred_at=...)`` gets the same context as one who stores ``episode`` turns,
while notes that name no speaker lend each other nothing.

The defaults were chosen on two development sets only — LoCoMo conversations 1-5 and
synthetic messaging-app chats (``bench/devset_chat.py``) — and checked on LoCoMo 6-10 (see
``docs/benchmarks.md``, "Ablation").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInputError
from .columns import Columns
from .context import neighbour_array
from .scratch import Scratch

__all__ = [
    "DenseScorer",
    "Fusion",
    "FusionMethod",
    "convex",
    "distinct",
    "fuse",
    "positions",
    "rrf",
    "union",
]

FusionMethod = Literal["convex", "rrf"]


@dataclass(frozen=True)
class Fusion:
    """How dense, keyword and query signals are combined into one ranking.

    ``method``, ``dense_weight``, ``keyword_weight`` and ``k0`` (RRF only) fuse the two lists;
    ``context`` sets the credit a memory gets from its neighbours in conversation order (0
    turns it off), ``context_reach`` how many places each side lend it (the ``d``-th at
    ``context_decay ** (d - 1)``), ``context_kinds`` the kinds that get it and, with
    ``context_speakers``, every memory with a speaker (a neighbour must be of the memory's
    kind), and ``context_gap`` how far apart in seconds two neighbours may be dated
    (``math.inf``: any). The query-analysis boosts
    (:mod:`.query`) re-rank the best ``rerank_depth`` fused results: ``speaker_boost`` for a
    memory whose speaker is named in the question (as its ``speaker`` metadata or the
    ``"Name:"`` its text opens with names them, or, with ``speaker_aliases``, by a name the
    conversation calls them by), ``time_boost`` for a memory that says when something
    happened when the question asks when, ``date_boost`` for a memory that occurred on a
    date the question names. Each multiplies the score by
    ``1 + boost``; 0 turns it off. With ``repeats_last``, a result repeating one ranked above
    it (the same message said again: see :func:`.scoring.repeats_last`) goes after the
    distinct ones among the best ``rerank_depth``. They apply to ``hybrid`` searches only.
    With ``skip_addressed`` (in keyword searches too), a memory does not match, as a keyword,
    the name it addresses its listener by ("good luck today Kate!!" is said to Kate, not about
    her: see :meth:`.keyword.KeywordIndex.scores`).

    ``idf_power`` (hybrid searches; keyword searches are plain BM25) weighs each query word
    by its BM25 idf raised to it: above 1, a rare word of the question counts for more
    against its common ones.
    """

    method: FusionMethod = "convex"
    dense_weight: float = 0.65
    keyword_weight: float = 0.35
    k0: float = 60.0
    context: float = 0.7
    context_kinds: frozenset[str] = frozenset({"episode"})
    context_speakers: bool = True
    context_gap: float = 12 * 3600.0
    context_reach: int = 2
    context_decay: float = 0.85
    speaker_boost: float = 0.2
    speaker_aliases: bool = True
    time_boost: float = 0.3
    date_boost: float = 1.0
    rerank_depth: int = 100
    repeats_last: bool = True
    skip_addressed: bool = True
    idf_power: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in ("convex", "rrf"):
            raise InvalidInputError("fusion method must be 'convex' or 'rrf'")
        numbers = {
            "dense_weight": self.dense_weight,
            "keyword_weight": self.keyword_weight,
            "context": self.context,
            "context_decay": self.context_decay,
            "speaker_boost": self.speaker_boost,
            "time_boost": self.time_boost,
            "date_boost": self.date_boost,
            "idf_power": self.idf_power,
        }
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInputError(f"fusion {name} must be a number")
            if not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"fusion {name} must be a finite number >= 0")
        gap = self.context_gap
        if isinstance(gap, bool) or not isinstance(gap, int | float) or math.isnan(gap) or gap < 0:
            raise InvalidInputError("fusion context_gap must be a number >= 0 (math.inf: any)")
        if self.context_decay > 1:
            raise InvalidInputError("fusion context_decay must be from 0 to 1")
        reach = self.context_reach
        if isinstance(reach, bool) or not isinstance(reach, int) or not 1 <= reach <= 10:
            raise InvalidInputError("fusion context_reach must be an integer from 1 to 10")
        for flag in ("speaker_aliases", "context_speakers", "repeats_last", "skip_addressed"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidInputError(f"fusion {flag} must be true or false")
        if isinstance(self.k0, bool) or not isinstance(self.k0, int | float) or not self.k0 > 0:
            raise InvalidInputError("fusion k0 must be a number > 0")
        if self.idf_power > 4:
            raise InvalidInputError("fusion idf_power must be from 0 to 4")
        if isinstance(self.rerank_depth, bool) or not isinstance(self.rerank_depth, int):
            raise InvalidInputError("fusion rerank_depth must be an integer")
        if not 0 <= self.rerank_depth <= 1000:
            raise InvalidInputError("fusion rerank_depth must be from 0 to 1000")
        if not isinstance(self.context_kinds, frozenset):
            # Accept any collection of kinds; keep the dataclass hashable and immutable.
            kinds = self.context_kinds
            if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
                raise InvalidInputError("fusion context_kinds must be a collection of kinds")
            object.__setattr__(self, "context_kinds", frozenset(kinds))

    @classmethod
    def reciprocal_rank(cls, k0: float = 60.0) -> Fusion:
        """Plain reciprocal-rank fusion with equal weights: no context, no query boosts (the
        default of Severance 0.1)."""
        return cls(
            method="rrf",
            dense_weight=1.0,
            keyword_weight=1.0,
            k0=k0,
            context=0.0,
            speaker_boost=0.0,
            time_boost=0.0,
            date_boost=0.0,
            repeats_last=False,
            skip_addressed=False,
            idf_power=1.0,
        )

    @property
    def reranks(self) -> bool:
        """Whether the query-analysis boosts are on."""
        return self.rerank_depth > 0 and bool(
            self.speaker_boost or self.time_boost or self.date_boost
        )


Slots = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]
#: Cosine similarity to the query of the given slots (as float64).
DenseScorer = Callable[[Slots], Scores]


def distinct(slots: Slots) -> Slots:
    """The distinct values of ``slots``, sorted (what :func:`numpy.unique` gives, without its
    hash table and set-up, which cost more than a sort on a few hundred slots, nor its first
    call's import of ``numpy.ma``, a tenth of a second of a wake)."""
    if len(slots) < 2:
        return slots.copy()
    ordered = np.sort(slots)
    keep = np.empty(len(ordered), dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    found: Slots = ordered[keep]
    return found


def union(first: Slots, second: Slots, marks: npt.NDArray[np.int64]) -> Slots:
    """``first`` followed by the slots of ``second`` not in it (both free of repeats).

    Membership is read from ``marks``, an array indexed by slot holding 0 (a
    :class:`.scratch.Scratch`'s, put back before returning): a look-up per slot instead of a
    binary search (which mispredicts at every step) or :func:`numpy.isin`'s set-up."""
    if len(second) == 0:
        return first
    if len(first) == 0:
        return second
    marks[first] = 1
    fresh = second[marks[second] == 0]
    marks[first] = 0
    return np.concatenate([first, fresh])


def positions(slots: Slots, targets: Slots) -> npt.NDArray[np.intp]:
    """Where each of ``targets`` (all present in ``slots``) is in ``slots``."""
    sort = np.argsort(slots, kind="stable")
    found: npt.NDArray[np.intp] = sort[np.searchsorted(slots, targets, sorter=sort)]
    return found


def rrf(slots: Slots, dense: Slots, keyword: Slots, fusion: Fusion = Fusion()) -> Scores:
    """Reciprocal-rank score of each of ``slots`` from two ranked slot lists (best first);
    0 for a slot in neither."""
    out = np.zeros(len(slots), dtype=np.float64)
    for ranked, weight in ((dense, fusion.dense_weight), (keyword, fusion.keyword_weight)):
        if len(ranked):
            ranks = np.arange(1, len(ranked) + 1, dtype=np.float64)
            out[positions(slots, ranked)] += weight / (fusion.k0 + ranks)
    return out


def convex(
    slots: Slots,
    dense_of: DenseScorer | None,
    keyword_scores: npt.NDArray[np.float32] | None,
    keyword_best: float,
    fusion: Fusion = Fusion(),
) -> Scores:
    """``dense_weight * cosine + keyword_weight * bm25 / keyword_best`` for each slot."""
    out = np.zeros(len(slots), dtype=np.float64)
    if dense_of is not None and fusion.dense_weight:
        out += fusion.dense_weight * dense_of(slots)
    if keyword_scores is not None and keyword_best > 0.0 and fusion.keyword_weight:
        scale = fusion.keyword_weight / keyword_best
        out += scale * keyword_scores[slots].astype(np.float64)
    return out


def fuse(
    cols: Columns,
    dense: Slots,
    keyword: Slots,
    dense_of: DenseScorer | None,
    keyword_scores: npt.NDArray[np.float32] | None,
    fusion: Fusion = Fusion(),
    mask: npt.NDArray[np.bool_] | None = None,
    scratch: Scratch | None = None,
) -> tuple[Slots, Scores]:
    """Fused (and context-credited) score per slot of a hybrid search: (slots, scores).

    ``dense`` and ``keyword`` are the two ranked candidate lists; ``dense_of`` gives the
    cosine of any slots (None: no query vector); ``keyword_scores`` is the BM25 score of every
    slot (None: no keyword search). A neighbour brought in by context is returned only if it
    passes the search's filter ``mask`` (None: no filter), but lends its score either way.
    ``scratch`` (at rest, and left at rest) holds the per-slot look-ups; one is made if
    omitted.
    """
    work = scratch if scratch is not None and scratch.fits(cols.n_slots) else None
    work = work or Scratch(cols.n_slots)
    keyword_best = 0.0
    if len(keyword) and keyword_scores is not None:
        keyword_best = float(keyword_scores[keyword[0]])

    def base(slots: Slots) -> Scores:
        if fusion.method == "rrf":
            return rrf(slots, dense, keyword, fusion)
        return convex(slots, dense_of, keyword_scores, keyword_best, fusion)

    marks = work.marks
    slots = union(dense, keyword, marks)
    kinds, gap, speakers = fusion.context_kinds, fusion.context_gap, fusion.context_speakers
    if not fusion.context or not (kinds or speakers) or len(slots) == 0:
        return slots, base(slots)
    # [distance - 1, side (before, after), slot] for the candidates and then the neighbours
    # they bring in (which lend their scores and are credited alike).
    reach = fusion.context_reach
    near = neighbour_array(cols, slots, kinds, gap, reach, speakers)
    flat = near.reshape(-1)
    flat = flat[flat >= 0]
    marks[slots] = 1
    extra = distinct(flat[marks[flat] == 0])
    marks[slots] = 0
    if len(extra):
        near = np.concatenate([near, neighbour_array(cols, extra, kinds, gap, reach, speakers)], 2)
        slots = np.concatenate([slots, extra])
    own = base(slots)  # candidates and their neighbours in one pass
    # Each neighbour's own score (0 for one not scored, and for no neighbour: the spare entry).
    values = work.values
    values[slots] = own
    lent_by = values[near].max(axis=1)
    values[slots] = 0.0
    best = np.zeros(len(slots), dtype=np.float64)
    for d in range(1, reach + 1):
        best = np.maximum(best, fusion.context_decay ** (d - 1) * lent_by[d - 1])
    credited = own + fusion.context * np.maximum(best, 0.0)
    if len(extra) and mask is not None:
        keep = np.ones(len(slots), dtype=np.bool_)
        keep[len(slots) - len(extra) :] = mask[extra]
        return slots[keep], credited[keep]
    return slots, credited
