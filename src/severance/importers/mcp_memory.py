"""The knowledge graph of the reference MCP memory server (``@modelcontextprotocol/server-memory``).

Its ``memory.jsonl`` (``MEMORY_FILE_PATH``; older versions wrote the same lines to
``memory.json``) holds one JSON object a line: ``{"type": "entity", "name", "entityType",
"observations": [str, …]}`` or ``{"type": "relation", "from", "to", "relationType"}``.

Each entity is one item (titled by its name; its project is its ``entityType``) holding
``fact`` memories: one naming its type ("Alice (person)"), one per observation ("Alice:
speaks fluent Spanish") and one per relation from it ("Alice works_at Acme"), with the
entity, its type and the relation in the metadata. A relation from an entity the file does
not define is an item of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import InvalidExportError, InvalidInputError
from ..model import MemoryDraft
from .base import Item, read_text

__all__ = ["read"]


def read(path: Path) -> list[Item]:
    """The entities (with their observations and relations) of a ``memory.jsonl``."""
    lines = read_text(path).splitlines()
    entities: dict[str, dict[str, Any]] = {}
    relations: list[tuple[int, Mapping[str, Any]]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidExportError(f"{path.name}: line {n} is not JSON ({e.msg})") from None
        except RecursionError:
            raise InvalidExportError(f"{path.name}: line {n} is nested too deeply") from None
        if not isinstance(record, Mapping):
            raise InvalidExportError(f"{path.name}: line {n}: expected an object")
        kind = record.get("type")
        if kind == "entity":
            name, etype = record.get("name"), record.get("entityType")
            observations = record.get("observations") or []
            if not isinstance(name, str) or not name.strip():
                raise InvalidExportError(f"{path.name}: line {n}: an entity needs a 'name'")
            if not isinstance(observations, list) or not all(
                isinstance(o, str) for o in observations
            ):
                raise InvalidExportError(
                    f"{path.name}: line {n}: 'observations' must be a list of strings"
                )
            entity = entities.setdefault(name, {"type": None, "observations": [], "line": n})
            entity["type"] = etype if isinstance(etype, str) and etype.strip() else entity["type"]
            entity["observations"].extend(observations)
        elif kind == "relation":
            for key in ("from", "to", "relationType"):
                if not isinstance(record.get(key), str) or not record[key].strip():
                    raise InvalidExportError(f"{path.name}: line {n}: a relation needs '{key}'")
            relations.append((n, record))
        else:
            raise InvalidExportError(
                f"{path.name}: line {n}: 'type' must be 'entity' or 'relation', got {kind!r}"
            )
    drafts: dict[str, list[MemoryDraft]] = {}
    for name, entity in entities.items():
        meta = {"entity": name, "entity_type": entity["type"]}
        own = drafts.setdefault(name, [])
        what = f"{name} ({entity['type']})" if entity["type"] else name
        try:
            own.append(_fact(what, meta))
            for observation in entity["observations"]:
                if observation.strip():
                    own.append(_fact(f"{name}: {observation}", meta))
        except InvalidInputError as e:
            raise InvalidExportError(
                f"{path.name}: line {entity['line']} (entity {name[:80]!r}): {e}"
            ) from None
    for n, rel in relations:
        try:
            drafts.setdefault(rel["from"], []).append(
                _fact(
                    f"{rel['from']} {rel['relationType']} {rel['to']}",
                    {"entity": rel["from"], "relation": rel["relationType"], "to": rel["to"]},
                )
            )
        except InvalidInputError as e:
            raise InvalidExportError(f"{path.name}: line {n}: {e}") from None
    return [
        Item(name, tuple(ds), project=(entities.get(name) or {}).get("type"), ref=name)
        for name, ds in drafts.items()
    ]


def _fact(text: str, metadata: dict[str, Any]) -> MemoryDraft:
    return MemoryDraft(
        text=validate.text(text),
        kind="fact",
        metadata=validate.metadata({k: v for k, v in metadata.items() if v is not None}),
        source="mcp-memory",
    )
