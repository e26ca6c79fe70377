"""A folder of Markdown notes (Obsidian, Logseq, a docs tree): one item per file.

Every ``*.md`` / ``*.markdown`` file under the folder (hidden files and folders left out, in
path order) is one item, titled by its first top-level ``# heading`` or else its file name;
its project is its sub-folder (``journal/2024``). Its text becomes ``note`` memories: the
whole file, or pieces cut at paragraphs when it is longer than a memory may be. A YAML front
matter block is left out of the text. Files that are links leading out of the folder are
left out: they are not the folder's notes. The time is the file's modification time. Metadata
records the file's path (relative to the folder) and the piece.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from .. import validate
from ..errors import InvalidExportError, InvalidInputError
from ..model import MemoryDraft
from .base import Item, chunks, read_text

__all__ = ["read"]

_SUFFIXES = frozenset({".md", ".markdown"})
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
# An empty block (``---`` twice) and one closing at the very end of the file count too.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?:.*?\r?\n)??---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def read(path: Path) -> list[Item]:
    """The notes of a folder of Markdown files (or one Markdown file)."""
    if path.is_file():
        files, root = [path], path.parent
    elif path.is_dir():
        root = path
        inside = path.resolve()
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix.lower() in _SUFFIXES
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
            # A link out of the folder is not one of its notes (and may be anything).
            and p.resolve().is_relative_to(inside)
        )
    else:
        raise InvalidExportError(f"{path} is neither a folder nor a Markdown file")
    items = []
    for file in files:
        relative = file.relative_to(root).as_posix()
        text = read_text(file, relative)
        body = _FRONT_MATTER.sub("", text, count=1)
        if not body.strip():
            continue
        heading = _HEADING.search(body)
        title = heading.group(1).strip() if heading else file.stem
        when = datetime.fromtimestamp(file.stat().st_mtime, UTC)
        pieces = chunks(body)
        try:
            drafts = tuple(
                MemoryDraft(
                    text=validate.text(piece),
                    kind="note",
                    metadata=validate.metadata(
                        {"path": relative, "part": n} if len(pieces) > 1 else {"path": relative}
                    ),
                    occurred_at=when,
                    source="markdown",
                )
                for n, piece in enumerate(pieces)
            )
        except InvalidInputError as e:
            raise InvalidExportError(f"{relative}: {e}") from None
        folder = file.parent.relative_to(root).as_posix()
        items.append(Item(title, drafts, project=None if folder == "." else folder, ref=relative))
    return items
