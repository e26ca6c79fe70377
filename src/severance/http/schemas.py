"""The HTTP API's wire models: what each endpoint takes and answers (and the OpenAPI schema).

Request models forbid unknown fields and bound every size, so a bad body is a 422 problem
before anything is read or written. Response models are filled from the one serialisation of
each value (:meth:`Memory.to_dict <severance.model.Memory.to_dict>`, :meth:`Recall.to_dict
<severance.model.Recall.to_dict>`), so the HTTP API says what the CLI's ``--json`` says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .. import validate
from ..model import AuditEntry, Memory, MemoryDraft, Notice, Recall

__all__ = [
    "MAX_BATCH",
    "NOT_BLANK",
    "AuditOut",
    "BatchIn",
    "BatchOut",
    "ChatMessageIn",
    "ContentPart",
    "ConversationIn",
    "ConversationOut",
    "EventOut",
    "ExtractIn",
    "ExtractOut",
    "FieldError",
    "HealthOut",
    "HistoryOut",
    "Kind",
    "MemoryId",
    "MemoryIn",
    "MemoryOut",
    "MemoryPatch",
    "MessageIn",
    "NoticesOut",
    "PageOut",
    "PassOut",
    "Problem",
    "RecallHit",
    "RecallIn",
    "RecallOut",
    "Tag",
    "TurnIn",
    "When",
]

#: Most memories, messages or turns one request may carry.
MAX_BATCH = 1000

#: "Not only white space", spelled out: ``\S`` means different things to Python (which
#: validates), ECMA-262 (JSON Schema's dialect) and Rust (pydantic-core); this class is
#: Python's ``str.isspace`` set exactly, and reads the same in all three.
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """A time in UTC, clamped to what survives the store's epoch-seconds round trip.

    Any RFC 3339 time is valid input, but year 1 with a positive offset (or 9999 with a negative
    one, or its last microsecond) has no epoch value that converts back; those are moved to the
    nearest representable instant, at most a day away at the very ends of time.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return _EARLIEST if value.year < 5000 else _LATEST
    return min(max(value, _EARLIEST), _LATEST)


When = Annotated[datetime, AfterValidator(_utc)]
Kind = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="fact, episode, preference, note… (a lower-case word)",
        examples=["fact"],
    ),
]
Tag = Annotated[str, Field(min_length=1, max_length=validate.MAX_TAG_CHARS, pattern=NOT_BLANK)]
Text = Annotated[str, Field(min_length=1, max_length=validate.MAX_TEXT_CHARS, pattern=NOT_BLANK)]
MemoryId = Annotated[str, Path(min_length=1, max_length=128, description="A memory id (m_…).")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryIn(_In):
    """A memory to remember."""

    text: Text = Field(examples=["Q3 launch moved to Oct 12"])
    kind: Kind = "note"
    tags: list[Tag] = Field(default_factory=list, max_length=validate.MAX_TAGS)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Any JSON object (at most 64 KiB encoded)."
    )
    occurred_at: When | None = Field(
        default=None, description="When it happened (default: now). Naive times are UTC."
    )
    source: Annotated[str, Field(max_length=validate.MAX_SOURCE_CHARS)] | None = None

    def draft(self) -> MemoryDraft:
        return MemoryDraft(
            text=self.text,
            kind=self.kind,
            tags=tuple(self.tags),
            metadata=self.metadata,
            occurred_at=self.occurred_at,
            source=self.source,
        )


class BatchIn(_In):
    """Several memories, stored together (validated all before any is written)."""

    memories: list[MemoryIn] = Field(min_length=1, max_length=MAX_BATCH)


Speaker = Annotated[str, Field(min_length=1, max_length=64, pattern=NOT_BLANK)]
TurnText = Annotated[str, Field(max_length=validate.MAX_TEXT_CHARS - 128)]
#: A plain message's text: room is left for the ``role: `` the stored turn starts with.
MessageText = Annotated[str, Field(max_length=validate.MAX_TEXT_CHARS - 66)]


class ContentPart(BaseModel):
    """A part of a message's content; only ``text`` parts (``text``, ``input_text``,
    ``output_text``) carry text, other parts (images, tool calls) are skipped."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[str, Field(min_length=1, max_length=64)]
    text: TurnText | None = None


class MessageIn(_In):
    """One chat message of plain text; the stored turn reads ``role: content``."""

    role: Speaker = Field(examples=["user"])
    content: Annotated[MessageText, Field(min_length=1, pattern=NOT_BLANK)] = Field(
        examples=["The offsite moves to Lisbon"]
    )
    timestamp: When | None = Field(default=None, description="Default: the previous turn's.")


class ChatMessageIn(MessageIn):
    """A chat message as OpenAI's and Anthropic's APIs write it: its ``content`` may also be a
    list of parts (or none), and it may carry a ``name`` and ``metadata``."""

    content: TurnText | list[ContentPart] | None = Field(  # type: ignore[assignment]
        examples=["The offsite moves to Lisbon"]
    )
    name: Annotated[str, Field(max_length=64)] | None = None
    metadata: dict[str, Any] | None = None


class TurnIn(_In):
    """A turn in Severance's own format."""

    speaker: Speaker
    text: Annotated[TurnText, Field(min_length=1, pattern=NOT_BLANK)]
    timestamp: When | None = Field(default=None, description="Default: the previous turn's.")
    metadata: dict[str, Any] | None = None


class ConversationIn(_In):
    """A conversation: chat messages (``role``, ``content`` as a string or a list of parts) or
    turns (``speaker``, ``text``). Every turn with text becomes an ``episode`` memory; all
    share one session id."""

    messages: list[ChatMessageIn | TurnIn] = Field(
        min_length=1,
        max_length=MAX_BATCH,
    )
    session: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The conversation's id (default: a new one)."
    )
    at: When | None = Field(
        default=None, description="The time of turns before the first timestamp (default: now)."
    )
    tags: list[Tag] = Field(default_factory=list, max_length=validate.MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Added to every turn's.")
    source: Annotated[str, Field(max_length=validate.MAX_SOURCE_CHARS)] | None = None


class MemoryPatch(_In):
    """The fields to change; absent or null fields keep their value."""

    text: Text | None = None
    kind: Kind | None = None
    tags: list[Tag] | None = Field(default=None, max_length=validate.MAX_TAGS)
    metadata: dict[str, Any] | None = None
    occurred_at: When | None = None


class RecallIn(_In):
    """A question for the persona's memory."""

    query: Annotated[
        str, Field(min_length=1, max_length=validate.MAX_QUERY_CHARS, pattern=NOT_BLANK)
    ] = Field(examples=["when is the launch?"])
    k: int = Field(default=10, ge=1, le=validate.MAX_K, description="How many results.")
    kinds: list[Kind] | None = Field(default=None, max_length=32, description="Only these kinds.")
    tags: list[Tag] | None = Field(
        default=None, max_length=validate.MAX_TAGS, description="Only memories with all of these."
    )
    since: When | None = Field(default=None, description="Occurred at or after.")
    until: When | None = Field(default=None, description="Occurred before.")
    recency: float = Field(default=0.0, ge=0.0, le=1.0, description="Blend in a 30-day decay.")
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    min_similarity: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="Drop results sharing no keyword whose cosine similarity is below this.",
    )
    include_superseded: bool = Field(
        default=False, description="Also memories no longer true (their history)."
    )


class MemoryOut(BaseModel):
    # Every field is always sent: the schema says so (required), as clients expect of a
    # response, rather than marking the ones with a default optional.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: str
    text: str
    kind: str
    tags: list[str]
    metadata: dict[str, Any]
    occurred_at: datetime
    learned_at: datetime
    updated_at: datetime
    version: int
    source: str | None
    #: Where a reintegrated memory came from (origin persona, origin id, when, how).
    provenance: list[dict[str, Any]] = []
    duplicate: bool = Field(
        default=False,
        description="True when remember found the persona already held this memory (nothing "
        "was written); false everywhere else.",
    )

    @classmethod
    def of(cls, m: Memory) -> MemoryOut:
        """The wire form of ``m``, from its one serialisation (:meth:`Memory.to_dict`)."""
        return cls.model_validate(m.to_dict())


class BatchOut(BaseModel):
    memories: list[MemoryOut]


class ConversationOut(BaseModel):
    session: str
    memories: list[MemoryOut] = Field(description="One per stored turn, in order.")
    skipped: int = Field(description="Messages that held no text (images, tool calls).")


class ExtractIn(_In):
    """A conversation for the persona's own fact extractor (see docs/extraction.md)."""

    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)
    session: Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)] | None = None
    at: When | None = Field(default=None, description="The time of turns without one.")
    keep_turns: bool = Field(default=False, description="Also keep the turns as episodes.")


class ExtractOut(BaseModel):
    added: list[MemoryOut]
    updated: list[MemoryOut]
    superseded: list[MemoryOut]
    episodes: list[str]
    cost: dict[str, int | None]


class RecallHit(BaseModel):
    memory: MemoryOut
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None

    @classmethod
    def of(cls, r: Recall) -> RecallHit:
        return cls.model_validate(r.to_dict())


class RecallOut(BaseModel):
    results: list[RecallHit]


class PageOut(BaseModel):
    items: list[MemoryOut]
    total: int
    next_offset: int | None


class HistoryOut(BaseModel):
    versions: list[MemoryOut] = Field(description="Oldest first; the current version is last.")


class EventOut(BaseModel):
    at: datetime
    event: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, e: Notice | AuditEntry) -> EventOut:
        return cls(at=e.at, event=e.event, detail=e.detail)


class NoticesOut(BaseModel):
    notices: list[EventOut]


class AuditOut(BaseModel):
    entries: list[EventOut]


class PassOut(BaseModel):
    """The pass that made this request."""

    id: str
    floor: str
    persona: str
    read_only: bool
    expires_at: datetime | None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str = Field(examples=["urn:severance:problem:memory_not_found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str = Field(description="Stable machine-readable error name.")
    errors: list[FieldError] | None = None
