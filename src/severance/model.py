"""The values Severance hands back: frozen, plain, safe to share between threads."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SUPERSEDED_BY",
    "VALID_UNTIL",
    "AuditEntry",
    "Memory",
    "MemoryDraft",
    "Notice",
    "Page",
    "PersonaInfo",
    "Recall",
    "new_id",
]

#: Metadata keys of a superseded memory (see :mod:`severance.extract.supersession`).
VALID_UNTIL = "valid_until"
SUPERSEDED_BY = "superseded_by"


_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Each random byte maps to the character for its low 5 bits: 256 is a multiple of 32, so
# every character is equally likely (as with secrets.choice, but ~100x faster per id).
_ID_TABLE = bytes(ord(_ID_ALPHABET[b & 31]) for b in range(256))


def new_id(prefix: str) -> str:
    """A random id: ``prefix`` + 20 base32 characters (100 bits)."""
    return prefix + secrets.token_bytes(20).translate(_ID_TABLE).decode("ascii")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_epoch(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def from_epoch(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class Memory:
    """One memory of the awake persona, decrypted.

    ``occurred_at`` is when the remembered thing happened (defaults to ``learned_at``);
    ``learned_at`` is when this persona learned it; ``version`` counts updates from 1.
    """

    id: str
    text: str
    kind: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    occurred_at: datetime
    learned_at: datetime
    updated_at: datetime
    version: int
    source: str | None = None
    #: Where a reintegrated memory came from: one entry per crossing that brought it here.
    provenance: tuple[dict[str, Any], ...] = ()
    #: Set on what ``remember`` returns when the persona already held this memory (same
    #: normalised text, kind and tags; see :mod:`severance.duplicates`): nothing was written.
    duplicate: bool = field(default=False, compare=False)

    @property
    def valid_until(self) -> datetime | None:
        """When this memory stopped being true (it is *superseded*), or None if it still is."""
        value = self.metadata.get(VALID_UNTIL)
        if not isinstance(value, str):
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    @property
    def superseded_by(self) -> str | None:
        """The id of the memory that replaced this one, if one did."""
        value = self.metadata.get(SUPERSEDED_BY)
        return value if isinstance(value, str) and self.valid_until is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The one JSON-ready form of a memory, which every adapter serves: the CLI's
        ``--json`` and export, the HTTP API's bodies, the MCP tools' items (a subset).
        Times are ISO-8601. Every key is always present (``duplicate`` too, false unless
        ``remember`` found the memory already held), so each interface has one stable schema."""
        return {
            "provenance": list(self.provenance),
            "id": self.id,
            "text": self.text,
            "kind": self.kind,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "occurred_at": self.occurred_at.isoformat(),
            "learned_at": self.learned_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
            "source": self.source,
            "duplicate": self.duplicate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Memory:
        """A memory read back from :meth:`to_dict`'s form (as a server sends it): the inverse,
        tolerant of the fields an older server leaves out (source, provenance, duplicate)."""
        return cls(
            id=data["id"],
            text=data["text"],
            kind=data["kind"],
            tags=tuple(data["tags"]),
            metadata=dict(data["metadata"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            learned_at=datetime.fromisoformat(data["learned_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            version=data["version"],
            source=data.get("source"),
            provenance=tuple(dict(p) for p in data.get("provenance") or ()),
            duplicate=bool(data.get("duplicate", False)),
        )


@dataclass(frozen=True)
class MemoryDraft:
    """What :meth:`Session.remember_many` takes for each memory (a dict works too)."""

    text: str
    kind: str = "note"
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    source: str | None = None


@dataclass(frozen=True)
class Recall:
    """One recall result and why it ranked where it did.

    Ranks are 1-based positions in the dense and keyword candidate lists (``None`` when the
    memory was not a candidate there); ``score`` is the fused score the results are sorted by.
    """

    memory: Memory
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory.to_dict(),
            "score": self.score,
            "dense_rank": self.dense_rank,
            "keyword_rank": self.keyword_rank,
            "dense_score": self.dense_score,
            "keyword_score": self.keyword_score,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recall:
        """A recall result read back from :meth:`to_dict`'s form."""
        return cls(
            memory=Memory.from_dict(data["memory"]),
            score=data["score"],
            dense_rank=data["dense_rank"],
            keyword_rank=data["keyword_rank"],
            dense_score=data["dense_score"],
            keyword_score=data["keyword_score"],
        )


@dataclass(frozen=True)
class Page:
    """A page of :meth:`Session.memories`; pass ``next_offset`` back for the next page."""

    items: tuple[Memory, ...]
    total: int
    next_offset: int | None


@dataclass(frozen=True)
class PersonaInfo:
    """What the store knows about a persona without unlocking it."""

    id: str
    name: str
    created_at: datetime
    sealed: bool
    embedder: str
    dimension: int
    #: ``sealed`` (vectors encrypted, searched in memory) or ``indexed`` (plain in pgvector).
    vectors: str = "sealed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors,
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "sealed": self.sealed,
            "embedder": self.embedder,
            "dimension": self.dimension,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One link of the audit chain. Never holds memory content: only events and counts."""

    seq: int
    at: datetime
    event: str
    persona_id: str | None
    persona: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "event": self.event,
            "persona_id": self.persona_id,
            "persona": self.persona,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Notice:
    """Something that happened to a persona while it was not awake normally."""

    at: datetime
    event: str
    detail: dict[str, Any]
