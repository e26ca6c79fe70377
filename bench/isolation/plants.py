"""The planted data: one person, three scopes, a canary unique to every memory.

A canary is ``cnry`` + 12 hex digits, drawn fresh for every run. Each memory carries its
canary in its text, in a tag (``t<canary>``), in a metadata value (``m<canary>``) and, where
the system lets the caller choose ids, in its id (``id<canary>``). Any occurrence of the 12
hex digits in an answer or in a file is therefore that memory, and only that memory.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ATTACKER",
    "CANARY_RE",
    "SCOPES",
    "TOPICS",
    "VICTIMS",
    "FileHit",
    "Plant",
    "canaries_in",
    "file_stats",
    "make_plants",
    "revealed_in",
    "scan_files",
]

#: The scopes of the one person; the caller holds the first one's handle.
SCOPES: tuple[str, ...] = ("work", "home", "client")
ATTACKER = SCOPES[0]
VICTIMS: tuple[str, ...] = SCOPES[1:]

#: What each scope writes about: topic queries for vector 1 are these sentences' nouns.
TOPICS: Mapping[str, tuple[str, ...]] = {
    "work": (
        "The quarterly budget review with the finance team moved to Thursday",
        "Deploy the billing service after the database migration is signed off",
        "The new hire starts on the platform team next Monday",
        "Prepare the slides for the board meeting about hiring plans",
        "The on-call rotation changes when the incident review is done",
        "Sign the vendor contract for the office printers",
    ),
    "home": (
        "My daughter's piano recital is on Saturday at the town hall",
        "The dentist appointment for the root canal is on the twelfth",
        "Renew the mortgage on the house before the fixed rate ends",
        "Book a table for the anniversary dinner at the Italian place",
        "The cat needs her vaccination at the vet next week",
        "Ask my sister about the therapist she recommended",
    ),
    "client": (
        "Acme wants the redesign of their checkout page by the end of March",
        "Acme's legal team must approve the data processing agreement",
        "The Acme invoice for February is still unpaid",
        "Acme's CTO prefers calls on Tuesday mornings",
        "The Acme staging server password rotates every month",
        "Acme is considering a second project for their mobile app",
    ),
}

CANARY_RE = re.compile(rb"cnry([0-9a-f]{12})")
_TEXT_RE = re.compile(r"cnry([0-9a-f]{12})")


@dataclass(frozen=True)
class Plant:
    """One memory to plant: its scope, its canary and the forms the canary takes."""

    scope: str
    index: int
    key: str  # the 12 hex digits

    @property
    def canary(self) -> str:
        return f"cnry{self.key}"

    @property
    def topic(self) -> str:
        topics = TOPICS[self.scope]
        return topics[self.index % len(topics)]

    @property
    def text(self) -> str:
        return f"{self.topic} (ref {self.canary})"

    @property
    def tag(self) -> str:
        return f"t{self.canary}"

    @property
    def metadata(self) -> dict[str, str]:
        return {"ref": f"m{self.canary}", "scope_label": self.scope}

    @property
    def chosen_id(self) -> str:
        """The id, where the caller picks ids (Chroma, the MCP memory server's entity names)."""
        return f"id{self.canary}"

    @property
    def forms(self) -> tuple[str, ...]:
        """The four planted forms of the canary; no form is a substring of another."""
        return (f"ref {self.canary})", self.tag, self.metadata["ref"], self.chosen_id)


def make_plants(per_scope: int, *, scopes: Iterable[str] = SCOPES) -> dict[str, list[Plant]]:
    """Fresh canaries: ``per_scope`` memories in every scope."""
    if per_scope < 2:
        raise ValueError("per_scope must be at least 2 (half are updated, half deleted)")
    seen: set[str] = set()
    out: dict[str, list[Plant]] = {}
    for scope in scopes:
        items = []
        for i in range(per_scope):
            key = secrets.token_hex(6)
            while key in seen:
                key = secrets.token_hex(6)
            seen.add(key)
            items.append(Plant(scope, i, key))
        out[scope] = items
    return out


def canaries_in(text: str | bytes, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` (canary hex digits) occur in ``text``."""
    wanted = set(keys)
    if isinstance(text, bytes):
        found = {m.decode("ascii") for m in CANARY_RE.findall(text)}
    else:
        found = set(_TEXT_RE.findall(text))
    return found & wanted


def revealed_in(answer: str, call: str, victims: Iterable[Plant]) -> set[str]:
    """The victims (keys) an answer reveals, not counting echoes of the call's own input.

    A victim is revealed when one of its planted forms occurs in the answer more often than
    in the call: an error that repeats the id it was asked about ("Entity with name
    id<canary> not found") reveals nothing, the memory's text, tag, metadata or id returned
    beside it does. A search for a bare canary contains no planted form, so anything planted
    that comes back counts.
    """
    out: set[str] = set()
    for v in victims:
        if v.key not in answer:
            continue
        if any(answer.count(f) > call.count(f) for f in v.forms):
            out.add(v.key)
    return out


@dataclass(frozen=True)
class FileHit:
    path: str
    keys: frozenset[str]


def _files(roots: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out.extend(sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()))
    return out


def file_stats(roots: Iterable[Path]) -> tuple[int, int]:
    """How many regular files, and bytes, ``roots`` hold (what a scan reads)."""
    files = _files(roots)
    size = 0
    for path in files:
        try:
            size += path.stat().st_size
        except OSError:
            continue
    return len(files), size


def scan_files(roots: Iterable[Path], keys: Iterable[str]) -> list[FileHit]:
    """Every file under ``roots`` (recursively) holding one of the canaries, read byte by byte.

    Files that vanish or cannot be read while being scanned are skipped (a server's temporary
    files come and go); sockets and other non-regular files are skipped too.
    """
    wanted = frozenset(keys)
    hits: list[FileHit] = []
    for path in _files(roots):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found = canaries_in(data, wanted)
        if found:
            hits.append(FileHit(os.fspath(path), frozenset(found)))
    return hits
