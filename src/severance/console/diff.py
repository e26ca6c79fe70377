"""The changes between two versions of a memory, for its history page.

Text is compared word by word (``difflib``, so a changed date shows as one struck-out and one
inserted word, not as two whole paragraphs); the other fields are compared as values.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from dataclasses import dataclass

from ..model import Memory

__all__ = ["Change", "Segment", "changes"]

_WORDS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Segment:
    """A run of text that is kept (``same``), removed (``del``) or added (``ins``)."""

    op: str
    text: str


@dataclass(frozen=True)
class Change:
    """What one version changed compared with the one before it."""

    version: int
    text: tuple[Segment, ...] | None
    fields: tuple[tuple[str, str, str], ...]


def text_segments(old: str, new: str) -> tuple[Segment, ...]:
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    out: list[Segment] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(Segment("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(Segment("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(Segment("ins", "".join(b[j1:j2])))
    return tuple(out)


def _field_changes(old: Memory, new: Memory) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if old.kind != new.kind:
        out.append(("kind", old.kind, new.kind))
    if old.tags != new.tags:
        out.append(("tags", ", ".join(old.tags) or "(none)", ", ".join(new.tags) or "(none)"))
    if old.metadata != new.metadata:
        out.append(
            (
                "metadata",
                json.dumps(old.metadata, sort_keys=True, ensure_ascii=False),
                json.dumps(new.metadata, sort_keys=True, ensure_ascii=False),
            )
        )
    if old.occurred_at != new.occurred_at:
        out.append(("occurred", old.occurred_at.isoformat(), new.occurred_at.isoformat()))
    if len(new.provenance) > len(old.provenance):
        added = new.provenance[len(old.provenance) :]
        out.append(("provenance", "", "; ".join(f"from {p.get('persona', '?')}" for p in added)))
    return out


def changes(versions: list[Memory]) -> list[Change]:
    """For each version after the first (oldest first), what it changed."""
    out = []
    for old, new in itertools.pairwise(versions):
        text = text_segments(old.text, new.text) if old.text != new.text else None
        out.append(Change(new.version, text, tuple(_field_changes(old, new))))
    return out
