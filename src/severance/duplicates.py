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

Where to look is held in memory per session (a hash and an id a memory), built on the first
write from one scan of the rows and kept in step with every later change (this process's or
another's) through the back-end's change feed, as the search index is.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from .backends.base import MemoryRow, PersonaRows
from .model import Memory, MemoryDraft

__all__ = ["KnownMemories", "identity", "normalise", "remember_once"]

_SCAN_BATCH = 2_000
Identity = tuple[str, str, frozenset[str], str | None]


def normalise(text: str) -> str:
    """Text as compared for duplicates: NFC, case-folded, white space collapsed."""
    # Case folding can decompose ("ǰ" folds to "ǰ"); compose again so both spellings meet.
    return " ".join(
        unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold()).split()
    )


def _is_turn(metadata: Mapping[str, Any]) -> bool:
    return "session" in metadata and "turn" in metadata


def identity(text: str, kind: str, tags: Sequence[str], metadata: Mapping[str, Any]) -> Identity:
    """What two memories share exactly when one may be a duplicate of the other."""
    turn = (
        json.dumps([metadata.get("session"), metadata.get("turn")], sort_keys=True, default=str)
        if _is_turn(metadata)
        else None
    )
    return (normalise(text), kind, frozenset(tags), turn)


def _same(draft: MemoryDraft, memory: Memory) -> bool:
    """Whether ``draft`` is a duplicate of the live ``memory``."""
    if identity(draft.text, draft.kind, draft.tags, draft.metadata) != identity(
        memory.text, memory.kind, memory.tags, memory.metadata
    ):
        return False
    if draft.occurred_at is None or _is_turn(draft.metadata):
        return True
    return memory.occurred_at == draft.occurred_at


class KnownMemories:
    """Where to look for a duplicate: one persona's live memories by a hash of their identity.

    Only a 64-bit hash and an id are kept per memory (the search index holds the rest of the
    persona in memory already); a hash is a lead, checked against the memory itself before
    anything is called a duplicate, so a collision or a stale entry can cost a missed match
    but never a merge.
    """

    def __init__(self, rows: PersonaRows, read: Callable[[MemoryRow], Memory | None]) -> None:
        self._rows = rows
        self._read = read
        self._ids: dict[int, str] = {}  # hash(identity) -> the newest memory id with it
        self._fresh: set[str] = set()  # written by this session since the last refresh
        self._seen: int | None = None

    def _put(self, memory: Memory | None) -> None:
        if memory is None:
            return  # quarantined: it matches nothing
        self._ids[hash(identity(memory.text, memory.kind, memory.tags, memory.metadata))] = (
            memory.id
        )

    def refresh(self) -> None:
        """Apply every change made since the last refresh (a full scan the first time)."""
        if self._seen is None:
            self._seen = self._rows.high_water()
            for batch in self._rows.scan(_SCAN_BATCH):
                for row in batch:
                    self._put(self._read(row))
        changes = self._rows.changes_since(self._seen)
        # This session's own inserts are known already (were one of them updated by another
        # process meanwhile, its lead is stale: checked, so at worst a missed match).
        others = [mid for mid in changes.changed if mid not in self._fresh]
        if others:
            for row in self._rows.get_many(others).values():
                self._put(self._read(row))
        # Deleted memories stay as stale leads: every lead is checked before it is believed.
        self._fresh.clear()
        self._seen = changes.high_water

    def written(self, memories: Iterable[Memory]) -> None:
        """Record memories this session just stored."""
        for memory in memories:
            self._put(memory)
            self._fresh.add(memory.id)

    def touched(self, memory_id: str) -> None:
        """Record that this session changed a memory (read it again at the next refresh)."""
        self._fresh.discard(memory_id)

    def leads(self, drafts: Sequence[MemoryDraft]) -> list[str | None]:
        """For each draft, the id of a live memory that may be its duplicate."""
        self.refresh()
        return [self._ids.get(hash(identity(d.text, d.kind, d.tags, d.metadata))) for d in drafts]


def remember_once(
    drafts: Sequence[MemoryDraft],
    known: KnownMemories,
    live: Callable[[list[str]], dict[str, Memory]],
    write: Callable[[list[MemoryDraft]], list[Memory]],
) -> list[Memory]:
    """Write the drafts that are not duplicates; return one memory per draft, in order.

    ``live`` reads memories by id (a lead may have been forgotten or changed since it was
    recorded: it is believed only if it still matches); ``write`` stores new drafts.
    """
    leads = known.leads(drafts)
    originals = live(sorted({lead for lead in leads if lead is not None}))
    found: dict[int, Memory] = {}
    repeats: dict[int, int] = {}
    fresh: list[int] = []
    first: dict[tuple[Identity, datetime | None], int] = {}
    for n, (draft, lead) in enumerate(zip(drafts, leads, strict=True)):
        original = originals.get(lead) if lead is not None else None
        if original is not None and _same(draft, original):
            found[n] = original
            continue
        when = None if _is_turn(draft.metadata) else draft.occurred_at
        key = (identity(draft.text, draft.kind, draft.tags, draft.metadata), when)
        if key in first:
            repeats[n] = first[key]
        else:
            first[key] = n
            fresh.append(n)
    stored = write([drafts[n] for n in fresh])
    known.written(stored)
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
