"""Conversation context: which memories were said next to each other.

A turn of a conversation is often meaningful only with its neighbours: "Seven years now, and
I've finally found my real muses" answers the turn before it ("How long have you been
painting?"). When the question matches one turn strongly, the turn just before or after it is
likely part of the answer. :func:`neighbours` finds, for given slots, the memories just before
and after each in conversation order (by ``occurred_at``, then by ``seq``, the store's write
order) that belong to the same exchange: live, of a kind that has conversational context
(``episode`` by default, the kind :func:`severance.session.read_turns` gives turns), and dated
within ``gap`` seconds of it.

That order is kept in a :class:`SeqOrder`, cached per index and brought up to date lazily:
appending slots that come after every earlier one (every ordinary write) costs only the new
slots; anything else (a back-dated memory, rows applied out of order) re-sorts once.
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
    """Slots in conversation order (``order``: by ``occurred_at``, then by ``seq``) and each
    slot's place in it (``place``). Ordering by time first keeps a turn written late (an edit
    gets a new seq; an import may be back-dated) between the turns it was said between,
    when turns carry their own times."""

    def __init__(self) -> None:
        self.order = np.zeros(0, dtype=np.int64)
        self.place = np.zeros(0, dtype=np.int64)
        self.n_slots = 0

    def update(
        self,
        occurred: npt.NDArray[np.float64],
        seqs: npt.NDArray[np.int64],
        n_slots: int,
    ) -> None:
        """Take in slots ``self.n_slots .. n_slots`` (or re-sort if slots were renumbered)."""
        if n_slots == self.n_slots:
            return
        if n_slots < self.n_slots:  # a new index under the same object: start over
            self.n_slots = 0
            self.order = np.zeros(0, dtype=np.int64)
        new = np.arange(self.n_slots, n_slots, dtype=np.int64)
        new = new[np.lexsort((seqs[new], occurred[new]))]
        first, last = int(new[0]), int(self.order[-1]) if len(self.order) else -1
        if last < 0 or (occurred[first], seqs[first]) > (occurred[last], seqs[last]):
            order = np.concatenate([self.order, new])  # the usual case: appended in order
        else:
            every = np.arange(n_slots, dtype=np.int64)
            order = every[np.lexsort((seqs[:n_slots], occurred[:n_slots]))]
        place = np.empty(n_slots, dtype=np.int64)
        place[order] = np.arange(n_slots, dtype=np.int64)
        self.order, self.place, self.n_slots = order, place, n_slots


_ORDERS: weakref.WeakKeyDictionary[PersonaIndex, SeqOrder] = weakref.WeakKeyDictionary()


def seq_order(index: PersonaIndex) -> SeqOrder:
    """The (cached, up to date) conversation order of ``index``'s slots."""
    order = _ORDERS.get(index)
    if order is None:
        order = _ORDERS[index] = SeqOrder()
    order.update(index.occurred, index.seqs, index.n_slots)
    return order


def neighbours(
    index: PersonaIndex,
    slots: npt.NDArray[np.int64],
    kinds: frozenset[str],
    gap: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each of ``slots``: the live memory just before it and the one just after it in
    conversation order, each -1 unless it is of the slot's kind, that kind is in ``kinds``, and the
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
