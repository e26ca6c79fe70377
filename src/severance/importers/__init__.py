"""Importers: bring a history from other tools, sorted into personas.

Each format's module reads an export into :class:`Item` values (a conversation, an entity, a
note…) of validated drafts, without writing anything; :mod:`.routing` assigns each item a
persona; :func:`run` remembers each persona's drafts in one session and logs one ``import``
audit entry for it.

Imports are resumable: every record has an identity (a conversation turn is its conversation
id, position and text; a fact its text, kind and tags — see :mod:`severance.duplicates`), and
remembering a record the persona already holds writes nothing. So an import cut short (kill
-9, a full disk) is finished by running it again, and running a finished import again adds
nothing. Within a persona, drafts are committed in batches, each atomic and durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ..session import Session
from . import chatgpt, claude, jsonl, markdown, mcp_memory, mem0
from .base import Item
from .routing import Route, Routed, parse_route, route

__all__ = [
    "FORMATS",
    "Item",
    "Outcome",
    "Route",
    "Routed",
    "parse_route",
    "read",
    "route",
    "run",
]

#: Importers by format name: each reads a path into items.
FORMATS: dict[str, Callable[[Path], list[Item]]] = {
    "chatgpt": chatgpt.read,
    "claude": claude.read,
    "mem0": mem0.read,
    "mcp-memory": mcp_memory.read,
    "markdown": markdown.read,
    "jsonl": jsonl.read,
}


def read(format_name: str, path: Path) -> list[Item]:
    """Read ``path`` as ``format_name`` (a key of :data:`FORMATS`); nothing is written."""
    return FORMATS[format_name](path)


@dataclass(frozen=True)
class Outcome:
    """What an import did in one persona."""

    persona: str
    items: int
    remembered: int
    already_known: int


def run(
    plan: Sequence[Routed],
    wake: Callable[[str], AbstractContextManager[Session]],
    *,
    importer: str,
    progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Remember each persona's share of ``plan`` (personas in order of first appearance).

    ``wake(persona)`` opens a session of that persona; ``progress(n)`` is told how many of the
    plan's drafts are done (stored or found already there), across personas.
    """
    personas = list(dict.fromkeys(r.persona for r in plan))
    outcomes = []
    done = 0
    for persona in personas:
        share = [r.item for r in plan if r.persona == persona]
        drafts = [d for item in share for d in item.drafts]
        offset = done

        def step(n: int, _total: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + n)

        with wake(persona) as session:
            memories = session.remember_many(drafts, progress=step)
            known = sum(1 for m in memories if m.duplicate)
            session.log_import(
                importer, items=len(share), remembered=len(memories) - known, already_known=known
            )
            outcomes.append(Outcome(session.persona, len(share), len(memories) - known, known))
        done += len(drafts)
        if progress is not None:
            progress(done)
    return outcomes
