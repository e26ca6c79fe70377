"""What the MCP tools answer: structured results (each tool's output schema).

Every result names the persona (and floor) it came from, and the first result of a connection
for a persona also carries that persona's notices. Memories come from their one serialisation
(:meth:`Memory.to_dict <severance.model.Memory.to_dict>`), cut to the fields a model needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .model import Memory, Notice
from .notice_text import describe as describe_notice

__all__ = [
    "Forgotten",
    "Got",
    "Listed",
    "MemoryItem",
    "NoticeItem",
    "Notices",
    "PersonaResult",
    "RecallItem",
    "Recalled",
    "Remembered",
    "Status",
]


class NoticeItem(BaseModel):
    at: str = Field(description="When it happened (ISO-8601).")
    event: str = Field(description="override, reintegrated_into or reintegrated_from.")
    text: str = Field(description="What happened, in words to pass on to the user.")

    @classmethod
    def of(cls, persona: str, n: Notice) -> NoticeItem:
        return cls(at=n.at.isoformat(), event=n.event, text=describe_notice(persona, n))


class PersonaResult(BaseModel):
    persona: str = Field(description="The persona this call read or wrote.")
    floor: str | None = Field(default=None, description="The floor that woke it.")
    notices: list[NoticeItem] | None = Field(
        default=None,
        description="Only on the first result for this persona: what happened to it while it"
        " slept (overrides, reintegrations). Tell the user.",
    )


class MemoryItem(BaseModel):
    id: str
    text: str
    kind: str
    tags: list[str]
    occurred_at: str = Field(description="When it happened (ISO-8601).")

    @classmethod
    def of(cls, m: Memory) -> MemoryItem:
        data = m.to_dict()
        return cls.model_validate({name: data[name] for name in MemoryItem.model_fields})


class Remembered(PersonaResult):
    memory: MemoryItem
    duplicate: bool = Field(
        default=False, description="True if the persona already held it: nothing was stored."
    )


class Got(PersonaResult):
    memory: MemoryItem
    metadata: dict[str, Any]
    version: int = Field(description="Counts updates from 1.")
    source: str | None = Field(description="Where the memory came from (e.g. mcp:claude-code).")


class RecallItem(MemoryItem):
    score: float = Field(description="Higher is more relevant (fused dense + keyword rank).")


class Recalled(PersonaResult):
    results: list[RecallItem]


class Forgotten(PersonaResult):
    forgotten: str = Field(description="The id of the memory that was deleted.")


class Listed(PersonaResult):
    items: list[MemoryItem]
    total: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null at end.")


class Status(BaseModel):
    persona: str = Field(description="The persona awake for this client, here and now.")
    floor: str | None = Field(description="The floor that woke it.")
    why: list[str] = Field(description="Why that floor: the conditions that matched.")
    client: str | None = Field(description="Your client name, as you sent it.")
    client_family: str | None = Field(description="The client family it belongs to, if known.")
    workspace: list[str] = Field(description="The workspace paths the floor was chosen by.")
    notices: list[NoticeItem] = Field(
        description="Overrides and reintegrations of this persona since it last woke."
    )


class Notices(BaseModel):
    persona: str
    notices: list[NoticeItem]
