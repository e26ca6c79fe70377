"""Data for the speed and scale section: synthetic memories built from real LoCoMo turns.

Embedding a million texts with the bundled model would take over an hour on two cores, so the
section separates the embedder from the memory layer (see :mod:`bench.speed`):

* **Texts.** Memory ``i`` is the concatenation of two LoCoMo turns ``a_i`` and ``b_i`` drawn at
  random (seeded): ``"<turn a> <turn b>"``, about 290 characters, with the corpus's real word
  statistics (which is what BM25 postings see). The same generator serves every size, so the
  10k set is a prefix of the 100k set, which is a prefix of the 1M set.
* **Vectors.** The turns are embedded for real with the bundled model (cached in
  ``bench/.cache/``, shared with the LoCoMo section); memory ``i`` gets
  ``normalise(v[a_i] + v[b_i])``. That is not the model's embedding of the concatenated text,
  but it has the same kind of structure (clusters, shared topics) — unlike uniform random
  vectors, which are an unrealistically hard case for HNSW. How close it is to the real
  embedding is measured on a sample and reported (``derived_vs_real_cosine``).
* **Queries.** LoCoMo questions, embedded for real (their embedding time is the query-embedding
  figure); every system gets the same query vectors.

Every system receives identical texts and vectors.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.embedding import DEFAULT_CACHE_DIR, EmbedderLike, EmbeddingCache
from bench.locomo import load_locomo

__all__ = ["Corpus", "LookupEmbedder", "Synthetic", "load_corpus", "synthesise"]

Vectors = npt.NDArray[np.float32]
SEED = 20261121
#: occurred_at of the synthetic memories spreads over this many days before BASE_TIME.
SPAN_DAYS = 730
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
#: Tags spread memories over this many "conversations" (a selective filter picks one).
N_TAGS = 50


@dataclass
class Corpus:
    """Real LoCoMo turns and questions with their real embeddings."""

    turns: list[str]
    turn_vectors: Vectors
    queries: list[str]
    query_vectors: Vectors
    query_embed_seconds: list[float]  # one live, uncached embed() call per query
    embedder: str
    dimension: int
    turns_embedded_now: int
    turns_embed_seconds: float
    model_load_seconds: float
    model: EmbedderLike | None = field(default=None, repr=False)


@dataclass
class Synthetic:
    """``n`` synthetic memories: text, vector, tag and time of each."""

    texts: list[str]
    vectors: Vectors
    occurred_at: npt.NDArray[np.float64]
    tags: list[str]
    pairs: npt.NDArray[np.int64]  # (n, 2): the two turns of each memory

    def __len__(self) -> int:
        return len(self.texts)

    def slice(self, start: int, end: int) -> Synthetic:
        return Synthetic(
            self.texts[start:end],
            self.vectors[start:end],
            self.occurred_at[start:end],
            self.tags[start:end],
            self.pairs[start:end],
        )


def _fresh_model() -> tuple[EmbedderLike, float]:
    """The bundled embedder, freshly loaded, without its query cache; and its load time."""
    from severance.embedders.minilm import MiniLM

    t0 = time.perf_counter()
    model = MiniLM(cache_size=0)
    return model, time.perf_counter() - t0


def load_corpus(
    n_queries: int,
    *,
    locomo_path: Path | None = None,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    seed: int = SEED,
) -> Corpus:
    """Turns (unique documents) and ``n_queries`` questions, with real vectors."""
    data = load_locomo(locomo_path)
    turns = list(dict.fromkeys(t.document for c in data.conversations for t in c.turns))
    questions = list(dict.fromkeys(q.question for c in data.conversations for q in c.questions))
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(questions), size=min(n_queries, len(questions)), replace=False))
    queries = [questions[i] for i in picked]

    model, load_s = _fresh_model()
    cache = EmbeddingCache(model, cache_dir)
    stats = cache.warm(turns)
    turn_vectors = np.stack([cache.get(t) for t in turns]).astype(np.float32)  # type: ignore[misc]
    # Queries: one at a time, live, exactly as a recall would embed them.
    model.embed(["warm-up query"])
    qv = np.empty((len(queries), model.dimension), dtype=np.float32)
    secs: list[float] = []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        qv[i] = model.embed([q])[0]
        secs.append(time.perf_counter() - t0)
    return Corpus(
        turns=turns,
        turn_vectors=turn_vectors,
        queries=queries,
        query_vectors=qv,
        query_embed_seconds=secs,
        embedder=model.name,
        dimension=int(model.dimension),
        turns_embedded_now=stats.n_computed,
        turns_embed_seconds=stats.seconds,
        model_load_seconds=load_s,
        model=model,
    )


def synthesise(corpus: Corpus, n: int, *, seed: int = SEED) -> Synthetic:
    """The first ``n`` synthetic memories (a prefix of any larger set with the same seed)."""
    rng = np.random.default_rng(seed + 1)
    nt = len(corpus.turns)
    # Draw in fixed-size blocks so that a smaller n gives a prefix of a larger one.
    block = 1 << 16
    pairs_parts = []
    when_parts = []
    tag_parts = []
    for _ in range(0, n, block):
        pairs_parts.append(rng.integers(0, nt, size=(block, 2)))
        when_parts.append(rng.random(block))
        tag_parts.append(rng.integers(0, N_TAGS, size=block))
    pairs = np.concatenate(pairs_parts)[:n] if pairs_parts else np.zeros((0, 2), np.int64)
    when = np.concatenate(when_parts)[:n] if when_parts else np.zeros(0)
    tag_ids = np.concatenate(tag_parts)[:n] if tag_parts else np.zeros(0, np.int64)
    vectors = np.empty((n, corpus.dimension), dtype=np.float32)
    tv = corpus.turn_vectors
    for start in range(0, n, block):
        p = pairs[start : start + block]
        v = tv[p[:, 0]] + tv[p[:, 1]]
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors[start : start + len(p)] = v / norms
    turns = corpus.turns
    texts = [f"{turns[a]} {turns[b]}" for a, b in pairs.tolist()]
    occurred = BASE_TIME - when * SPAN_DAYS * 86400.0
    tags = [f"conv-{t:02d}" for t in tag_ids.tolist()]
    return Synthetic(texts, vectors, occurred.astype(np.float64), tags, pairs.astype(np.int64))


def derived_vs_real(corpus: Corpus, syn: Synthetic, sample: int) -> dict[str, Any]:
    """Embed ``sample`` synthetic texts for real (batch 64): throughput and vector fidelity."""
    model = corpus.model
    if model is None:
        model, _ = _fresh_model()
    texts = syn.texts[:sample]
    model.embed(texts[:8])  # warm-up
    t0 = time.perf_counter()
    real = np.asarray(model.embed(texts), dtype=np.float32)
    secs = time.perf_counter() - t0
    cos = np.sum(real * syn.vectors[: len(texts)], axis=1)
    return {
        "texts": len(texts),
        "seconds": secs,
        "texts_per_second": len(texts) / secs if secs else None,
        "batch_size": int(getattr(model, "batch_size", 64)),
        "mean_chars": float(np.mean([len(t) for t in texts])) if texts else None,
        "derived_vs_real_cosine_mean": float(cos.mean()) if len(cos) else None,
        "derived_vs_real_cosine_p10": float(np.percentile(cos, 10)) if len(cos) else None,
    }


class LookupEmbedder:
    """A working embedder double: answers from precomputed vectors keyed by text.

    It carries the real model's ``name`` and ``dimension`` (the vectors are in that model's
    space), so a store built with it opens with the real model too. An unknown text is an error:
    the benchmark must never time an embedding by accident.
    """

    def __init__(
        self,
        name: str,
        dimension: int,
        texts: Sequence[str] = (),
        vectors: Vectors | None = None,
        batch_size: int = 256,
    ) -> None:
        self.name = name
        self.dimension = dimension
        self.batch_size = batch_size
        self._rows: dict[str, int] = {}
        # Blocks are kept apart (no concatenation): at a million rows a copy is 1.5 GB.
        self._blocks: list[Vectors] = []
        self._starts: list[int] = []
        self._offset = 0
        if vectors is not None:
            self.add(texts, vectors)

    def add(self, texts: Sequence[str], vectors: Vectors) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(texts) != len(vectors):
            raise ValueError("one vector per text")
        self._blocks.append(vectors)
        self._starts.append(self._offset)
        base = self._offset
        rows = self._rows
        for i, t in enumerate(texts):
            rows.setdefault(t, base + i)
        self._offset += len(vectors)

    def _block(self, row: int) -> tuple[Vectors, int]:
        b = bisect.bisect_right(self._starts, row) - 1
        return self._blocks[b], row - self._starts[b]

    def vector(self, text: str) -> Vectors:
        block, i = self._block(self._rows[text])
        return block[i]

    def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str | bytes):
            raise TypeError("embed() takes a sequence of strings")
        rows = np.fromiter((self._rows[t] for t in texts), dtype=np.int64, count=len(texts))
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        if len(self._blocks) == 1:
            out[:] = self._blocks[0][rows]
            return out
        which = np.searchsorted(np.asarray(self._starts), rows, side="right") - 1
        for b in np.unique(which).tolist():
            sel = which == b
            out[sel] = self._blocks[b][rows[sel] - self._starts[b]]
        return out
