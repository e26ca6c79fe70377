"""ChatGPT's data export (Settings → Data controls → Export): ``conversations.json``.

The file is a list of conversations. Each holds its messages as a tree, ``mapping``: node id →
``{"id", "message", "parent", "children"}``, because an edited prompt or a regenerated answer
starts a new branch. ``current_node`` names the leaf of the branch the user last saw; the
conversation is that branch, read from the root down (as OpenAI's own ``chat.html`` viewer in
the export does). Without ``current_node`` the leaf of the newest message is used.

A message is ``{"author": {"role"}, "create_time", "content": {"content_type", "parts" |
"text"}, "recipient", "metadata"}``. Kept: user and assistant messages addressed to everyone
(``recipient`` ``all``) whose content is ``text`` or ``multimodal_text`` (string parts, and
``audio_transcription`` parts' text; images and other assets carry no text). Left out: system
and tool messages, hidden context (custom instructions), tool calls, reasoning summaries.
Attachment names (``metadata.attachments``) are kept in the turn's metadata.

A conversation inside a project carries the project's ``gizmo_id`` (``g-p-…``); the export
does not name projects, so that id is the item's project.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..chat import read_conversation
from ..errors import InvalidExportError, InvalidInputError
from .base import Item, chunks, epoch_time, read_json_member

__all__ = ["read"]

_TEXT_TYPES = frozenset({"text", "multimodal_text"})


def read(path: Path) -> list[Item]:
    """The conversations of a ChatGPT export ZIP (or its ``conversations.json``)."""
    data = read_json_member(path, "conversations.json")
    if not isinstance(data, list):
        raise InvalidExportError(f"{path.name}: conversations.json must be a list")
    items = []
    for n, conversation in enumerate(data, start=1):
        try:
            item = _conversation(conversation, n)
        except InvalidInputError as e:
            raise InvalidExportError(f"{path.name}: conversation {n}: {e}") from None
        if item is not None:
            items.append(item)
    return items


def _conversation(conv: object, n: int) -> Item | None:
    if not isinstance(conv, Mapping):
        raise InvalidExportError("expected an object")
    mapping = conv.get("mapping")
    if not isinstance(mapping, Mapping):
        raise InvalidExportError("has no 'mapping' of messages")
    ref = str(conv.get("conversation_id") or conv.get("id") or "")
    title = conv.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else "(untitled)"
    records: list[dict[str, Any]] = []
    skipped = 0
    for message in _branch(mapping, conv.get("current_node")):
        if message is None:
            continue
        role, text, meta = _message(message)
        if role is None:
            continue
        when = epoch_time(message.get("create_time"))
        if not text.strip():
            skipped += 1
            continue
        for part in chunks(text):
            records.append({"role": role, "content": part, "timestamp": when, "metadata": meta})
    if not records:
        return None
    gizmo = conv.get("gizmo_id")
    project = gizmo if isinstance(gizmo, str) and gizmo.startswith("g-p-") else None
    conversation = read_conversation(
        records,
        # Without the export's id, the conversation's place in the file tells it apart:
        # two untitled chats that both open with "hi" are two conversations.
        session=f"chatgpt:{ref}" if ref else f"chatgpt:#{n}:{title[:100]}",
        at=epoch_time(conv.get("create_time")),
        metadata={"conversation": title},
        source="chatgpt",
    )
    return Item(title, conversation.drafts, project=project, ref=ref or None, skipped=skipped)


def _branch(mapping: Mapping[str, Any], current: object) -> list[Mapping[str, Any] | None]:
    """The messages from the root to the current leaf."""
    if not isinstance(current, str) or current not in mapping:
        current = _newest_leaf(mapping)
    path: list[Mapping[str, Any] | None] = []
    seen: set[str] = set()
    node_id: object = current
    while isinstance(node_id, str) and node_id in mapping and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, Mapping):
            raise InvalidExportError(f"node {node_id!r} is not an object")
        message = node.get("message")
        path.append(message if isinstance(message, Mapping) else None)
        node_id = node.get("parent")
    path.reverse()
    return path


def _newest_leaf(mapping: Mapping[str, Any]) -> str | None:
    best: tuple[float, str] | None = None
    for node_id, node in mapping.items():
        if not isinstance(node, Mapping) or node.get("children"):
            continue
        message = node.get("message")
        when = message.get("create_time") if isinstance(message, Mapping) else None
        key = (float(when) if isinstance(when, int | float) else 0.0, str(node_id))
        if best is None or key > best:
            best = key
    return None if best is None else best[1]


def _message(message: Mapping[str, Any]) -> tuple[str | None, str, dict[str, Any]]:
    author = message.get("author")
    role = author.get("role") if isinstance(author, Mapping) else None
    metadata = message.get("metadata") if isinstance(message.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    if role not in ("user", "assistant") or metadata.get("is_visually_hidden_from_conversation"):
        return None, "", {}
    if message.get("recipient", "all") != "all":
        return None, "", {}  # a tool call, not said to the user
    content = message.get("content")
    if not isinstance(content, Mapping):
        return role, "", {}
    if content.get("content_type") not in _TEXT_TYPES:
        # Code sent to a tool, browsing quotes, reasoning: not part of what was said.
        return (None, "", {}) if role == "assistant" else (role, "", {})
    texts = []
    parts = content.get("parts")
    if isinstance(parts, str):  # seen in hand-edited and third-party exports
        parts = [parts]
    elif not isinstance(parts, list):
        parts = [content["text"]] if isinstance(content.get("text"), str) else []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif (
            isinstance(part, Mapping)
            and part.get("content_type") == "audio_transcription"
            and isinstance(part.get("text"), str)
        ):
            texts.append(part["text"])
    meta: dict[str, Any] = {}
    attachments = metadata.get("attachments")
    if isinstance(attachments, list):
        names = [a.get("name") for a in attachments if isinstance(a, Mapping)]
        if names := [n for n in names if isinstance(n, str)]:
            meta["attachments"] = names
    return role, "\n\n".join(t for t in texts if t.strip()), meta
