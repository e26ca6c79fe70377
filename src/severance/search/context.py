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

That order is kept in a :class:`SeqOrder`, owned by the index: each live slot's live
neighbour before and after it (a doubly linked list over the slot arrays), so a search finds
the ``d``-th neighbour of a few hundred slots with ``d`` array look-ups. It is brought up to
date lazily: appending slots that come after every live one (every ordinary write) links only
the new slots; retiring a slot unlinks it at once; anything else (a back-dated memory, an
edited turn, rows applied out of order) re-sorts once. Every way of building an index (live
writes with deletions, a snapshot, a rebuild from the rows) therefore gives the same
neighbours: retired slots are never counted.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .columns import NO_SPEAKER, Columns

__all__ = ["NO_SLOT", "SeqOrder", "neighbour_array", "neighbours"]

#: No neighbour (also the value of the spare last entry of the link arrays, so that looking
#: up the neighbour of "no slot" gives "no slot").
NO_SLOT = -1

Links = npt.NDArray[np.int64]


def _links(n: int) -> Links:
    return np.full(n + 1, NO_SLOT, dtype=np.int64)


class SeqOrder:
    """Live slots in conversation order (by ``occurred_at``, then by ``seq``), as links.

    ``before[s]`` / ``after[s]`` are the live slots just before and after live slot ``s``
    (:data:`NO_SLOT`: none; also for retired slots). Both arrays are at least one entry
    longer than the slots taken in; their last entry is always :data:`NO_SLOT`, so
    ``after[after[s]]`` needs no test for a missing neighbour. Ordering by time first keeps a
    turn written late (an edit gets a new seq; an import may be back-dated) between the turns
    it was said between, when turns carry their own times."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.before = _links(0)
        self.after = _links(0)
        #: Slots ``0 .. n_slots`` have been taken in (linked, if live).
        self.n_slots = 0
        #: The last live slot in conversation order (:data:`NO_SLOT`: none).
        self.tail = NO_SLOT

    def update(
        self,
        occurred: npt.NDArray[np.float64],
        seqs: npt.NDArray[np.int64],
        alive: npt.NDArray[np.bool_],
        n_slots: int,
    ) -> None:
        """Take in slots ``self.n_slots .. n_slots`` (or start over if slots were
        renumbered)."""
        if n_slots == self.n_slots:
            return
        if n_slots < self.n_slots:  # a new index under the same object
            self._reset()
        new = np.arange(self.n_slots, n_slots, dtype=np.int64)
        new = new[alive[new]]
        if len(new):
            new = new[np.lexsort((seqs[new], occurred[new]))]
            first, tail = int(new[0]), self.tail
            if tail == NO_SLOT or (occurred[first], seqs[first]) > (occurred[tail], seqs[tail]):
                self._append(new, n_slots)  # the usual case: written in order
            else:
                every = np.flatnonzero(alive[:n_slots])
                self._reset()
                self.tail = NO_SLOT
                self._append(every[np.lexsort((seqs[every], occurred[every]))], n_slots)
        self.n_slots = n_slots

    def _append(self, ordered: npt.NDArray[np.int64], n_slots: int) -> None:
        """Link ``ordered`` (live slots, in order, all after the tail) after the tail."""
        if len(self.before) <= n_slots:
            size = max(n_slots, len(self.before) + len(self.before) // 2, 64)
            for name in ("before", "after"):
                grown = _links(size)
                old = getattr(self, name)
                grown[: len(old) - 1] = old[:-1]
                setattr(self, name, grown)
        before, after = self.before, self.after
        before[ordered[1:]] = ordered[:-1]
        after[ordered[:-1]] = ordered[1:]
        first, last = int(ordered[0]), int(ordered[-1])
        before[first] = self.tail
        after[last] = NO_SLOT
        if self.tail != NO_SLOT:
            after[self.tail] = first
        self.tail = last

    def retire(self, slot: int) -> None:
        """Unlink ``slot`` (a slot being retired; nothing to do if not taken in yet)."""
        if slot >= self.n_slots:
            return
        before, after = self.before, self.after
        prev, nxt = int(before[slot]), int(after[slot])
        if prev != NO_SLOT:
            after[prev] = nxt
        if nxt != NO_SLOT:
            before[nxt] = prev
        if self.tail == slot:
            self.tail = prev
        before[slot] = after[slot] = NO_SLOT


Pair = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


def neighbours(
    cols: Columns,
    slots: npt.NDArray[np.int64],
    kinds: frozenset[str],
    gap: float,
    reach: int = 1,
    speakers: bool = False,
) -> list[Pair]:
    """For each distance ``d`` from 1 to ``reach``, and each of ``slots`` (live slots): the
    live memory ``d`` places before it and the one ``d`` places after it in conversation
    order (``cols.before`` / ``cols.after``), each -1 unless both are conversation turns of
    the same kind dated within ``gap`` seconds of each other. A turn is a memory of a kind in
    ``kinds`` or, with ``speakers``, any memory with a speaker (its metadata's, or the
    ``"Name:"`` its text opens with)."""
    found = neighbour_array(cols, slots, kinds, gap, reach, speakers)
    return [(found[d, 0], found[d, 1]) for d in range(reach)]


def neighbour_array(
    cols: Columns,
    slots: npt.NDArray[np.int64],
    kinds: frozenset[str],
    gap: float,
    reach: int = 1,
    speakers: bool = False,
) -> npt.NDArray[np.int64]:
    """:func:`neighbours` as one array: ``[d - 1, 0]`` the ones before, ``[d - 1, 1]`` the
    ones after, shape ``(reach, 2, len(slots))``. Every distance and side is tested at once
    (a few array operations per search, not per distance and side)."""
    found = np.full((reach, 2, len(slots)), NO_SLOT, dtype=np.int64)
    codes = cols.kind_codes_of(kinds)
    if (not codes and not speakers) or len(slots) == 0:
        return found
    kind_codes, occurred, speaker_codes = cols.kind_codes, cols.occurred, cols.speaker_codes
    has_context = np.zeros(len(cols.kind_names), dtype=np.bool_)
    has_context[codes] = True
    # Every memory a turn (every kind has context: a persona of chat turns) and one kind
    # (nothing to compare) are common: the tests they make moot are skipped.
    every_turn = bool(has_context.all())
    one_kind = len(cols.kind_names) == 1
    if every_turn:
        eligible = np.ones(len(slots), dtype=np.bool_)
        own = slots
    else:
        eligible = has_context[kind_codes[slots]]
        if speakers:
            eligible |= speaker_codes[slots] != NO_SPEAKER
        own = slots[eligible]
        if len(own) == 0:
            return found
    walks = np.empty((reach, 2, len(own)), dtype=np.int64)
    before, after = own, own
    for d in range(reach):  # the link arrays map NO_SLOT to NO_SLOT: no test on the way
        before = cols.before[before]
        after = cols.after[after]
        walks[d, 0] = before
        walks[d, 1] = after
    # NO_SLOT reads the arrays' last entries, which mean nothing: ``at >= 0`` masks them.
    at = walks.reshape(2 * reach, len(own))
    ok = at >= 0
    kind = kind_codes[at] if not (every_turn and one_kind) else at
    if not every_turn:
        turn = has_context[kind]
        if speakers:
            turn |= speaker_codes[at] != NO_SPEAKER
        ok &= turn
    if not one_kind:
        ok &= kind == kind_codes[own]
    ok &= np.abs(occurred[at] - occurred[own]) <= gap
    near = np.where(ok, at, NO_SLOT).reshape(reach, 2, len(own))
    if every_turn:
        return near
    found[:, :, eligible] = near
    return found
