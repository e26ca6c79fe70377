"""What every importer hands back: routable items, each a titled group of validated drafts.

An *item* is the unit a routing rule sends to a persona: a conversation of a ChatGPT or Claude
export, an entity of an MCP memory graph, a memory of mem0, a file of a Markdown folder, a
whole Severance JSONL export. Importers validate everything while reading, so a bad record
stops the import before any persona wakes.
"""

from __future__ import annotations

import json
import zipfile
import zlib
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
    "decode",
    "epoch_time",
    "objects",
    "optional_member",
    "read_bytes",
    "read_json_member",
    "read_text",
    "text_of",
]

#: Long texts are cut below the memory limit, at a paragraph or line break where one is near.
CHUNK_CHARS = MAX_TEXT_CHARS - 1_024

#: The largest file (or archive member, uncompressed) an import reads. An export is parsed
#: whole, so this bounds the memory an import may take; it also stops a ZIP bomb, whose
#: member is checked by its declared size and then read no further than the limit.
MAX_FILE_BYTES = 1 << 30


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


def _too_big(what: str, size: int) -> InvalidExportError:
    return InvalidExportError(
        f"{what} is {size:,} bytes; an import reads at most {MAX_FILE_BYTES:,} bytes a file"
    )


def read_bytes(path: Path, what: str | None = None) -> bytes:
    """The bytes of ``path``, refused (InvalidExportError) above :data:`MAX_FILE_BYTES`."""
    what = what or path.name
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InvalidExportError(f"cannot read {what}: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _too_big(what, len(raw))
    return raw


def decode(raw: bytes, what: str) -> str:
    """UTF-8 text (a byte-order mark dropped); InvalidExportError naming ``what`` if not."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidExportError(f"{what} is not UTF-8 (byte {e.start:,})") from None


def read_text(path: Path, what: str | None = None) -> str:
    """The UTF-8 text of ``path`` (see :func:`read_bytes` and :func:`decode`)."""
    return decode(read_bytes(path, what), what or path.name)


def _member(path: Path, member: str) -> bytes:
    """The bytes of the shallowest file named ``member`` in the ZIP at ``path``."""
    where = f"{path.name}: {member}"
    with zipfile.ZipFile(path) as archive:
        infos = [i for i in archive.infolist() if i.filename.rsplit("/", 1)[-1] == member]
        infos.sort(key=lambda i: i.filename.count("/"))
        if not infos:
            raise InvalidExportError(f"{path.name}: the archive holds no {member}")
        info = infos[0]
        if info.file_size > MAX_FILE_BYTES:
            raise _too_big(where, info.file_size)
        with archive.open(info) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _too_big(where, len(raw))
    return raw


def read_json_member(path: Path, member: str) -> Any:
    """The JSON of ``path`` itself, or of the file named ``member`` inside a ZIP archive.

    A data export ZIP may hold the file at its top or in one folder (``data-2025-…/``). Only
    the member is read, never extracted, so names in the archive cannot reach the disk.
    """
    where = path.name
    try:
        if zipfile.is_zipfile(path):
            where = f"{path.name}: {member}"
            raw = _member(path, member)
        else:
            raw = read_bytes(path)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InvalidExportError(f"cannot read {where}: {e}") from None
    except RuntimeError:  # zipfile's word for an encrypted member
        raise InvalidExportError(f"cannot read {where}: it is encrypted") from None
    except NotImplementedError:  # a compression method zipfile lacks (Deflate64, LZMA-less)
        raise InvalidExportError(
            f"cannot read {where}: its compression method is not supported"
        ) from None
    try:
        return json.loads(decode(raw, where))
    except json.JSONDecodeError as e:
        raise InvalidExportError(f"{where} is not JSON ({e.msg}, line {e.lineno})") from None
    except RecursionError:
        raise InvalidExportError(f"{where} is nested too deeply to read") from None


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
