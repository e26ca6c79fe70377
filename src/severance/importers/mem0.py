"""mem0's ``get_all`` output, saved as JSON.

``Memory.get_all(user_id=…)`` returns ``{"results": [...]}`` (older versions: the list
itself; with a graph store also ``"relations"``, which are left out). Each result is
``{"id", "memory", "hash", "metadata", "categories"?, "created_at", "updated_at"?,
"user_id"?, "agent_id"?, "run_id"?, "actor_id"?, "role"?}``. Each becomes one ``fact``: its
text is ``memory``, its time ``created_at``, its tags mem0's ``categories``, its metadata
mem0's own (with ``mem0_id``). Each memory is one item, titled by its text; its project is
the scope it was saved under (``user_id``, else ``agent_id``, else ``run_id``), so
``--route 'project~^alice$ -> home'`` sends one user's memories to one persona.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import InvalidExportError, InvalidInputError
from ..model import MemoryDraft
from .base import Item, read_json_member

__all__ = ["read"]


def read(path: Path) -> list[Item]:
    """The memories of a saved mem0 ``get_all`` result."""
    data = read_json_member(path, path.name)
    if isinstance(data, Mapping):
        data = data.get("results", data.get("memories"))
    if not isinstance(data, list):
        raise InvalidExportError(
            f'{path.name}: expected mem0 get_all output: {{"results": [...]}} or a list'
        )
    items = []
    for n, record in enumerate(data, start=1):
        try:
            items.append(_memory(record))
        except InvalidInputError as e:
            raise InvalidExportError(f"{path.name}: memory {n}: {e}") from None
    return items


def _memory(record: object) -> Item:
    if not isinstance(record, Mapping):
        raise InvalidExportError("expected an object")
    text = validate.text(record.get("memory"), "'memory'")
    meta = record.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        raise InvalidExportError("'metadata' must be an object")
    metadata: dict[str, Any] = {**(meta or {})}
    if record.get("id") is not None:
        metadata["mem0_id"] = str(record["id"])
    for key in ("actor_id", "role"):
        if isinstance(record.get(key), str):
            metadata[key] = record[key]
    categories = record.get("categories")
    tags = [c for c in categories if isinstance(c, str)] if isinstance(categories, list) else []
    scope = next((str(record[k]) for k in ("user_id", "agent_id", "run_id") if record.get(k)), None)
    draft = MemoryDraft(
        text=text,
        kind="fact",
        tags=validate.tags(tags),
        metadata=validate.metadata(metadata),
        occurred_at=validate.when(record.get("created_at"), "'created_at'"),
        source="mem0",
    )
    title = " ".join(text.split())
    return Item(title[:80], (draft,), project=scope, ref=metadata.get("mem0_id"))
