"""What an extractor may answer: the JSON schema of its operations, and their validation.

An answer is ``{"operations": [...]}``; each operation is one of

* ``{"op": "add", "text": "...", "kind": "fact"|"preference", "turns": [3]}`` — a new memory;
* ``{"op": "update", "id": "...", "text": "...", "turns": [5]}`` — a new version of a memory
  it was shown (the old version stays in the memory's history);
* ``{"op": "supersede", "id": "...", "by": 0, "turns": [5]}`` — a memory it was shown is no
  longer true (``by``: the index of the ``add`` in this answer that replaces it, if any); the
  memory is kept, marked with ``valid_until`` — never deleted;
* ``{"op": "none"}`` — nothing worth remembering.

``turns`` cite the numbered turns of the prompt each operation rests on. Structure is checked
with :mod:`jsonschema` (a well-kept validator rather than hand-written checks); what a schema
cannot say — that an id is one the extractor was shown, that a turn is in this batch, that
``by`` points at an ``add`` — is checked here after it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ExtractorOutputError

__all__ = ["ANSWER_SCHEMA", "Operation", "parse_answer"]

Op = Literal["add", "update", "supersede", "none"]

#: Sent to servers that constrain decoding to a schema (Ollama's ``format``); kept flat, since
#: grammar converters handle few keywords.
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "operations": {
            "type": "array",
            "maxItems": 200,
            "items": {
                "type": "object",
                "properties": {
                    "op": {"type": "string", "enum": ["add", "update", "supersede", "none"]},
                    "id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "kind": {"type": "string", "enum": ["fact", "preference"]},
                    "by": {"type": "integer", "minimum": 0},
                    "turns": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                },
                "required": ["op"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["operations"],
    "additionalProperties": False,
}


def _requires(op: str, fields: list[str]) -> dict[str, Any]:
    return {
        "if": {"properties": {"op": {"const": op}}},
        "then": {"required": fields},
    }


#: What answers are validated against: the flat schema plus the fields each op needs.
_VALIDATION_SCHEMA: dict[str, Any] = json.loads(json.dumps(ANSWER_SCHEMA))
_VALIDATION_SCHEMA["properties"]["operations"]["items"]["allOf"] = [
    _requires("add", ["text", "turns"]),
    _requires("update", ["id", "text", "turns"]),
    _requires("supersede", ["id", "turns"]),
]


@dataclass(frozen=True)
class Operation:
    """One validated operation. ``turns`` are the prompt's turn numbers."""

    op: Op
    text: str | None = None
    memory_id: str | None = None
    kind: str = "fact"
    turns: tuple[int, ...] = ()
    #: For ``supersede``: the position, in the list :func:`parse_answer` returns, of the
    #: ``add`` that replaces the memory.
    by: int | None = None


def parse_answer(
    content: str, shown_ids: Collection[str], turns: Collection[int]
) -> list[Operation]:
    """The operations of an answer; ExtractorOutputError if it is not valid.

    ``shown_ids`` are the memory ids the prompt showed (only those may be updated or
    superseded, whatever else exists); ``turns`` are the turn numbers it showed.
    """
    import jsonschema

    try:
        data = json.loads(_strip_fence(content))
    except (json.JSONDecodeError, ValueError):
        raise ExtractorOutputError("the extractor's answer is not valid JSON") from None
    validator = jsonschema.Draft202012Validator(_VALIDATION_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the answer"
        raise ExtractorOutputError(
            f"the extractor's answer does not fit the schema at {where}: {error.message[:200]}"
        )
    operations: list[Operation] = []
    items: list[dict[str, Any]] = data["operations"]
    # ``by`` indexes the answer's list; operations drop the "none"s, so renumber.
    position = {i: n for n, i in enumerate(i for i, it in enumerate(items) if it["op"] != "none")}
    for i, item in enumerate(items):
        op: Op = item["op"]
        if op == "none":
            continue
        cited = tuple(item.get("turns", ()))
        if not cited or any(t not in turns for t in cited):
            raise ExtractorOutputError(
                f"operation {i} cites turns {list(cited)}, not the turns it was shown"
            )
        text: str | None = item.get("text")
        if op in ("add", "update") and (text is None or not text.strip()):
            raise ExtractorOutputError(f"operation {i} has blank text")
        memory_id = item.get("id")
        if op in ("update", "supersede") and memory_id not in shown_ids:
            # Same words for "exists elsewhere" and "never existed": nothing about other
            # personas can be learned from this message.
            raise ExtractorOutputError(
                f"operation {i} names memory {memory_id!r}, which is not one it was shown"
            )
        by = item.get("by")
        if op == "supersede" and by is not None and (by >= len(items) or items[by]["op"] != "add"):
            raise ExtractorOutputError(f"operation {i}: 'by' must be the index of an 'add'")
        operations.append(
            Operation(
                op=op,
                text=text,
                memory_id=memory_id,
                kind=item.get("kind", "fact"),
                turns=cited,
                by=None if by is None else position[by],
            )
        )
    return operations


def _strip_fence(content: str) -> str:
    """The JSON inside a Markdown code fence, which some models wrap answers in."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        first, _, rest = text.partition("\n")
        text = rest if first.strip().lower() in ("", "json") else text
    return text
