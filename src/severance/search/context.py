"""Conversation context: which memories were said next to each other.

A turn of a conversation is often meaningful only with its neighbours: "Seven years now, and
I've finally found my real muses" answers the turn before it ("How long have you been
painting?"). When the question matches one turn strongly, the turn just before or after it is
likely part of the answer. :func:`neighbours` finds, for given slots, the memories written just
before and after each (by ``seq``, the store's write order) that belong to the same exchange:
live, of a kind that has conversational context (``episode`` by default, the kind
:func:`severance.session.read_turns` gives turns), and dated within ``gap`` seconds of it.

The seq order of a persona's slots is kept in a :class:`SeqOrder`, cached per index and brought
up to date lazily: appending slots with increasing seqs (every ordinary write) costs only the
new slots; anything else (rare: rows applied out of order) re-sorts once.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .index import PersonaIndex

__all__ = ["SeqOrder", "neighbours"]

#: At most this many retired slots are skipped when looking for a live neighbour.
_MAX_SKIP = 64


class SeqOrder:
    """Slots sorted by seq (``order``) and each slot's place in it (``place``)."""

    def __init__(self) -> None:
        self.order = np.zeros(0, dtype=np.int64)
        self.place = np.zeros(0, dtype=np.int64)
        self.n_slots = 0

    def update(self, seqs: npt.NDArray[np.int64], n_slots: int) -> None:
        """Take in slots ``self.n_slots .. n_slots`` (or re-sort if slots were renumbered)."""
        if n_slots == self.n_slots:
            return
        if n_slots < self.n_slots:  # a new index under the same object: start over
            self.n_slots = 0
            self.order = np.zeros(0, dtype=np.int64)
        new = np.arange(self.n_slots, n_slots, dtype=np.int64)
        new = new[np.argsort(seqs[new], kind="stable")]
        if len(self.order) == 0 or seqs[new[0]] > seqs[self.order[-1]]:
            order = np.concatenate([self.order, new])
        else:
            order = np.argsort(seqs[:n_slots], kind="stable").astype(np.int64)
        place = np.empty(n_slots, dtype=np.int64)
        place[order] = np.arange(n_slots, dtype=np.int64)
        self.order, self.place, self.n_slots = order, place, n_slots


_ORDERS: weakref.WeakKeyDictionary[PersonaIndex, SeqOrder] = weakref.WeakKeyDictionary()


def seq_order(index: PersonaIndex) -> SeqOrder:
    """The (cached, up to date) seq order of ``index``'s slots."""
    order = _ORDERS.get(index)
    if order is None:
        order = _ORDERS[index] = SeqOrder()
    order.update(index.seqs, index.n_slots)
    return order


def neighbours(
    index: PersonaIndex,
    slots: npt.NDArray[np.int64],
    kinds: frozenset[str],
    gap: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each of ``slots``: the live memory written just before it and the one just after
    it (by seq), each -1 unless it is of the slot's kind, that kind is in ``kinds``, and the
    two are dated within ``gap`` seconds of each other."""
    none = np.full(len(slots), -1, dtype=np.int64)
    codes = [i for i, name in enumerate(index.kind_names) if name in kinds]
    if not codes or len(slots) == 0:
        return none, none.copy()
    so = seq_order(index)
    order, place = so.order, so.place
    n = len(order)
    alive, kind_codes, occurred = index.alive, index.kind_codes, index.occurred
    slot_codes = kind_codes[slots]
    eligible = np.isin(slot_codes, codes)
    found = []
    for step in (-1, 1):
        at = place[slots] + step
        for _ in range(_MAX_SKIP):  # step over retired slots (rarely more than once)
            inside = (at >= 0) & (at < n)
            dead = inside.copy()
            dead[inside] = ~alive[order[at[inside]]]
            if not dead.any():
                break
            at[dead] += step
        inside = (at >= 0) & (at < n)
        other = np.full(len(slots), -1, dtype=np.int64)
        other[inside] = order[at[inside]]
        ok = eligible & inside
        ok[ok] = (
            alive[other[ok]]
            & (kind_codes[other[ok]] == slot_codes[ok])
            & (np.abs(occurred[other[ok]] - occurred[slots[ok]]) <= gap)
        )
        other[~ok] = -1
        found.append(other)
    return found[0], found[1]
