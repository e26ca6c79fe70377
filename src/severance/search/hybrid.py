"""Fusing dense and keyword rankings.

Reciprocal-rank fusion (RRF) is the default: each list contributes ``weight / (k0 + rank)``,
which needs no calibration between cosine similarities and BM25 scores and degrades
gracefully when one list is empty (a query of only stop words, a memory with no vector
neighbours). ``k0 = 60`` is the constant of the original RRF paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Fusion", "rrf"]


@dataclass(frozen=True)
class Fusion:
    """Fusion settings: list weights and the RRF constant."""

    dense_weight: float = 1.0
    keyword_weight: float = 1.0
    k0: float = 60.0


def rrf(
    dense: Sequence[int], keyword: Sequence[int], fusion: Fusion = Fusion()
) -> dict[int, float]:
    """Fused score per slot from two ranked slot lists (best first)."""
    fused: dict[int, float] = {}
    for rank, slot in enumerate(dense, start=1):
        fused[slot] = fused.get(slot, 0.0) + fusion.dense_weight / (fusion.k0 + rank)
    for rank, slot in enumerate(keyword, start=1):
        fused[slot] = fused.get(slot, 0.0) + fusion.keyword_weight / (fusion.k0 + rank)
    return fused
