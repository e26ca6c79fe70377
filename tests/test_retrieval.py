"""Retrieval behaviour: fusion, conversation context and query analysis, on small hand-made
personas through the public API (and the query analysis on its own).

Rankings here come from the real bundled embedder, so each scenario is built so that the
behaviour under test decides the order: a control search with the feature switched off
(``Fusion(...=0)``) shows the other order where that is the point.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

import severance
from severance import MemoryDraft, Session
from severance.search import Fusion
from severance.search.query import DateSpec, analyze, has_time_expression

OFF = {"speaker_boost": 0.0, "time_boost": 0.0, "date_boost": 0.0}


@pytest.fixture
def talk(store_location: str) -> Iterator[Session]:
    """An empty persona ``talk`` awake on floor ``room``."""
    store = severance.Store.init(store_location)
    store.add_persona("talk")
    store.add_floor("room", persona="talk")
    with store.enter(floor="room") as session:
        yield session
    store.close()


def turn(speaker: str, text: str, when: datetime, **extra: object) -> MemoryDraft:
    return MemoryDraft(
        text=f"{speaker}: {text}",
        kind="episode",
        metadata={"speaker": speaker, **extra},
        occurred_at=when,
    )


DAY1 = datetime(2024, 3, 3, 18, 0, tzinfo=UTC)
DAY2 = datetime(2024, 4, 20, 9, 30, tzinfo=UTC)
DAY3 = datetime(2024, 6, 11, 20, 15, tzinfo=UTC)


def texts(results: list[severance.Recall]) -> list[str]:
    return [r.memory.text for r in results]


# -- fusion ---------------------------------------------------------------------------------------
class TableEmbedder:
    """Vectors by table: a text listed in ``cosines`` gets that cosine with every query (and
    is orthogonal to every other listed text); any other text is a query (``e0``)."""

    name = "table-test"
    dimension = 16
    batch_size = 16

    def __init__(self, cosines: dict[str, float]) -> None:
        self.cosines = cosines
        self.slots = {text: i + 1 for i, text in enumerate(cosines)}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in zip(out, texts, strict=True):
            c = self.cosines.get(text)
            if c is None:
                row[0] = 1.0
            else:
                row[0], row[self.slots[text]] = c, (1.0 - c * c) ** 0.5
        return out


def test_a_strong_keyword_only_match_stays_on_top(store_location: str) -> None:
    # Five memories a little closer in meaning to the question and sharing a common word
    # with it; one a little further that shares its rare word. Rank fusion sees only the
    # places (dense last, keyword first) and puts it behind; convex fusion keeps the
    # keyword margin and puts it first.
    target = "Waiting on legal for xq7731zk"
    table = {f"Release note {i}: the release is blocked": 0.55 - i / 100 for i in range(5)}
    table[target] = 0.45
    store = severance.Store.init(store_location, embedder=TableEmbedder(table))
    store.add_persona("notes")
    store.add_floor("desk", persona="notes")
    with store.enter(floor="desk") as s:
        s.remember_many(list(table))
        question = "release status of xq7731zk"
        top = s.recall(question, k=3)
        assert top[0].memory.text == target
        assert top[0].keyword_rank == 1 and top[0].dense_rank == 6
        ranked = s.recall(question, k=6, fusion=Fusion.reciprocal_rank())
        assert texts(ranked).index(target) > 0
    store.close()


def test_convex_scores_are_the_documented_blend(talk: Session) -> None:
    talk.remember_many(["The Q3 launch moved to October 12", "Lunch is at noon on Fridays"])
    fusion = Fusion(context=0.0, **OFF)
    results = talk.recall("when is the launch", k=2, fusion=fusion)
    best_keyword = max(r.keyword_score or 0.0 for r in results)
    for r in results:
        assert r.dense_score is not None and r.keyword_score is not None
        expected = 0.65 * r.dense_score + 0.35 * r.keyword_score / best_keyword
        assert r.score == pytest.approx(expected, rel=1e-5)


def test_reciprocal_rank_fusion_is_still_available(talk: Session) -> None:
    talk.remember_many(["alpha beta", "beta gamma", "gamma delta"])
    results = talk.recall("beta", k=3, fusion=Fusion.reciprocal_rank())
    for r in results:
        assert r.dense_rank is not None
        expected = 1 / (60 + r.dense_rank)
        if r.keyword_rank is not None:
            expected += 1 / (60 + r.keyword_rank)
        assert r.score == pytest.approx(expected)


# -- conversation context -----------------------------------------------------------------------
def _painting_talk(talk: Session) -> None:
    talk.remember_many(
        [
            turn("Ben", "How long have you been painting landscapes?", DAY1),
            turn("Ana", "Seven years now, and I still learn something every week.", DAY1),
            turn("Ben", "My landscape photos never look like the real thing.", DAY1),
            turn("Ana", "Painting portraits is harder than painting landscapes.", DAY2),
            turn("Ben", "I bought new brushes for painting yesterday.", DAY2),
            turn("Ben", "Has the weather been good for painting outside?", DAY2),
            turn("Ana", "The gallery shows landscapes by local painters.", DAY3),
            turn("Ben", "Landscape painting classes start in the autumn.", DAY3),
            turn("Ana", "I love painting in the morning light.", DAY3),
            turn("Ben", "Do you sell your paintings?", DAY3),
            turn("Ana", "Sometimes, at the market on Sundays.", DAY3),
        ]
    )


def test_context_brings_the_answer_next_to_a_matching_question(talk: Session) -> None:
    _painting_talk(talk)
    answer = "Ana: Seven years now, and I still learn something every week."
    query = "How many years has Ana been painting landscapes?"
    # Plain BM25 idf: cubed, the answer's "years" (said once) brings it up on its own.
    without = texts(talk.recall(query, k=2, fusion=Fusion(context=0.0, idf_power=1.0)))
    assert answer not in without
    with_context = talk.recall(query, k=2, fusion=Fusion(idf_power=1.0))
    assert with_context[0].memory.text == answer
    assert talk.recall(query, k=2)[0].memory.text == answer
    # It matched on its own too, but its neighbour (the question before it) lifted it.
    assert with_context[0].keyword_rank is not None


def test_context_follows_conversation_time_not_write_order(talk: Session) -> None:
    # Turns with their own times, written out of order, one of them edited afterwards.
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    lines = [
        ("Ben", "How long have you been painting landscapes?"),
        ("Ana", "Seven years now, and I still learn something every week."),
        ("Ben", "My landscape photos never look like the real thing."),
        ("Ana", "Painting portraits is harder than painting landscapes."),
        ("Ben", "I bought new brushes for painting yesterday."),
        ("Ana", "The gallery shows landscapes by local painters."),
    ]
    drafts = [turn(who, text, start.replace(minute=i)) for i, (who, text) in enumerate(lines)]
    written = talk.remember_many(drafts[::-1])
    answer = next(m for m in written if m.text.startswith("Ana: Seven"))
    talk.update(answer.id, "Ana: Seven years now, and I still learn something every day.")
    # Credit from the next turn only (reach 1): the scenario is about order, not reach.
    top = talk.recall(
        "How many years has Ana been painting landscapes?", k=1, fusion=Fusion(context_reach=1)
    )
    assert top[0].memory.text == "Ana: Seven years now, and I still learn something every day."


def _walk(so: object) -> list[int]:
    """The slots of a SeqOrder from its first to its tail, and back (which must agree)."""
    after, before, tail = so.after, so.before, so.tail  # type: ignore[attr-defined]
    back = []
    at = tail
    while at >= 0:
        back.append(int(at))
        at = before[at]
    forward = []
    at = back[-1] if back else -1
    while at >= 0:
        forward.append(int(at))
        at = after[at]
    assert forward == back[::-1]
    return forward


def test_seq_order_appends_in_order_and_resorts_otherwise() -> None:
    from severance.search.context import SeqOrder

    occurred = np.array([1.0, 1.0, 2.0, 0.5, 3.0, 4.0])
    seqs = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    alive = np.ones(6, dtype=np.bool_)
    so = SeqOrder()
    so.update(occurred, seqs, alive, 3)
    assert _walk(so) == [0, 1, 2]
    so.update(occurred, seqs, alive, 4)  # back-dated: before everything
    assert _walk(so) == [3, 0, 1, 2]
    so.update(occurred, seqs, alive, 5)
    assert _walk(so) == [3, 0, 1, 2, 4]
    so.retire(1)  # retired slots are unlinked at once, the tail too
    alive[1] = False
    so.retire(4)
    alive[4] = False
    assert _walk(so) == [3, 0, 2]
    assert so.before[1] == so.after[1] == -1
    so.update(occurred, seqs, alive, 6)
    assert _walk(so) == [3, 0, 2, 5]
    # Looking up the neighbour of "none" gives "none".
    assert so.after[-1] == so.before[-1] == -1


def test_context_links_only_turns_of_one_exchange(talk: Session) -> None:
    # Same words, but a week apart and one of them a note: no neighbour credit.
    talk.remember_many(
        [
            turn("Ben", "Where did you buy the red kayak?", DAY1),
            MemoryDraft(text="Kayak club fees are due in May", kind="note", occurred_at=DAY1),
            turn("Ana", "Nothing much happened today.", DAY2),
        ]
    )
    question = "Where did you buy the red kayak?"
    with_context = {r.memory.text: r.score for r in talk.recall(question, k=3)}
    plain = {r.memory.text: r.score for r in talk.recall(question, k=3, fusion=Fusion(context=0))}
    assert with_context == pytest.approx(plain)


def test_context_never_returns_a_neighbour_outside_the_filter(talk: Session) -> None:
    # Ben's turns are tagged; Ana's answer next to his question is not.
    talk.remember_many(
        [
            MemoryDraft(
                text=f"{who}: {text}",
                kind="episode",
                tags=["ben"] if who == "Ben" else [],
                metadata={"speaker": who},
                occurred_at=DAY1,
            )
            for who, text in (
                ("Ben", "How long have you been painting landscapes?"),
                ("Ana", "Seven years now, and I still learn something every week."),
                ("Ben", "My landscape photos never look like the real thing."),
            )
        ]
    )
    question = "How many years has Ana been painting landscapes?"
    everything = talk.recall(question, k=3)
    assert "Ana: Seven years now, and I still learn something every week." in texts(everything)
    bens = talk.recall(question, k=3, tags=["ben"])
    assert [r.memory.metadata["speaker"] for r in bens] == ["Ben", "Ben"]
    # The hidden neighbour still lends its score to the question next to it.
    plain = talk.recall(question, k=3, tags=["ben"], fusion=Fusion(context=0.0))
    asked = "Ben: How long have you been painting landscapes?"
    lent = {r.memory.text: r.score for r in bens}[asked]
    assert lent > {r.memory.text: r.score for r in plain}[asked]


# -- query analysis: speakers, time, dates --------------------------------------------------------
def test_a_speaker_named_in_the_question_ranks_that_speakers_memory_first(talk: Session) -> None:
    # Ben's turn names Ana and shares more words with the question; Ana's turn answers it.
    talk.remember_many(
        [
            turn("Ben", "Ana, was the hiking good?", DAY1),
            turn("Ana", "The hiking in the Dolomites was great.", DAY2),
        ]
    )
    question = "Where did Ana go hiking?"
    # skip_addressed off: "Ana, ..." addresses Ana, and by default does not match "Ana" at all
    # (tests/test_address_names.py); here it must, so that only the boost decides the order.
    control = Fusion(context=0.0, speaker_boost=0.0, skip_addressed=False)
    plain = talk.recall(question, k=2, fusion=control)
    assert plain[0].memory.metadata["speaker"] == "Ben"
    boosted = talk.recall(question, k=2, fusion=Fusion(context=0.0, skip_addressed=False))
    assert boosted[0].memory.metadata["speaker"] == "Ana"
    by_id = {r.memory.id: r.score for r in plain}
    assert boosted[0].score == pytest.approx(1.2 * by_id[boosted[0].memory.id])


def test_a_when_question_prefers_a_memory_that_says_when(talk: Session) -> None:
    talk.remember_many(
        [
            turn("Ana", "Lisbon is lovely, I really like living in Lisbon.", DAY2),
            turn("Ana", "We moved to Lisbon last spring.", DAY2),
            turn("Ana", "Moving to a new city like Lisbon is hard.", DAY2),
        ]
    )
    top = talk.recall("When did Ana move to Lisbon?", k=3, fusion=Fusion(context=0.0))
    assert top[0].memory.text == "Ana: We moved to Lisbon last spring."


def test_a_date_in_the_question_prefers_memories_from_that_date(talk: Session) -> None:
    talk.remember_many(
        [
            turn("Ana", "I baked bread with the kids.", DAY1),
            turn("Ana", "I baked a cake with the kids.", DAY2),
            turn("Ana", "I baked cookies with the kids.", DAY3),
        ]
    )
    question = "What did Ana bake with the kids on 20 April, 2024?"
    top = talk.recall(question, k=3, fusion=Fusion(context=0.0))
    assert top[0].memory.text == "Ana: I baked a cake with the kids."
    june = talk.recall("What did Ana bake in June 2024?", k=3, fusion=Fusion(context=0.0))
    assert june[0].memory.text == "Ana: I baked cookies with the kids."


def test_boosts_only_reorder_and_keep_k(talk: Session) -> None:
    _painting_talk(talk)
    for k in (1, 3, 7):
        results = talk.recall("When did Ben buy brushes?", k=k)
        assert len(results) == k
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
    # Dense and keyword modes are the plain retrievers: no analysis, no context.
    for mode in ("dense", "keyword"):
        assert len(talk.recall("When did Ben buy brushes?", k=3, mode=mode)) == 3


def test_analyze_finds_names_intent_and_dates() -> None:
    a = analyze("When did Ana go camping in June?")
    assert a.temporal and "ana" in a.names
    assert a.dates == (DateSpec(None, 6, None),)
    assert analyze("What did Ana do on 7 July, 2023?").dates == (DateSpec(2023, 7, 7),)
    assert analyze("What happened on October 13, 2023?").dates == (DateSpec(2023, 10, 13),)
    assert analyze("What did she start in December 2023?").dates == (DateSpec(2023, 12, None),)
    assert analyze("How often did they meet in 2022?").dates == (DateSpec(2022, None, None),)
    assert analyze("Meeting notes 2024-02-29").dates == (DateSpec(2024, 2, 29),)
    assert analyze("how long ago was the trip").temporal
    assert analyze("What year did Ben graduate?").temporal
    assert not analyze("What does Ben like to cook?").temporal
    # "may" as a verb is not a month; a lower-case question offers all its words as names.
    assert analyze("who may come to dinner").dates == ()
    assert "ben" in analyze("what did ben cook").names
    assert "ben" not in analyze("What did Ana cook for ben?").names - {"ben"}


def test_date_spec_matching() -> None:
    day = DateSpec(2023, 7, 7)
    assert day.matches(datetime(2023, 7, 7, 23, 0, tzinfo=UTC))
    assert day.matches(datetime(2023, 7, 8, 10, 0, tzinfo=UTC))  # a day's slack
    assert not day.matches(datetime(2023, 7, 10, tzinfo=UTC))
    assert DateSpec(None, 6).matches(datetime(2021, 6, 30, tzinfo=UTC))
    assert not DateSpec(2022, 6).matches(datetime(2021, 6, 30, tzinfo=UTC))
    assert DateSpec(2022).matches(datetime(2022, 1, 1, tzinfo=UTC))
    assert not DateSpec(2023, 2, 30).matches(datetime(2023, 3, 1, tzinfo=UTC))  # no such day


def test_time_expressions() -> None:
    for text in (
        "I went there yesterday",
        "We met two weeks ago",
        "Last Friday was fun",
        "Back in 2019 I lived in Oslo",
        "It opens next month",
        "Every Tuesday we swim",
    ):
        assert has_time_expression(text), text
    for text in ("I like green tea", "The house has a red door", "May I come in?"):
        assert not has_time_expression(text), text


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "sum"},
        {"dense_weight": -0.1},
        {"keyword_weight": float("nan")},
        {"k0": 0},
        {"context": True},
        {"speaker_boost": "0.2"},
        {"rerank_depth": 2.5},
        {"rerank_depth": -1},
        {"skip_addressed": 1},
        {"context_kinds": "episode"},
    ],
)
def test_bad_fusion_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(severance.InvalidInputError):
        Fusion(**bad)  # type: ignore[arg-type]


def test_fusion_takes_any_collection_of_context_kinds() -> None:
    assert Fusion(context_kinds=["episode", "chat"]).context_kinds == {"episode", "chat"}  # type: ignore[arg-type]
