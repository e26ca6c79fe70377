"""No accidental duplicates: remembering what a persona already holds returns what it holds.

A new memory is a *duplicate* of a live one when their identities are equal. The identity is
the memory's normalised text (Unicode NFKC, case-folded, runs of white space as one space,
trimmed), its kind and its set of tags — and, for conversation turns, the ``session`` and
``turn`` their metadata name (see :mod:`severance.chat`), so "user: ok" said in two
conversations is two memories while the same conversation remembered twice is one. A memory
given an explicit ``occurred_at`` (other than a turn) is a duplicate only of one that occurred
at the same instant: "team lunch at the ramen place" in January and in June are two lunches.

Only exact identities merge. "Invoice 4411 is paid" and "Invoice 4412 is paid" differ by a
character, so both are kept: near-duplicates are never merged silently. A duplicate is not
written again; :meth:`Session.remember_many` returns the live memory with
``Memory.duplicate`` set instead. This is also what makes an interrupted import resumable: a
rerun finds every record the first run committed and writes only the rest.

The identities of a persona's live memories are held in memory per session, built on the first
write from one scan of the rows and kept in step with every later change (this process's or
another's) through the back-end's change feed, as the search index is.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .backends.base import MemoryRow, PersonaRows
from .model import Memory, MemoryDraft

__all__ = ["KnownMemories", "identity", "normalise", "remember_once"]

_SCAN_BATCH = 2_000


def normalise(text: str) -> str:
    """Text as compared for duplicates: NFKC, case-folded, white space collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _is_turn(metadata: dict[str, Any]) -> bool:
    return "session" in metadata and "turn" in metadata


def identity(text: str, kind: str, tags: Sequence[str], metadata: dict[str, Any]) -> str:
    """The key two memories share when one may be a duplicate of the other."""
    turn = [metadata.get("session"), metadata.get("turn")] if _is_turn(metadata) else None
    body = json.dumps(
        [normalise(text), kind, sorted(set(tags)), turn],
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class _Plan:
    fresh: list[int] = field(default_factory=list)  # positions to write
    known: dict[int, str] = field(default_factory=dict)  # position -> live memory id
    repeats: dict[int, int] = field(default_factory=dict)  # position -> earlier position


class KnownMemories:
    """The identities of one persona's live memories, kept in step with its rows."""

    def __init__(self, rows: PersonaRows, read: Callable[[MemoryRow], Memory]) -> None:
        self._rows = rows
        self._read = read
        self._ids: dict[str, list[str]] = {}  # identity -> live memory ids, oldest first
        self._keys: dict[str, str] = {}  # memory id -> identity
        self._when: dict[str, datetime] = {}  # memory id -> occurred_at
        self._seen: int | None = None

    def _put(self, row: MemoryRow) -> None:
        memory = self._read(row)
        self._drop(row.id)
        key = identity(memory.text, memory.kind, memory.tags, memory.metadata)
        self._keys[row.id] = key
        self._when[row.id] = memory.occurred_at
        # Equal memories stored before this rule existed may share a key: the oldest answers.
        self._ids.setdefault(key, []).append(row.id)

    def _drop(self, memory_id: str) -> None:
        key = self._keys.pop(memory_id, None)
        self._when.pop(memory_id, None)
        if key is not None:
            ids = self._ids[key]
            ids.remove(memory_id)
            if not ids:
                del self._ids[key]

    def refresh(self) -> None:
        """Apply every change made since the last refresh (a full scan the first time)."""
        if self._seen is None:
            self._seen = self._rows.high_water()
            for batch in self._rows.scan(_SCAN_BATCH):
                for row in batch:
                    self._put(row)
        changes = self._rows.changes_since(self._seen)
        stale = list(changes.changed)
        if stale:
            for row in self._rows.get_many(stale).values():
                self._put(row)
        for memory_id in changes.deleted:
            self._drop(memory_id)
        self._seen = changes.high_water

    def plan(self, drafts: Sequence[MemoryDraft]) -> _Plan:
        self.refresh()
        plan = _Plan()
        first: dict[tuple[str, datetime | None], int] = {}
        for n, draft in enumerate(drafts):
            key = identity(draft.text, draft.kind, draft.tags, draft.metadata)
            when = None if _is_turn(draft.metadata) else draft.occurred_at
            match = next(
                (mid for mid in self._ids.get(key, ()) if when is None or self._when[mid] == when),
                None,
            )
            if match is not None:
                plan.known[n] = match
            elif (key, when) in first:
                plan.repeats[n] = first[key, when]
            else:
                first[key, when] = n
                plan.fresh.append(n)
        return plan


def remember_once(
    drafts: Sequence[MemoryDraft],
    known: KnownMemories,
    live: Callable[[list[str]], dict[str, Memory]],
    write: Callable[[list[MemoryDraft]], list[Memory]],
) -> list[Memory]:
    """Write the drafts that are not duplicates; return one memory per draft, in order.

    ``live`` reads memories by id (a duplicate's original may have been forgotten since the
    plan: then the draft is written after all); ``write`` stores new drafts.
    """
    plan = known.plan(drafts)
    originals = live(sorted(set(plan.known.values()))) if plan.known else {}
    gone = sorted(n for n, mid in plan.known.items() if mid not in originals)
    for n in gone:
        del plan.known[n]
    order = sorted([*plan.fresh, *gone])
    written = dict(zip(order, write([drafts[n] for n in order]), strict=True))
    out: list[Memory] = []
    for n in range(len(drafts)):
        if n in written:
            out.append(written[n])
        elif n in plan.known:
            out.append(replace(originals[plan.known[n]], duplicate=True))
        else:
            out.append(replace(written[plan.repeats[n]], duplicate=True))
    return out
