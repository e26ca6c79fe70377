"""Severance's own JSON Lines export (``severance export``): one memory a line.

Each line is a memory as ``Memory.to_dict`` writes it; ``text``, ``kind``, ``tags``,
``metadata``, ``occurred_at`` and ``source`` are kept (ids, versions and learned-at times are
the target persona's own). The whole file is one item, titled by the file's name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ..drafts import to_draft
from ..errors import InvalidExportError, InvalidInputError
from .base import Item

__all__ = ["read"]

_KEYS = ("text", "kind", "tags", "metadata", "occurred_at", "source")


def read(path: Path) -> list[Item]:
    """The memories of a Severance JSONL export (a JSON array works too)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidExportError(f"cannot read {path.name}: {e}") from None
    try:
        if text.lstrip().startswith("["):
            records = json.loads(text)
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise InvalidExportError(
            f"{path.name}: not valid JSON or JSON Lines ({e.msg}, line {e.lineno})"
        ) from None
    drafts = []
    for n, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise InvalidExportError(f"record {n}: expected a JSON object")
        try:
            drafts.append(to_draft({key: record[key] for key in _KEYS if key in record}))
        except InvalidInputError as e:
            raise InvalidExportError(f"record {n}: {e}") from None
    if not drafts:
        raise InvalidExportError(f"{path.name} holds no memories")
    return [Item(path.stem, tuple(drafts), ref=path.name)]
