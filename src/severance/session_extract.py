"""How a session runs its persona's extractor (see :mod:`severance.extract`): the writer the
extraction writes through is made of the session's own verbs, so every fact added or revised
goes through the same checks, provenance and index upkeep as any other write, and the
relevant memories a prompt shows come from the session's own recall."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import chat, validate
from .drafts import Patch
from .extract import ChatClient, Extraction, ExtractorSettings, Writer
from .extract.run import extract as run_extraction
from .extract.run import relevant_memories
from .model import Memory, MemoryDraft, Recall

__all__ = ["extract_with"]


def extract_with(
    settings: ExtractorSettings,
    runs: Sequence[chat.Conversation],
    *,
    get: Callable[[str], Memory],
    add: Callable[[Sequence[MemoryDraft], Sequence[Mapping[str, Any]]], list[Memory]],
    revise: Callable[[str, Patch], Memory],
    episodes: Callable[..., list[Memory]],
    recall: Callable[..., list[Recall]],
    keep_turns: bool,
    progress: Callable[[int, int], None] | None,
) -> Extraction:
    """Extract facts from ``runs`` with ``settings``' endpoint, writing through the verbs."""
    writer = Writer(
        get=get,
        add=add,
        revise=lambda memory_id, text, meta, origin: revise(
            memory_id,
            Patch(
                text=validate.text(text) if text is not None else None,
                metadata=dict(meta) if meta is not None else None,
                origin=origin,
            ),
        ),
        episodes=episodes,
    )
    with ChatClient(settings) as client:
        return run_extraction(
            list(runs),
            client,
            lambda texts, limit: relevant_memories(recall, texts, limit),
            writer,
            keep_turns=keep_turns,
            progress=progress,
        )
