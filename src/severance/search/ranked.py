"""A ranked list of slots and what is known of each, kept aligned through every re-ordering.

After fusion a search re-orders and cuts its list several times (the similarity floor, the
query-signal re-rank, repeats moved last, the final ``k``). Each step permutes the slots, their
scores, their ranks in the dense and keyword lists and their cosines together; holding them in
one value makes "permuted one array but not another" impossible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .documents import Hit

__all__ = ["Ranked"]


@dataclass(frozen=True)
class Ranked:
    """Slots best first, each with its score, 1-based ranks (0: absent) and cosine."""

    slots: npt.NDArray[np.int64]
    fused: npt.NDArray[np.float64]
    dense_rank: npt.NDArray[np.int64]
    keyword_rank: npt.NDArray[np.int64]
    cosine: npt.NDArray[np.float64] | None

    def take(self, where: Any) -> Ranked:
        """The entries at ``where`` (an index array, a mask or a slice), in that order."""
        return Ranked(
            self.slots[where],
            self.fused[where],
            self.dense_rank[where],
            self.keyword_rank[where],
            None if self.cosine is None else self.cosine[where],
        )

    def rescored(self, fused: npt.NDArray[np.float64]) -> Ranked:
        """The same entries with new scores."""
        return dataclasses.replace(self, fused=fused)

    def hits(self, ids: Sequence[str], keyword_scores: npt.NDArray[np.float32] | None) -> list[Hit]:
        """The list as :class:`Hit` values (``keyword_scores`` indexed by slot)."""
        slots = self.slots.tolist()
        keyword = keyword_scores[self.slots].tolist() if keyword_scores is not None else None
        dense = self.cosine.tolist() if self.cosine is not None else None
        return [
            Hit(
                id=ids[s],
                score=score,
                dense_rank=d_rank or None,
                keyword_rank=k_rank or None,
                dense_score=dense[i] if dense is not None else None,
                keyword_score=keyword[i] if keyword is not None else None,
            )
            for i, (s, score, d_rank, k_rank) in enumerate(
                zip(
                    slots,
                    self.fused.tolist(),
                    self.dense_rank.tolist(),
                    self.keyword_rank.tolist(),
                    strict=True,
                )
            )
        ]
