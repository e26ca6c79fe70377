"""How a session runs its persona's extractor (see :mod:`severance.extract`): the writer the
extraction writes through is made of the session's own verbs, so every fact added or revised
goes through the same checks, provenance and index upkeep as any other write, and the
relevant memories a prompt shows come from the session's own recall.

Every write of one run commits in one transaction with its audit entry (``atomic``, the
session's; see :func:`severance.extract.run.extract`). The texts it writes are embedded
*before* that transaction takes the persona's write lock, through :class:`PrimedEmbedder`,
so other writers wait for the writes alone, not for the model: an import with thousands of
turns would otherwise hold the lock for as long as embedding them takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from . import chat, validate
from .drafts import Patch
from .embedders import Embedder
from .embedders.base import Vectors, check_texts
from .errors import InvalidInputError, NoExtractorError
from .extract import ChatClient, Extraction, ExtractorSettings, Writer
from .extract.run import extract as run_extraction
from .extract.run import relevant_memories
from .model import Memory, MemoryDraft, Recall

__all__ = ["PrimedEmbedder", "extract_with"]


class PrimedEmbedder:
    """An embedder that, while :meth:`primed`, answers the texts it was primed with from the
    vectors it made for them then (any other text is embedded as usual). The model is a pure
    function of the text, so a primed vector is the one embedding it later would give."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._ready: dict[str, npt.NDArray[np.float32]] = {}

    @property
    def name(self) -> str:
        return self._embedder.name

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    @property
    def batch_size(self) -> int:
        return self._embedder.batch_size

    @contextmanager
    def primed(self, texts: Sequence[str]) -> Iterator[None]:
        """Embed ``texts`` now; answer them from memory until the block ends."""
        todo = list(dict.fromkeys(check_texts(texts)))
        vectors = self._embedder.embed(todo) if todo else None
        self._ready = dict(zip(todo, vectors, strict=True)) if vectors is not None else {}
        try:
            yield
        finally:
            self._ready = {}

    def embed(self, texts: Sequence[str]) -> Vectors:
        """As :meth:`Embedder.embed`, from the primed vectors where there are some."""
        texts = check_texts(texts)
        ready = self._ready  # one look: another thread's block may end meanwhile
        missing = list(dict.fromkeys(t for t in texts if t not in ready))
        if len(missing) == len(set(texts)):
            return self._embedder.embed(texts)
        made = dict(zip(missing, self._embedder.embed(missing), strict=True)) if missing else {}
        return np.stack([ready[t] if t in ready else made[t] for t in texts])


def extract_with(
    settings: ExtractorSettings | None,
    persona: str,
    conversations: Iterable[chat.Conversation],
    *,
    get: Callable[[str], Memory],
    add: Callable[[Sequence[MemoryDraft], Sequence[Mapping[str, Any]]], list[Memory]],
    revise: Callable[[str, Patch], Memory],
    episodes: Callable[..., list[Memory]],
    recall: Callable[..., list[Recall]],
    atomic: Callable[[], AbstractContextManager[None]],
    embedder: PrimedEmbedder,
    audit: Callable[..., object],
    keep_turns: bool,
    progress: Callable[[int, int], None] | None,
) -> Extraction:
    """Extract facts from ``conversations`` of ``persona`` with ``settings``' endpoint
    (:class:`NoExtractorError` if it has none), writing through the session's verbs.

    ``atomic`` is the session's one transaction under its write lock; ``embedder`` the
    embedder its writes use (primed here with what the run writes); ``audit`` writes the
    run's ``extraction`` entry, given its counts, inside that transaction."""
    runs = list(conversations) if isinstance(conversations, Iterable) else [conversations]
    if not all(isinstance(c, chat.Conversation) for c in runs):
        raise InvalidInputError("extract takes conversations (see severance.chat)")
    if settings is None:
        raise NoExtractorError(
            f"persona {persona!r} has no extractor: set one with "
            f"`severance persona set {persona} --extractor SPEC`"
        )

    @contextmanager
    def transaction(texts: Sequence[str]) -> Iterator[None]:
        with embedder.primed(texts), atomic():
            yield

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
        transaction=transaction,
        done=lambda result: audit(
            extractor=settings.spec.protocol,
            calls=result.cost.calls,
            added=len(result.added),
            updated=len(result.updated),
            superseded=len(result.superseded),
        ),
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
