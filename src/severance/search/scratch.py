"""Per-slot work arrays a search borrows, so that it looks slots up by index, not by search.

A hybrid search asks "is this slot among those?" and "what is that slot's score?" of a few
hundred to a few thousand slots at a time (the union of the two candidate lists, their
neighbours in conversation order, the cosines already computed, the ranks in each list).
Answering with sorted arrays and :func:`numpy.searchsorted` costs ~100 ns a look-up (a binary
search mispredicts at every step) and a sort per question; answering with an array indexed by
slot costs a few ns. Such an array is as long as the index, so it is not allocated (nor
cleared) per search: a :class:`Scratch` is kept between searches with every entry at its
resting value, and each use writes the entries it needs and puts them back (a few hundred
writes). :class:`ScratchPool` lends one per search, so searches in several threads never
share one, and drops one whose search failed (it may not have been put back).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

__all__ = ["Scratch", "ScratchPool"]


class Scratch:
    """Work arrays for slots ``0 .. size - 2``; the last entry of each is a spare that slot
    ``-1`` ("no slot") reads and nothing writes.

    At rest ``marks`` and ``values`` are 0 and ``cosines`` NaN (not computed)."""

    def __init__(self, n_slots: int) -> None:
        size = n_slots + 1
        self.size = size
        #: A small integer per slot: membership (1) or a 1-based place in a list.
        self.marks: npt.NDArray[np.int64] = np.zeros(size, dtype=np.int64)
        #: A score per slot (0: none), e.g. the fused score a neighbour lends.
        self.values: npt.NDArray[np.float64] = np.zeros(size, dtype=np.float64)
        #: The query's cosine per slot, NaN until computed (see :class:`.scoring.Cosines`).
        self.cosines: npt.NDArray[np.float32] = np.full(size, np.nan, dtype=np.float32)

    def fits(self, n_slots: int) -> bool:
        return self.size > n_slots


class ScratchPool:
    """Scratch arrays lent to one search at a time (a new one when all are lent)."""

    #: Idle scratches kept: one per search running at once, rarely more than a couple.
    KEEP = 4

    def __init__(self) -> None:
        self._idle: list[Scratch] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, n_slots: int) -> Iterator[Scratch]:
        """A scratch for slots ``0 .. n_slots - 1``, at rest, for the body; returned to the
        pool after it only if the body finished (it put every entry back)."""
        with self._lock:
            scratch = self._idle.pop() if self._idle else None
        if scratch is None or not scratch.fits(n_slots):
            # Room to grow by half before the next allocation (an index grows by appends).
            scratch = Scratch(n_slots + n_slots // 2 + 64)
        yield scratch
        with self._lock:
            if len(self._idle) < self.KEEP:
                self._idle.append(scratch)
