"""What every importer hands back: routable items, each a titled group of validated drafts.

An *item* is the unit a routing rule sends to a persona: a conversation of a ChatGPT or Claude
export, an entity of an MCP memory graph, a memory of mem0, a file of a Markdown folder, a
whole Severance JSONL export. Importers validate everything while reading, so a bad record
stops the import before any persona wakes.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidExportError, InvalidInputError
from ..model import MemoryDraft
from ..validate import MAX_TEXT_CHARS

__all__ = [
    "Item",
    "chunks",
    "epoch_time",
    "objects",
    "optional_member",
    "read_json_member",
    "text_of",
]

#: Long texts are cut below the memory limit, at a paragraph or line break where one is near.
CHUNK_CHARS = MAX_TEXT_CHARS - 1_024


@dataclass(frozen=True)
class Item:
    """One routable unit of an import: what ``--route`` rules match and ``--dry-run`` lists."""

    title: str
    drafts: tuple[MemoryDraft, ...]
    #: The export's project (Claude projects, a Markdown sub-folder, mem0's user or agent).
    project: str | None = None
    #: The export's own id for the item (a conversation id), when it has one.
    ref: str | None = None
    #: Messages of the item that held no text (images, tool calls) and were left out.
    skipped: int = 0


def chunks(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at paragraph or line breaks."""
    out: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = max(rest.rfind("\n\n", 0, limit), rest.rfind("\n", 0, limit))
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        out.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        out.append(rest)
    return out


def epoch_time(value: object) -> str | None:
    """An ISO-8601 time from seconds since the epoch (ChatGPT's ``create_time``), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"expected seconds since the epoch, got {value!r}")
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise InvalidInputError(f"time {value!r} is out of range") from None


def read_json_member(path: Path, member: str) -> Any:
    """The JSON of ``path`` itself, or of the file named ``member`` inside a ZIP archive.

    A data export ZIP may hold the file at its top or in one folder (``data-2025-…/``).
    """
    where = path.name
    try:
        if zipfile.is_zipfile(path):
            where = f"{path.name}: {member}"
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == member]
                names.sort(key=lambda n: n.count("/"))
                if not names:
                    raise InvalidExportError(f"{path.name}: the archive holds no {member}")
                raw = archive.read(names[0])
        else:
            raw = path.read_bytes()
        return json.loads(raw.decode("utf-8-sig"))
    except (OSError, zipfile.BadZipFile) as e:
        raise InvalidExportError(f"cannot read {path.name}: {e}") from None
    except UnicodeDecodeError:
        raise InvalidExportError(f"{where} is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise InvalidExportError(f"{where} is not JSON ({e.msg}, line {e.lineno})") from None


def optional_member(path: Path, member: str) -> Any | None:
    """Like :func:`read_json_member`, but None when an archive does not hold ``member``."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(n.rsplit("/", 1)[-1] == member for n in archive.namelist()):
                return None
    except (OSError, zipfile.BadZipFile):
        return None
    return read_json_member(path, member)


def text_of(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidExportError(f"{what} must be a string")
    return value


def objects(value: object, what: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InvalidExportError(f"{what} must be a list of objects")
    return value
