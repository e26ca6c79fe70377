"""Conversation context: which memories were said next to each other.

A turn of a conversation is often meaningful only with its neighbours: "Seven years now, and
I've finally found my real muses" answers the turn before it ("How long have you been
painting?"). When the question matches one turn strongly, the turn just before or after it is
likely part of the answer. :func:`neighbours` finds, for given slots, the memories just before
and after each in conversation order (by ``occurred_at``, then by ``seq``, the store's write
order) that belong to the same exchange: live, turns of a conversation (of a kind that has
conversational context — ``episode`` by default, the kind :func:`severance.session.read_turns`
gives turns — or memories with a speaker, however they were stored), of the same kind, and
dated within ``gap`` seconds of it.

That order is kept in a :class:`SeqOrder`, owned by the index and brought up to date lazily:
appending slots that come after every earlier one (every ordinary write) costs only the new
slots; anything else (a back-dated memory, rows applied out of order) re-sorts once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .columns import NO_SPEAKER, Columns

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


Pair = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


def neighbours(
    cols: Columns,
    order: SeqOrder,
    slots: npt.NDArray[np.int64],
    kinds: frozenset[str],
    gap: float,
    reach: int = 1,
    speakers: bool = False,
) -> list[Pair]:
    """For each distance ``d`` from 1 to ``reach``, and each of ``slots``: the live memory
    ``d`` places before it and the one ``d`` places after it in conversation order (retired
    slots are not counted), each -1 unless both are conversation turns of the same kind dated
    within ``gap`` seconds of each other. A turn is a memory of a kind in ``kinds`` or, with
    ``speakers``, any memory with a speaker (its metadata's, or the ``"Name:"`` its text opens
    with). ``order`` is brought up to date with ``cols`` first."""
    none = np.full(len(slots), -1, dtype=np.int64)
    codes = cols.kind_codes_of(kinds)
    if (not codes and not speakers) or len(slots) == 0:
        return [(none, none.copy()) for _ in range(reach)]
    order.update(cols.occurred, cols.seqs, cols.n_slots)
    ordered, place = order.order, order.place
    n = len(ordered)
    alive, kind_codes, occurred = cols.alive, cols.kind_codes, cols.occurred
    slot_codes = kind_codes[slots]
    has_context = np.zeros(len(cols.kind_names), dtype=np.bool_)
    has_context[codes] = True

    def turns(at: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        found: npt.NDArray[np.bool_] = has_context[kind_codes[at]]
        if speakers:
            found |= cols.speaker_codes[at] != NO_SPEAKER
        return found

    eligible = turns(slots)
    sides: list[list[npt.NDArray[np.int64]]] = []
    for step in (-1, 1):
        at = place[slots].copy()
        side = []
        for _ in range(reach):  # one walk per side, a result at each distance
            at += step
            for _ in range(_MAX_SKIP):  # step over retired slots (rarely more than once)
                inside = (at >= 0) & (at < n)
                dead = inside.copy()
                dead[inside] = ~alive[ordered[at[inside]]]
                if not dead.any():
                    break
                at[dead] += step
            inside = (at >= 0) & (at < n)
            other = np.full(len(slots), -1, dtype=np.int64)
            other[inside] = ordered[at[inside]]
            ok = eligible & inside
            ok[ok] = (
                alive[other[ok]]
                & turns(other[ok])
                & (kind_codes[other[ok]] == slot_codes[ok])
                & (np.abs(occurred[other[ok]] - occurred[slots[ok]]) <= gap)
            )
            other[~ok] = -1
            side.append(other)
        sides.append(side)
    return list(zip(sides[0], sides[1], strict=True))
