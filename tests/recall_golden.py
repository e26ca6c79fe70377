"""A fixed persona and a fixed set of searches whose results are recorded in
``tests/data/recall_golden.json`` and compared by ``tests/test_recall_golden.py``: a change to
the search's speed must not change what it returns. The file was recorded by the search as it
was before the array-based rewrite (commit 1818ea2: dict-based fusion, re-ranking from
decrypted memories), and the rewrite reproduces it.

The persona is built with a deterministic bag-of-words embedder, so the recording does not
depend on the bundled model. It exercises everything a hybrid search does: conversation
turns (context credit), speakers named in questions, time expressions, dates, tags, kinds,
time filters, recency, rank fusion and ``min_similarity``.

Re-recorded for issue 17 (conversation context for any memory with a speaker, within 12
hours, from two turns each side; speaker aliases): with the settings of before
(``context_speakers=False, context_gap=3600, context_reach=1, speaker_aliases=False``) the
search reproduced the earlier recording exactly, search for search.

Re-recorded for issue 17 again (English Snowball tokens, BM25 b 0.5, re-rank depth 100,
repeats after the distinct results): with BM25 b 0.75 and ``rerank_depth=50,
repeats_last=False`` the search reproduced the earlier recording exactly (the Snowball tokens
group this vocabulary's words as the suffix strip did), search for search.

Re-recorded for issue 17, fifth session (each query word's BM25 idf cubed in hybrid search,
``Fusion.idf_power`` 3): with ``Fusion(idf_power=1.0)`` the search reproduced the earlier
recording exactly, search for search, and the dense, keyword and rank-fusion searches are
unchanged.

Re-record (only when a documented change is meant to alter results)::

    .venv/bin/python -m tests.recall_golden
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import severance
from severance import MemoryDraft, Session
from severance.search import Fusion

GOLDEN = Path(__file__).resolve().parent / "data" / "recall_golden.json"
DIM = 48
N_MEMORIES = 3000
SPEAKERS = ("Caroline", "Melanie", "Jon", "Gina")
TIMES = ("yesterday", "last week", "in 2023", "on Friday", "two years ago", "in July")
START = datetime(2023, 1, 1, 9, 0, tzinfo=UTC)


class WordEmbedder:
    """Unit vectors as normalised sums of one fixed random vector per word (seeded by the
    word's CRC32): texts sharing words are close, and nothing depends on a model."""

    name = "golden-words"
    dimension = DIM
    batch_size = 256

    def __init__(self) -> None:
        self._cache: dict[str, npt.NDArray[np.float64]] = {}

    def _word(self, word: str) -> npt.NDArray[np.float64]:
        vec = self._cache.get(word)
        if vec is None:
            rng = np.random.default_rng(zlib.crc32(word.encode()))
            vec = self._cache[word] = rng.standard_normal(DIM)
        return vec

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), DIM), dtype=np.float64)
        for row, text in zip(out, texts, strict=True):
            for word in text.lower().split():
                row += self._word(word.strip("?,.:!'"))
            row /= np.linalg.norm(row) or 1.0
        return out.astype(np.float32)


def _vocabulary(rng: np.random.Generator) -> list[str]:
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return ["".join(rng.choice(letters, size=int(rng.integers(4, 9)))) for _ in range(400)]


def drafts() -> list[MemoryDraft]:
    """The persona: conversations of consecutive turns (episodes) and some notes."""
    rng = np.random.default_rng(20261201)
    vocab = _vocabulary(rng)
    # Zipf-like word frequencies, like real text.
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    out: list[MemoryDraft] = []
    when = START
    for i in range(N_MEMORIES):
        words = list(rng.choice(vocab, size=int(rng.integers(5, 16)), p=weights))
        if rng.random() < 0.2:
            words.insert(int(rng.integers(0, len(words))), str(rng.choice(TIMES)))
        if i % 40 == 0:  # a new conversation, some days later
            when += timedelta(days=int(rng.integers(1, 6)), minutes=int(rng.integers(0, 600)))
        else:
            when += timedelta(minutes=int(rng.integers(1, 20)))
        speaker = SPEAKERS[int(rng.integers(0, len(SPEAKERS)))]
        episode = i % 7 != 3
        out.append(
            MemoryDraft(
                text=(f"{speaker}: " if episode else "") + " ".join(words),
                kind="episode" if episode else "note",
                tags=(f"t{i % 50}",) if i % 3 else (f"t{i % 50}", "shared"),
                metadata={"speaker": speaker} if episode else {},
                occurred_at=when,
            )
        )
    return out


def questions() -> list[str]:
    rng = np.random.default_rng(7)
    vocab = _vocabulary(np.random.default_rng(20261201))
    common = vocab[:60]
    out: list[str] = []
    for i in range(24):
        a, b, c = (str(w) for w in rng.choice(common, size=3, replace=False))
        who = SPEAKERS[i % len(SPEAKERS)]
        out += [
            f"When did {who} talk about {a} and {b}?",
            f"What did {who} say about {c}",
            f"{a} {b} {c}",
            f"how long ago was the {a} {c}",
            f"What happened with {b} in May 2023?",
            f"Did {who} mention {a} on 14 March, 2024?",
        ]
    return out


def searches() -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, recall keyword arguments) for every search the golden file records."""
    plain: list[tuple[str, dict[str, Any]]] = [
        ("hybrid", {}),
        ("dense", {"mode": "dense"}),
        ("keyword", {"mode": "keyword"}),
        ("tag", {"tags": ["t7"]}),
        ("tag-common", {"tags": ["shared"]}),
        ("tag-edited", {"tags": ["edited"]}),
        ("kind", {"kind": "note"}),
        ("since-until", {"since": "2023-06-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}),
        ("rrf", {"fusion": Fusion.reciprocal_rank()}),
        ("no-context", {"fusion": Fusion(context=0.0)}),
        ("min-similarity", {"min_similarity": 0.5}),
        ("k3", {"k": 3}),
    ]
    yield from plain


def run(session: Session) -> dict[str, list[list[Any]]]:
    """Every search of :func:`searches` over every question: [memory, score] of each result,
    a memory named by its text's CRC32 (ids are random). Recency is left out: it reads the
    wall clock."""
    results: dict[str, list[list[Any]]] = {}
    for label, kwargs in searches():
        args = {"k": 10, **kwargs}
        for q in questions():
            hits = session.recall(q, **args)
            results[f"{label} | {q}"] = [
                [f"{zlib.crc32(h.memory.text.encode()):08x}", h.score] for h in hits
            ]
    return results


def build(path: Path) -> tuple[severance.Store, Session]:
    store = severance.Store.init(str(path), embedder=WordEmbedder())
    store.add_persona("golden")
    store.add_floor("golden", persona="golden")
    session = store.enter(floor="golden")
    stored = session.remember_many(drafts())
    # Edits and deletions leave retired slots behind in the index (and move an edited memory
    # to a new slot): searches must skip them and rank the same.
    for memory in stored[5::97]:
        session.update(memory.id, text=memory.text + " revised later")
    for memory in stored[11::89]:
        session.update(memory.id, tags=["edited"])
    for memory in stored[3::53]:
        session.forget(memory.id)
    return store, session


def record(path: Path) -> None:
    store, session = build(path)
    try:
        data = run(session)
    finally:
        session.close()
        store.close()
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    lines = (f"{json.dumps(key)}: {json.dumps(data[key])}" for key in sorted(data))
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {GOLDEN} ({len(data)} searches)")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        record(Path(tmp) / "store")
