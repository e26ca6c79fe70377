"""Compacting the keyword index (as every snapshot does) keeps exactly the live postings.

:meth:`KeywordIndex.compacted` gathers the postings from three places (the compact base a
snapshot was loaded into, the growable arrays a query or a fold moved a term into, and the
Python-list tails of recent writes) in one vectorised pass. Hypothesis drives random mixes of
writes, reads (which move tails into arrays), wakes from a compacted base and removals, and
the result is compared with a model built from the documents alone. (Also: fusion's
:func:`distinct`, which replaced :func:`numpy.unique`, gives what it gave.)
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from severance.search.hybrid import distinct
from severance.search.keyword import KeywordIndex

WORDS = [f"w{i}" for i in range(12)]

doc_tokens = st.lists(st.sampled_from(WORDS), min_size=0, max_size=6)
step = st.one_of(
    st.tuples(st.just("add"), doc_tokens),
    st.tuples(st.just("read"), st.sampled_from(WORDS)),
    st.tuples(st.just("wake"), st.none()),
)


def model(
    docs: list[list[str]], remap: npt.NDArray[np.int64]
) -> dict[str, list[tuple[int, float]]]:
    """Term -> [(new slot, tf)] for the kept documents, terms in order of first use."""
    first_use: dict[str, None] = {}
    for tokens in docs:
        for term in Counter(tokens):
            first_use.setdefault(term, None)
    out: dict[str, list[tuple[int, float]]] = {}
    for term in first_use:
        postings = [
            (int(remap[slot]), float(Counter(tokens)[term]))
            for slot, tokens in enumerate(docs)
            if remap[slot] >= 0 and term in tokens
        ]
        if postings:
            out[term] = postings
    return out


def contents(index: KeywordIndex) -> dict[str, list[tuple[int, float]]]:
    arrays = index.arrays()
    text = arrays["kw_vocab"].tobytes().decode()
    terms = text.split("\n") if text else []
    assert list(index.vocab) == terms
    assert [index.vocab[t] for t in terms] == list(range(len(terms)))
    offsets = arrays["kw_offsets"].tolist()
    assert len(offsets) == len(terms) + 1 and offsets[0] == 0
    slots, tfs = arrays["kw_slots"].tolist(), arrays["kw_tfs"].tolist()
    assert offsets[-1] == len(slots) == len(tfs)
    return {
        term: list(zip(slots[lo:hi], tfs[lo:hi], strict=True))
        for term, lo, hi in zip(terms, offsets[:-1], offsets[1:], strict=True)
    }


def identity(n: int) -> npt.NDArray[np.int64]:
    return np.arange(n, dtype=np.int64)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, max_size=40), dead=st.lists(st.booleans(), max_size=40))
def test_compaction_keeps_exactly_the_live_postings(
    steps: list[tuple[str, object]], dead: list[bool]
) -> None:
    index = KeywordIndex()
    docs: list[list[str]] = []
    for op, arg in steps:
        if op == "add":
            assert isinstance(arg, list)
            index.add(len(docs), arg)
            docs.append(arg)
        elif op == "read":
            tid = index.vocab.get(str(arg))
            if tid is not None:
                index.postings(tid)
        else:  # wake: the index as a snapshot would bring it back (all in the base)
            compact = index.compacted(identity(len(docs)))
            index = KeywordIndex.from_arrays(compact.arrays(), compact.doc_len[: len(docs)])
    gone = [i < len(dead) and dead[i] for i in range(len(docs))]
    remap = np.full(len(docs), -1, dtype=np.int64)
    live = [i for i in range(len(docs)) if not gone[i]]
    remap[live] = np.arange(len(live))

    compact = index.compacted(remap)

    assert contents(compact) == model(docs, remap)
    want_len = [float(len(docs[i])) for i in live]
    assert compact.doc_len[: len(live)].tolist() == want_len


def test_scores_after_compaction_equal_scores_before() -> None:
    rng = np.random.default_rng(7)
    index = KeywordIndex()
    docs = [list(rng.choice(WORDS, size=int(rng.integers(1, 8)))) for _ in range(300)]
    for slot, tokens in enumerate(docs):
        index.add(slot, tokens)
        if slot % 37 == 0:
            index.postings(index.vocab[tokens[0]])
    alive = rng.random(len(docs)) > 0.3
    remap = np.full(len(docs), -1, dtype=np.int64)
    remap[alive] = np.arange(int(alive.sum()))
    compact = index.compacted(remap)
    query = ["w1", "w3", "w3", "w9"]
    before = index.scores(query, alive, len(docs))[alive]
    after = compact.scores(query, np.ones(int(alive.sum()), dtype=np.bool_), int(alive.sum()))
    assert after.tolist() == before.tolist()


@given(st.lists(st.integers(min_value=-1, max_value=50), max_size=60))
def test_distinct_is_numpy_unique(values: list[int]) -> None:
    slots = np.asarray(values, dtype=np.int64)
    assert distinct(slots).tolist() == np.unique(slots).tolist()
