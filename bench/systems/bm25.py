"""Plain Okapi BM25 over turns: the keyword baseline (k1 1.2, b 0.75).

Tokens are lower-case alphanumeric runs minus a common English stop-word list, no stemming.
With these settings the harness reproduces the reference figure in the research notes
(categories 1-4: recall@5 0.497, recall@10 0.563, recall@20 0.633, hit@10 0.620) to within
0.01, which checks the scorer and the evidence parsing. Without stop-word removal recall@10
drops to about 0.52.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.locomo import Conversation
from bench.systems.base import RetrievalSystem

__all__ = ["BM25Index", "BM25System", "tokenize"]

_TOKEN_RE = re.compile(r"[a-z0-9]+")

_STOP_WORDS_TEXT = """
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can't cannot could couldn't did didn't do does doesn't doing
don't down during each few for from further had hadn't has hasn't have haven't having he he'd
he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's
these they they'd they'll they're they've this those through to too under until up very was
wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while
who who's whom why why's with won't would wouldn't you you'd you'll you're you've your yours
yourself yourselves
"""
_STOP_WORDS_WITH_APOSTROPHES = _STOP_WORDS_TEXT.split()
#: English stop words (the classic list), with apostrophes dropped, plus contraction tails.
STOP_WORDS: frozenset[str] = frozenset(
    {w.replace("'", "") for w in _STOP_WORDS_WITH_APOSTROPHES}
    | {w for w in _STOP_WORDS_WITH_APOSTROPHES if "'" not in w}
    | {"s", "t", "d", "ll", "re", "ve", "m"}
)


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric runs minus :data:`STOP_WORDS`; no stemming."""
    return [t for t in _TOKEN_RE.findall(text.lower()) if t not in STOP_WORDS]


class BM25Index:
    """An in-memory BM25 index over a fixed list of documents.

    ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` (never negative). Only documents sharing at
    least one term with the query are returned; ties keep document order.
    """

    def __init__(self, docs: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        tokenised = [tokenize(d) for d in docs]
        self.n_docs = len(tokenised)
        lengths = np.array([len(t) for t in tokenised], dtype=np.float64)
        avgdl = float(lengths.mean()) if self.n_docs and lengths.sum() else 1.0
        norm = k1 * (1.0 - b + b * lengths / avgdl)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, toks in enumerate(tokenised):
            for term, count in Counter(toks).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(count)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (ids, tfs) in postings.items():
            idx = np.array(ids, dtype=np.int64)
            tf = np.array(tfs, dtype=np.float64)
            idf = math.log(1.0 + (self.n_docs - len(ids) + 0.5) / (len(ids) + 0.5))
            # Precompute each posting's full contribution: idf * tf (k1 + 1) / (tf + norm).
            self._postings[term] = (idx, idf * tf * (k1 + 1.0) / (tf + norm[idx]))

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.n_docs, dtype=np.float64)
        for term in set(tokenize(query)):
            posting = self._postings.get(term)
            if posting is not None:
                out[posting[0]] += posting[1]
        return out

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top ``k`` ``(doc index, score)`` pairs with a positive score, best first."""
        s = self.scores(query)
        positive = np.flatnonzero(s > 0)
        if positive.size == 0:
            return []
        order = positive[np.argsort(-s[positive], kind="stable")][:k]
        return [(int(i), float(s[i])) for i in order]


class BM25System(RetrievalSystem):
    """The reference keyword baseline, one in-memory index per conversation (retrieval only:
    it has no persistent store for the speed section to measure)."""

    name = "bm25"

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        super().__init__()
        self.k1 = k1
        self.b = b
        self._index: BM25Index | None = None
        self._ids: list[str] = []

    @property
    def variants(self) -> tuple[str, ...]:
        return ("bm25",)

    def index(self, conv: Conversation) -> None:
        self._ids = [t.dia_id for t in conv.turns]
        self._index = BM25Index([t.document for t in conv.turns], k1=self.k1, b=self.b)

    def search(self, variant: str, query: str, k: int) -> list[str]:
        assert self._index is not None, "index() first"
        return [self._ids[i] for i, _ in self._index.search(query, k)]

    def release(self) -> None:
        self._index = None
        self._ids = []

    def info(self) -> dict[str, Any]:
        return {
            "bm25": {
                "k1": self.k1,
                "b": self.b,
                "tokenizer": "lower-case [a-z0-9]+ runs minus English stop words, no stemming",
                "idf": "ln(1 + (N - df + 0.5) / (df + 0.5))",
                "index": "one in-memory index per conversation, built in this process",
            }
        }
