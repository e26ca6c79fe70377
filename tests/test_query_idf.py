"""The query's idf raised to a power (``Fusion.idf_power``): a rare word of the question counts
for more against its common ones, in keyword and hybrid searches, through the public API and
on the index itself (the keyword stage done ahead is redone for another power)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

import severance
from severance import Session
from severance.search import Fusion, PersonaIndex, tokenize
from severance.search.index import document
from severance.search.keyword import KeywordIndex

PLAIN = Fusion(idf_power=1.0)
FILLER = [f"filler note number {i}" for i in range(8)]
COMMON = "sunset sunset sunset sunset"  # the common query word, said four times
RARE = "we saw a quokka by the old harbour wall near the ferry"  # the rare one, once


@pytest.fixture
def notes(store_location: str) -> Iterator[Session]:
    store = severance.Store.init(store_location)
    store.add_persona("notes")
    store.add_floor("desk", persona="notes")
    with store.enter(floor="desk") as session:
        for text in [COMMON, RARE, "sunset walk", *FILLER]:
            session.remember(text)
        yield session
    store.close()


def test_the_rare_word_of_the_question_wins_by_default(notes: Session) -> None:
    # A hybrid search's dense half weighed 0, so that only the keyword scores decide.
    keyword_half = {"dense_weight": 0.0, "keyword_weight": 1.0}

    def top(fusion: Fusion | None = None, mode: str = "hybrid") -> str:
        hits = notes.recall("quokka sunset", k=2, mode=mode, fusion=fusion)  # type: ignore[arg-type]
        return hits[0].memory.text

    assert Fusion().idf_power == 3.0
    assert top(Fusion(**keyword_half)) == RARE  # type: ignore[arg-type]
    # Plain BM25 (idf to the power 1): the common word said four times outweighs it.
    assert top(Fusion(idf_power=1.0, **keyword_half)) == COMMON  # type: ignore[arg-type]
    assert top(Fusion(idf_power=2.0, **keyword_half)) == COMMON  # type: ignore[arg-type]
    # Keyword mode is plain BM25 whatever the setting.
    assert top(mode="keyword") == COMMON
    assert top(Fusion(idf_power=3.0), mode="keyword") == COMMON


def test_reciprocal_rank_fusion_keeps_plain_bm25() -> None:
    assert Fusion.reciprocal_rank().idf_power == 1.0


@pytest.mark.parametrize("bad", [-1.0, 4.5, math.nan, math.inf, True, "2"])
def test_a_bad_idf_power_is_refused(bad: object) -> None:
    with pytest.raises(severance.InvalidInputError):
        Fusion(idf_power=bad)  # type: ignore[arg-type]


def test_each_terms_idf_is_raised_to_the_power() -> None:
    keyword = KeywordIndex()
    texts = [COMMON, RARE, "sunset walk", *FILLER]
    for slot, t in enumerate(texts):
        keyword.add(slot, tokenize(t))
    alive = np.ones(len(texts), dtype=np.bool_)
    n = len(texts)
    for term in ("sunset", "quokka"):
        plain = keyword.scores([term], alive, n)
        df = int(np.count_nonzero(plain))
        idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        for power in (0.0, 2.0, 3.0):
            raised = keyword.scores([term], alive, n, idf_power=power)
            assert raised == pytest.approx(plain * idf ** (power - 1.0), rel=1e-5)
    # Two words: each part is scaled by its own idf, so the sum is not the plain one scaled.
    both = keyword.scores(["sunset", "quokka"], alive, n, idf_power=3.0)
    assert int(np.argmax(both)) == 1
    assert int(np.argmax(keyword.scores(["sunset", "quokka"], alive, n))) == 0


def _index() -> PersonaIndex:
    texts = [COMMON, RARE, "sunset walk", *FILLER]
    index = PersonaIndex(4)
    vectors = np.eye(4, dtype=np.float32)[np.arange(len(texts)) % 4]
    index.upsert(
        [
            document(f"m{i}", i + 1, "note", (), 0.0, 0.0, v, t, {})
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ]
    )
    return index


def test_a_keyword_stage_of_another_power_is_done_again() -> None:
    index = _index()
    tokens = tokenize("quokka sunset")
    query = np.full(4, 0.5, dtype=np.float32)  # the same cosine to every memory
    mine = {"dense_weight": 0.0, "keyword_weight": 1.0, "context": 0.0}

    def search(
        fusion: Fusion, mode: str, on: PersonaIndex = index, **kwargs: object
    ) -> list[tuple[str, float]]:
        hits = on.search(query, tokens, 3, mode=mode, fusion=fusion, **kwargs)  # type: ignore[arg-type]
        return [(h.id, h.score) for h in hits]

    cubed, plain = Fusion(**mine), Fusion(idf_power=1.0, **mine)  # type: ignore[arg-type]
    # A stage made for either mode and either power serves only the search it fits.
    for mode in ("hybrid", "keyword"):
        for fusion in (cubed, plain):
            for made_for in ("hybrid", "keyword"):
                for power in (1.0, 3.0):
                    stage = index.prepare(tokens, mode=made_for, idf_power=power)
                    assert search(fusion, mode, prepared=stage) == search(fusion, mode)
    assert search(cubed, "hybrid")[0][0] == "m1"
    assert search(plain, "hybrid")[0][0] == "m0"
    assert search(cubed, "keyword") == search(plain, "keyword")
    assert search(cubed, "keyword")[0][0] == "m0"
    # The per-term work an index keeps between queries is kept per power: searches that
    # alternate powers give what a fresh index gives for each.
    for mode in ("hybrid", "keyword", "hybrid"):
        for fusion in (cubed, plain, cubed):
            assert search(fusion, mode) == search(fusion, mode, on=_index())
