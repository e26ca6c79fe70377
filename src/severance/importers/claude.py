"""Claude's data export (Settings → Privacy → Export data): ``conversations.json``.

The file is a list of conversations ``{"uuid", "name", "created_at", "updated_at",
"chat_messages", …}``; a conversation made in a project names it as ``"project": {"uuid",
"name"}`` or as ``"project_uuid"``, looked up in the archive's ``projects.json`` (a list of
``{"uuid", "name", …}``). ``name`` is often empty: such a conversation is "(untitled)".

Each message is ``{"uuid", "sender": "human" | "assistant", "created_at", "text", "content":
[parts], "attachments": [...], "files": [...]}``. The text is that of the ``text`` parts of
``content`` (older exports have only ``text``); ``thinking``, ``tool_use`` and
``tool_result`` parts are left out. An attachment's ``extracted_content`` (a pasted text or a
document Claude read) is kept as its own turn after the message, since it was part of what was
said; attachment and file names go into the turn's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..chat import message_text, read_conversation
from ..errors import InvalidExportError, InvalidInputError
from .base import Item, chunks, optional_member, read_json_member, text_of

__all__ = ["read"]

_ROLES = {"human": "user", "assistant": "assistant"}


def read(path: Path) -> list[Item]:
    """The conversations of a Claude export ZIP (or its ``conversations.json``)."""
    data = read_json_member(path, "conversations.json")
    if not isinstance(data, list):
        raise InvalidExportError(f"{path.name}: conversations.json must be a list")
    projects = _project_names(optional_member(path, "projects.json"))
    items = []
    for n, conversation in enumerate(data, start=1):
        try:
            item = _conversation(conversation, projects, n)
        except InvalidInputError as e:
            raise InvalidExportError(f"{path.name}: conversation {n}: {e}") from None
        if item is not None:
            items.append(item)
    return items


def _project_names(data: object) -> dict[str, str]:
    if not isinstance(data, list):
        return {}
    return {
        str(p["uuid"]): p["name"]
        for p in data
        if isinstance(p, Mapping) and isinstance(p.get("name"), str) and p.get("uuid")
    }


def _conversation(conv: object, projects: Mapping[str, str], n: int) -> Item | None:
    if not isinstance(conv, Mapping):
        raise InvalidExportError("expected an object")
    messages = conv.get("chat_messages")
    if not isinstance(messages, list):
        raise InvalidExportError("has no 'chat_messages' list")
    ref = str(conv.get("uuid") or "")
    name = conv.get("name")
    title = name.strip() if isinstance(name, str) and name.strip() else "(untitled)"
    project = conv.get("project")
    project_name = (
        project.get("name")
        if isinstance(project, Mapping)
        else projects.get(str(conv.get("project_uuid") or ""))
    )
    records: list[dict[str, Any]] = []
    skipped = 0
    for m, message in enumerate(messages, start=1):
        if not isinstance(message, Mapping):
            raise InvalidExportError(f"message {m} is not an object")
        role = _ROLES.get(str(message.get("sender")))
        if role is None:
            raise InvalidExportError(f"message {m}: unknown sender {message.get('sender')!r}")
        content = message.get("content")
        text = (
            message_text(content, f"message {m} content")
            if isinstance(content, list) and content
            else text_of(message.get("text"), f"message {m} text")
        )
        when = message.get("created_at")
        attachments = [a for a in message.get("attachments") or () if isinstance(a, Mapping)]
        files = [f for f in message.get("files") or () if isinstance(f, Mapping)]
        names = [
            x["file_name"] for x in (*attachments, *files) if isinstance(x.get("file_name"), str)
        ]
        meta = {"attachments": names} if names else {}
        if text.strip():
            for part in chunks(text):
                records.append({"role": role, "content": part, "timestamp": when, "metadata": meta})
        elif not any(isinstance(a.get("extracted_content"), str) for a in attachments):
            skipped += 1
        for attachment in attachments:
            extracted = attachment.get("extracted_content")
            if isinstance(extracted, str) and extracted.strip():
                label = attachment.get("file_name") or "attachment"
                for part in chunks(extracted):
                    records.append(
                        {
                            "role": role,
                            "content": f"[{label}] {part}",
                            "timestamp": when,
                            "metadata": {"attachment": label},
                        }
                    )
    if not records:
        return None
    conversation = read_conversation(
        records,
        # Without the export's id, the conversation's place in the file tells it apart:
        # two untitled chats that both open with "hi" are two conversations.
        session=f"claude:{ref}" if ref else f"claude:#{n}:{title[:100]}",
        at=conv.get("created_at"),
        metadata={"conversation": title},
        source="claude",
    )
    return Item(
        title,
        conversation.drafts,
        project=project_name if isinstance(project_name, str) else None,
        ref=ref or None,
        skipped=skipped,
    )
