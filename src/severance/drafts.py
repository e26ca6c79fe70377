"""Turning caller input into validated :class:`MemoryDraft` values, before anything is written.

Shared by the Python API (``Session.remember_many``), the CLI (which validates a whole file
before waking any persona) and the servers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from . import validate
from .errors import InvalidInputError, InvalidTurnsError
from .model import Memory, MemoryDraft

__all__ = ["Patch", "read_turns", "to_draft"]


def to_draft(item: MemoryDraft | Mapping[str, Any] | str) -> MemoryDraft:
    """Validate one memory as :meth:`Session.remember_many` takes it (raises before any write)."""
    if isinstance(item, str):
        item = MemoryDraft(text=item)
    elif isinstance(item, Mapping):
        unknown = set(item) - {"text", "kind", "tags", "metadata", "occurred_at", "source"}
        if unknown:
            raise InvalidInputError(f"unknown memory fields: {', '.join(sorted(unknown))}")
        item = MemoryDraft(
            text=item.get("text"),  # type: ignore[arg-type]
            kind=item.get("kind", "note"),
            tags=item.get("tags") or (),
            metadata=item.get("metadata") or {},
            occurred_at=item.get("occurred_at"),
            source=item.get("source"),
        )
    elif not isinstance(item, MemoryDraft):
        raise InvalidInputError("each memory must be a MemoryDraft, a dict or a string")
    return MemoryDraft(
        text=validate.text(item.text),
        kind=validate.kind(item.kind),
        tags=validate.tags(item.tags),
        metadata=validate.metadata(item.metadata),
        occurred_at=validate.when(item.occurred_at, "occurred_at"),
        source=validate.source(item.source),
    )


def read_turns(records: Iterable[Mapping[str, Any]]) -> list[MemoryDraft]:
    """Conversation turns (speaker, text, timestamp, session) as ``episode`` memories.

    Raises :class:`InvalidTurnsError` naming the first bad record; nothing is stored then.
    """
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise InvalidTurnsError("turns must be a list of objects")
    drafts = []
    for n, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise InvalidTurnsError(f"turn {n}: expected an object with speaker and text")
        unknown = set(record) - {"speaker", "text", "timestamp", "session", "tags", "metadata"}
        if unknown:
            raise InvalidTurnsError(f"turn {n}: unknown fields {', '.join(sorted(unknown))}")
        speaker, body = record.get("speaker"), record.get("text")
        if not isinstance(speaker, str) or not speaker.strip():
            raise InvalidTurnsError(f"turn {n}: 'speaker' must be a non-empty string")
        if not isinstance(body, str) or not body.strip():
            raise InvalidTurnsError(f"turn {n}: 'text' must be a non-empty string")
        session = record.get("session")
        if session is not None and not isinstance(session, str | int):
            raise InvalidTurnsError(f"turn {n}: 'session' must be a string or a number")
        extra = record.get("metadata")
        if extra is not None and not isinstance(extra, Mapping):
            raise InvalidTurnsError(f"turn {n}: 'metadata' must be an object")
        try:
            occurred = validate.when(record.get("timestamp"), "timestamp")
            metadata = validate.metadata(
                {**(record.get("metadata") or {}), "speaker": speaker, "session": session}
            )
            draft = MemoryDraft(
                text=validate.text(f"{speaker}: {body}"),
                kind="episode",
                tags=validate.tags(record.get("tags") or ()),
                metadata=metadata,
                occurred_at=occurred,
                source="turns",
            )
        except InvalidInputError as e:
            raise InvalidTurnsError(f"turn {n}: {e}") from None
        drafts.append(draft)
    if not drafts:
        raise InvalidTurnsError("the file holds no turns")
    return drafts


@dataclasses.dataclass(frozen=True)
class Patch:
    """The change an update (or a crossing's merge) makes to a memory (validated already)."""

    text: str | None = None
    kind: str | None = None
    tags: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    add_tags: tuple[str, ...] = ()
    origin: Mapping[str, Any] | None = None

    def onto(self, old: Memory) -> Memory:
        tags = self.tags if self.tags is not None else old.tags
        tags = (tags + tuple(t for t in self.add_tags if t not in tags))[: validate.MAX_TAGS]
        return dataclasses.replace(
            old,
            text=self.text if self.text is not None else old.text,
            kind=self.kind or old.kind,
            tags=tags,
            metadata=self.metadata if self.metadata is not None else old.metadata,
            occurred_at=self.occurred_at or old.occurred_at,
            provenance=old.provenance + ((dict(self.origin),) if self.origin else ()),
        )
