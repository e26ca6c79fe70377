"""Small per-search helpers over slots: cosines computed once, places in a ranked list."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .dense import DenseIndex

__all__ = ["Cosines", "ranks"]


def ranks(ranked: npt.NDArray[np.int64], slots: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The 1-based place of each of ``slots`` in ``ranked`` (0: not in it)."""
    out = np.zeros(len(slots), dtype=np.int64)
    if len(ranked) and len(slots):
        sort = np.argsort(ranked, kind="stable")
        at = np.clip(np.searchsorted(ranked, slots, sorter=sort), 0, len(ranked) - 1)
        found = sort[at]
        hit = ranked[found] == slots
        out[hit] = found[hit] + 1
    return out


class Cosines:
    """Cosine similarity of slots to one query, each slot computed at most once per search
    (the dense ranking, fusion, context and the results all ask for overlapping slots)."""

    def __init__(
        self,
        dense: DenseIndex,
        query: npt.NDArray[np.float32],
        every: npt.NDArray[np.float32] | None = None,
    ) -> None:
        self._dense = dense
        self._query = query
        self._every = every  # every slot's score, when exact search computed them all
        self._slots = np.zeros(0, dtype=np.int64)  # sorted
        self._values = np.zeros(0, dtype=np.float32)

    def score(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """float32 scores of ``slots`` (no repeats), computed and remembered."""
        if self._every is not None:
            every: npt.NDArray[np.float32] = self._every[slots]
            return every
        values = np.empty(len(slots), dtype=np.float32)
        known = self._slots
        if len(known):
            at = np.clip(np.searchsorted(known, slots), 0, len(known) - 1)
            hit = known[at] == slots
            values[hit] = self._values[at[hit]]
        else:
            hit = np.zeros(len(slots), dtype=np.bool_)
        miss = ~hit
        if miss.any():
            fresh = self._dense.scores_at(slots[miss], self._query)
            values[miss] = fresh
            merged = np.concatenate([known, slots[miss]])
            order = np.argsort(merged, kind="stable")
            self._slots = merged[order]
            self._values = np.concatenate([self._values, fresh])[order]
        return values

    def __call__(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return self.score(slots).astype(np.float64)
