"""The development sets of the retrieval evaluation, and their vectors from the on-disk cache.

Two sets of different shape (see ``docs/benchmarks.md``, "Retrieval development sets"):

* ``locomo-dev`` — the five LoCoMo conversations retrieval constants may be chosen on
  (:data:`bench.locomo_bench.SPLITS`); ``locomo-test`` is the other five, for the final figure
  only;
* ``chat`` — synthetic messaging-app chats from :mod:`bench.devset_chat` (per-message send
  times, nicknames, short replies);
* ``chat-hard`` — the same generator's harder variant (:mod:`bench.devset_chat_hard`, another
  seed: paraphrased answers, names seldom said, distractors, group chats), so that a change
  is not kept for a signal the plain generator planted.

Turn and question vectors are computed once per text and kept under ``bench/.cache/`` (turns
beside the LoCoMo harness's, questions in ``queries/``), so a rerun embeds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.devset_chat import DEFAULT_SEED, generate
from bench.devset_chat_hard import HARD_SEED
from bench.embedding import DEFAULT_CACHE_DIR, EmbedderLike, EmbeddingCache
from bench.embedding import default_embedder_factory as _factory
from bench.locomo import Conversation, load_locomo
from bench.locomo_bench import SPLITS

__all__ = ["SETS", "DevSet", "TwoCacheEmbedder", "load_set"]

SETS: tuple[str, ...] = ("locomo-dev", "chat", "chat-hard", "locomo-test")
#: Chats generated for the ``chat`` set (about 500 messages and 34 questions each).
CHAT_CONVERSATIONS = 20

Vectors = npt.NDArray[np.float32]


@dataclass
class DevSet:
    name: str
    conversations: list[Conversation]


def load_set(name: str) -> DevSet:
    """One of :data:`SETS`."""
    if name in ("chat", "chat-hard"):
        hard = name == "chat-hard"
        seed = HARD_SEED if hard else DEFAULT_SEED
        data = generate(seed, conversations=CHAT_CONVERSATIONS, hard=hard)
        return DevSet(name, list(data.conversations))
    if name in ("locomo-dev", "locomo-test"):
        split = name.removeprefix("locomo-")
        return DevSet(name, load_locomo(only=SPLITS[split]).conversations)
    raise ValueError(f"unknown set {name!r} (one of {', '.join(SETS)})")


class TwoCacheEmbedder:
    """The shared model, answering turn texts and questions from their caches (misses live)."""

    def __init__(self, sets: Sequence[DevSet], cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
        make = _factory()
        self.inner: EmbedderLike = make()
        self.turns = EmbeddingCache(self.inner, cache_dir)
        self.turns.warm([t.document for s in sets for c in s.conversations for t in c.turns])
        self.questions = EmbeddingCache(self.inner, cache_dir / "queries")
        self.questions.warm(
            [q.question for s in sets for c in s.conversations for q in c.questions], batch=64
        )
        self._cache_dir = cache_dir
        self._contextual: EmbeddingCache | None = None
        self.name = self.inner.name
        self.dimension = int(self.inner.dimension)
        self.batch_size = 64

    def vector(self, text: str) -> Vectors:
        v = self.turns.get(text)
        if v is None:
            v = self.questions.get(text)
        if v is None:
            v = np.asarray(self.inner.embed([text])[0], dtype=np.float32)
        return v

    def contextual(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts`` (turns joined to their context) from a cache of their own."""
        if self._contextual is None:
            self._contextual = EmbeddingCache(self.inner, self._cache_dir / "contextual")
        self._contextual.warm(texts, batch=64)
        got = [self._contextual.get(t) for t in texts]
        return np.stack([v for v in got if v is not None])

    def embed(self, texts: Sequence[str]) -> Vectors:
        return np.stack([self.vector(t) for t in texts])
