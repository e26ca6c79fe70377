"""Conversations as memories: chat messages and Severance turns, turned into ``episode`` drafts.

Two shapes are accepted, record by record (a file may even mix them):

* **chat messages** as OpenAI's and Anthropic's APIs speak them: ``{"role": "user",
  "content": "..."}``, where ``content`` is a string or a list of parts. Text parts
  (``{"type": "text", "text": ...}``, OpenAI's ``input_text`` / ``output_text``, or bare
  strings) are joined with a blank line; other parts (images, audio, tool calls) carry no text
  and are skipped. A message with no text at all (an image alone, a tool call whose
  ``content`` is ``null``) is not stored, and :class:`Conversation` counts it in ``skipped``.
  Optional fields: ``name``, ``timestamp`` (or ``created_at``), ``session``, ``tags``,
  ``metadata``.
* **Severance turns**: ``{"speaker", "text", "timestamp", "session", "tags", "metadata"}``.

A conversation keeps one session id and a time line: a record without a session takes the
previous record's (the first takes ``session=`` or a new ``s_…`` id), and a record without a
timestamp takes the previous record's (the first takes ``at=``, else the time of the call).
Each turn's metadata records ``speaker``, ``session`` and its position ``turn`` (from 0), so
remembering the same conversation twice finds the same turns again (see
:mod:`severance.duplicates`) while the same words in another conversation stay apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import validate
from .errors import InvalidInputError, InvalidTurnsError
from .model import MemoryDraft, new_id

__all__ = ["Conversation", "message_text", "read_conversation"]

_MESSAGE_FIELDS = frozenset(
    {"role", "content", "name", "timestamp", "created_at", "session", "tags", "metadata", "id"}
)
_TURN_FIELDS = frozenset({"speaker", "text", "timestamp", "session", "tags", "metadata"})
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


@dataclass(frozen=True)
class Conversation:
    """The drafts of one conversation, in order, and how many messages held no text."""

    drafts: tuple[MemoryDraft, ...]
    session: str
    skipped: int = 0


def message_text(content: object, where: str = "content") -> str:
    """The text of a message's ``content``: a string, or the text parts of a list joined.

    Returns ``""`` when the content holds no text (only images, tool calls, ``null``).
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence) or isinstance(content, bytes):
        raise InvalidInputError(f"{where} must be a string or a list of parts")
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            body = part.get("text")
            if kind in _TEXT_PART_TYPES or (kind is None and "text" in part):
                if body is None:
                    continue  # an empty text part
                if not isinstance(body, str):
                    raise InvalidInputError(f"{where}: a text part's 'text' must be a string")
                texts.append(body)
        else:
            raise InvalidInputError(f"{where}: each part must be an object or a string")
    return "\n\n".join(t for t in texts if t.strip())


def read_conversation(
    records: Iterable[Mapping[str, Any]],
    *,
    session: str | None = None,
    at: datetime | str | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    source: str | None = None,
    kind: str = "episode",
    now: datetime | None = None,
    require_text: bool = True,
) -> Conversation:
    """Validate a conversation (chat messages or turns) into drafts (``episode`` by default).

    ``kind``, ``tags``, ``metadata`` and ``source`` apply to every turn (a record's own tags
    and metadata are added to them); without ``source``, chat messages are marked ``chat`` and
    turns ``turns``. ``now`` is the time of a first turn with no timestamp when ``at`` is not
    given (default: the clock). Raises :class:`InvalidTurnsError` naming the first bad record;
    nothing is stored then. A conversation of messages none of which holds text is refused
    too, unless ``require_text`` is false (then it has no drafts).
    """
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise InvalidTurnsError("a conversation must be a list of messages")
    try:
        base_tags = validate.tags(tags)
        base_meta = validate.metadata(metadata)
        source = validate.source(source)
        kind = validate.kind(kind)
        start = validate.when(at, "at")
    except InvalidInputError as e:
        raise InvalidTurnsError(str(e)) from None
    if session is not None:
        session = _session_id(session, "session")
    current_session = session
    current_time = start or now or datetime.now(UTC)
    drafts: list[MemoryDraft] = []
    skipped = 0
    position = 0
    for n, record in enumerate(records, start=1):
        try:
            if not isinstance(record, Mapping):
                raise InvalidInputError("expected an object with role and content")
            speaker, body, shape = _speaker_and_text(record)
            named = record.get("session")
            if named is not None:
                named = _session_id(named, "'session'")
                if session is not None and named != session:
                    raise InvalidInputError(
                        f"names session {named!r} but the conversation is {session!r}"
                    )
                current_session = named
            when = validate.when(record.get("timestamp", record.get("created_at")), "timestamp")
            if when is not None:
                current_time = when
            if not body.strip():
                skipped += 1
                continue
            if current_session is None:
                current_session = new_id("s_")
            extra = record.get("metadata")
            if extra is not None and not isinstance(extra, Mapping):
                raise InvalidInputError("'metadata' must be an object")
            meta: dict[str, Any] = {
                **base_meta,
                **(extra or {}),
                "speaker": speaker,
                "session": current_session,
                "turn": position,
            }
            if isinstance(record.get("name"), str):
                meta["name"] = record["name"]
            drafts.append(
                MemoryDraft(
                    text=validate.text(f"{speaker}: {body}"),
                    kind=kind,
                    tags=validate.tags([*base_tags, *(validate.tags(record.get("tags")))]),
                    metadata=validate.metadata(meta),
                    occurred_at=current_time,
                    source=source or shape,
                )
            )
            position += 1
        except InvalidInputError as e:
            raise InvalidTurnsError(f"turn {n}: {e}") from None
    if not drafts and (require_text or not skipped):
        raise InvalidTurnsError(
            "the conversation holds no text" if skipped else "the conversation holds no turns"
        )
    return Conversation(tuple(drafts), current_session or new_id("s_"), skipped)


def _speaker_and_text(record: Mapping[str, Any]) -> tuple[str, str, str]:
    if "role" in record or "content" in record:
        unknown = set(record) - _MESSAGE_FIELDS
        if unknown:
            raise InvalidInputError(f"unknown fields {', '.join(sorted(unknown))}")
        role = record.get("role")
        if not isinstance(role, str) or not role.strip():
            raise InvalidInputError("'role' must be a non-empty string")
        return role.strip(), message_text(record.get("content"), "'content'"), "chat"
    if "speaker" in record or "text" in record:
        unknown = set(record) - _TURN_FIELDS
        if unknown:
            raise InvalidInputError(f"unknown fields {', '.join(sorted(unknown))}")
        speaker, body = record.get("speaker"), record.get("text")
        if not isinstance(speaker, str) or not speaker.strip():
            raise InvalidInputError("'speaker' must be a non-empty string")
        if not isinstance(body, str) or not body.strip():
            raise InvalidInputError("'text' must be a non-empty string")
        return speaker.strip(), body, "turns"
    raise InvalidInputError(
        "expected a chat message (role, content) or a turn (speaker, text); "
        f"got fields {', '.join(sorted(map(str, record))) or 'none'}"
    )


def _session_id(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"{what} must be a string or a number")
    text = str(value).strip()
    if not text or len(text) > 200:
        raise InvalidInputError(f"{what} must have 1 to 200 characters")
    return text
