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
from .base import Item, read_text

__all__ = ["read"]

_KEYS = ("text", "kind", "tags", "metadata", "occurred_at", "source")


def read(path: Path) -> list[Item]:
    """The memories of a Severance JSONL export (a JSON array works too).

    Errors name the file and the line (JSON Lines) or the record (an array).
    """
    text = read_text(path)
    where: list[str]
    try:
        if text.lstrip().startswith("["):
            records = json.loads(text)
            where = [f"record {n}" for n in range(1, len(records) + 1)]
        else:
            records, where = [], []
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InvalidExportError(
                            f"{path.name}: line {n} is not JSON ({e.msg})"
                        ) from None
                    where.append(f"line {n}")
    except json.JSONDecodeError as e:
        raise InvalidExportError(
            f"{path.name}: not valid JSON or JSON Lines ({e.msg}, line {e.lineno})"
        ) from None
    except RecursionError:
        raise InvalidExportError(f"{path.name} is nested too deeply to read") from None
    drafts = []
    for record, place in zip(records, where, strict=True):
        if not isinstance(record, Mapping):
            raise InvalidExportError(f"{path.name}: {place}: expected a JSON object")
        try:
            drafts.append(to_draft({key: record[key] for key in _KEYS if key in record}))
        except InvalidInputError as e:
            raise InvalidExportError(f"{path.name}: {place}: {e}") from None
    if not drafts:
        raise InvalidExportError(f"{path.name} holds no memories")
    return [Item(path.stem, tuple(drafts), ref=path.name)]
