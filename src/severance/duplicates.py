"""No accidental duplicates: remembering what a persona already holds returns what it holds.

A new memory is a *duplicate* of a live one when their identities are equal. The identity is
the memory's normalised text (Unicode NFC, case-folded, runs of white space as one space,
trimmed), its kind and its set of tags — and, for conversation turns, the ``session`` and
``turn`` their metadata name (see :mod:`severance.chat`), so "user: ok" said in two
conversations is two memories while the same conversation remembered twice is one. A memory
given an explicit ``occurred_at`` (other than a turn) is a duplicate only of one that occurred
at the same instant: "team lunch at the ramen place" in January and in June are two lunches.

Only exact identities merge. "Invoice 4411 is paid" and "Invoice 4412 is paid" differ by a
character, so both are kept: near-duplicates are never merged silently. That is why the
text is composed (NFC: "é" typed as one code point or as "e" and an accent is one text) but
not compatibility-folded (NFKC), which would make "2⁵ = 32" the same as "25 = 32" and "H₂O"
the same as "H2O". A duplicate is not
written again; :meth:`Session.remember_many` returns the live memory with
``Memory.duplicate`` set instead. This is also what makes an interrupted import resumable: a
rerun finds every record the first run committed and writes only the rest.

Where to look comes from the awake search index, which keeps a 64-bit identity key of every
memory (see :mod:`severance.search.identity`; saved in its encrypted snapshot) and is kept in
step with every change, this process's or another's, through the back-end's change feed. A
new process thus finds its leads without decrypting the persona's memories: only those a key
points at are read, and compared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from .model import Memory, MemoryDraft
from .search import PersonaIndex
from .search.identity import Identity, identity, identity_key, is_turn, normalise

__all__ = [
    "LEADS_PER_DRAFT",
    "KnownMemories",
    "already_stored",
    "identity",
    "normalise",
    "remember_once",
]

#: Live memories with a draft's identity key that are compared with it, newest first. More
#: than one share a key when the same words were remembered at other explicit times.
LEADS_PER_DRAFT = 4


def _same(draft: MemoryDraft, memory: Memory) -> bool:
    """Whether ``draft`` is a duplicate of the live ``memory``."""
    if identity(draft.text, draft.kind, draft.tags, draft.metadata) != identity(
        memory.text, memory.kind, memory.tags, memory.metadata
    ):
        return False
    if draft.occurred_at is None or is_turn(draft.metadata):
        return True
    return memory.occurred_at == draft.occurred_at


class KnownMemories:
    """Where to look for a duplicate: the live memories of the persona's index whose
    identity key is a draft's. A key is a lead, checked against the memory itself before
    anything is called a duplicate, so a collision or a stale key can cost a missed match
    but never a merge."""

    def __init__(self, index: Callable[[], PersonaIndex]) -> None:
        #: The persona's index, brought up to date with every committed change when called.
        self._index = index

    def leads(self, drafts: Sequence[MemoryDraft]) -> list[list[str]]:
        """For each draft, the ids of live memories that may be its duplicate (newest first)."""
        index = self._index()
        keys = [identity_key(d.text, d.kind, d.tags, d.metadata) for d in drafts]
        return index.same_identity(keys, LEADS_PER_DRAFT)


def _original(
    draft: MemoryDraft, leads: Sequence[str], originals: dict[str, Memory]
) -> Memory | None:
    """The first of ``leads`` that is live and a duplicate of ``draft``."""
    for lead in leads:
        original = originals.get(lead)
        if original is not None and _same(draft, original):
            return original
    return None


def _read_leads(
    leads: Sequence[Sequence[str]], live: Callable[[list[str]], dict[str, Memory]]
) -> dict[str, Memory]:
    return live(sorted({lead for some in leads for lead in some}))


def already_stored(
    drafts: Sequence[MemoryDraft],
    known: KnownMemories,
    live: Callable[[list[str]], dict[str, Memory]],
) -> list[Memory | None]:
    """For each draft, the live memory it duplicates (marked so), else None. Called under the
    persona's write lock just before the drafts are written, it sees every other writer's
    commits: what it lets through is new."""
    leads = known.leads(drafts)
    originals = _read_leads(leads, live)
    out: list[Memory | None] = []
    for draft, some in zip(drafts, leads, strict=True):
        original = _original(draft, some, originals)
        out.append(replace(original, duplicate=True) if original is not None else None)
    return out


def remember_once(
    drafts: Sequence[MemoryDraft],
    known: KnownMemories,
    live: Callable[[list[str]], dict[str, Memory]],
    write: Callable[[list[MemoryDraft]], list[Memory]],
) -> list[Memory]:
    """Write the drafts that are not duplicates; return one memory per draft, in order.

    ``live`` reads memories by id (a lead may have been forgotten or changed since its key
    was read: it is believed only if it still matches); ``write`` stores new drafts (and
    keeps the index in step, so a later call finds them).
    """
    leads = known.leads(drafts)
    originals = _read_leads(leads, live)
    found: dict[int, Memory] = {}
    repeats: dict[int, int] = {}
    fresh: list[int] = []
    first: dict[tuple[Identity, datetime | None], int] = {}
    for n, (draft, some) in enumerate(zip(drafts, leads, strict=True)):
        original = _original(draft, some, originals)
        if original is not None:
            found[n] = original
            continue
        when = None if is_turn(draft.metadata) else draft.occurred_at
        key = (identity(draft.text, draft.kind, draft.tags, draft.metadata), when)
        if key in first:
            repeats[n] = first[key]
        else:
            first[key] = n
            fresh.append(n)
    stored = write([drafts[n] for n in fresh])
    written = dict(zip(fresh, stored, strict=True))
    out: list[Memory] = []
    for n in range(len(drafts)):
        if n in written:
            out.append(written[n])
        elif n in found:
            out.append(replace(found[n], duplicate=True))
        else:
            out.append(replace(written[repeats[n]], duplicate=True))
    return out
