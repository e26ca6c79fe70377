"""Conversation turns however they were stored: context by order for memories with a speaker,
two turns each side, speakers named by a ``"Name:"`` text, and aliases learned from how people
address each other (issue 17). Real stores, the real bundled embedder; each scenario has a
control search with the feature switched off."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import severance
from severance import Session
from severance.search import Fusion
from severance.search.speakers import learn_aliases, speaker_of, vocative

START = datetime(2024, 5, 6, 19, 0, tzinfo=UTC)
#: The 0.2 defaults: context for episodes only, the turn before or after, within an hour.
OLD_CONTEXT = Fusion(
    context_kinds=frozenset({"episode"}),
    context_speakers=False,
    context_gap=3600.0,
    context_reach=1,
    speaker_aliases=False,
)


@pytest.fixture
def chat(store_location: str) -> Iterator[Session]:
    store = severance.Store.init(store_location)
    store.add_persona("chat")
    store.add_floor("phone", persona="chat")
    with store.enter(floor="phone") as session:
        yield session
    store.close()


def plain(session: Session, lines: list[tuple[str, str, float]]) -> None:
    """Messages stored the plain way: ``remember(text, occurred_at=...)``, no kind, no
    metadata; ``lines`` are (speaker, text, minutes after START)."""
    for who, text, minutes in lines:
        session.remember(f"{who}: {text}", occurred_at=START + timedelta(minutes=minutes))


def texts(results: list[severance.Recall]) -> list[str]:
    return [r.memory.text for r in results]


JOB = [
    ("Ana Ruiz", "any news from the place you interviewed at?", 0.0),
    # The answer comes two hours later and shares no word with the question below.
    ("Katherine Moore", "YES they called this morning, I got it", 130.0),
    ("Ana Ruiz", "I made a wonky bowl at the pottery class", 140.0),
    ("Katherine Moore", "the new flat has a tiny balcony", 150.0),
    ("Ana Ruiz", "my interview at the bakery went badly", 600.0),
]


def test_plain_messages_get_the_context_of_their_exchange(chat: Session) -> None:
    plain(chat, JOB)
    answer = "Katherine Moore: YES they called this morning, I got it"
    question = "What news did Katherine get after the interview?"
    assert texts(chat.recall(question, k=1, fusion=OLD_CONTEXT)) != [answer]
    assert texts(chat.recall(question, k=1)) == [answer]


def test_notes_without_a_speaker_lend_each_other_nothing(chat: Session) -> None:
    for i, text in enumerate(["Buy a new kettle", "Kettle descaler is in the cupboard"]):
        chat.remember(text, occurred_at=START + timedelta(minutes=i))
    question = "Where is the kettle descaler?"
    with_context = {r.memory.text: r.score for r in chat.recall(question, k=2)}
    without = {r.memory.text: r.score for r in chat.recall(question, k=2, fusion=Fusion(context=0))}
    assert with_context == pytest.approx(without)


def test_the_second_turn_each_side_lends_at_the_decay(chat: Session) -> None:
    plain(chat, JOB[:3])
    question = "any news from the place you interviewed at?"  # no names, dates or "when"
    asked, middle, far = (f"{who}: {text}" for who, text, _ in JOB[:3])

    def scores(fusion: Fusion) -> dict[str, float]:
        return {r.memory.text: r.score for r in chat.recall(question, k=3, fusion=fusion)}

    alone, reach1, reach2 = (
        scores(Fusion(context=0)),
        scores(Fusion(context_reach=1)),
        scores(Fusion()),
    )
    # The last message: its neighbour lends 0.7 of its score; the question, two places
    # away, 0.7 * 0.85 of its own when that is more.
    assert reach1[far] == pytest.approx(alone[far] + 0.7 * alone[middle])
    best = max(alone[middle], 0.85 * alone[asked])
    assert reach2[far] == pytest.approx(alone[far] + 0.7 * best)
    assert 0.85 * alone[asked] > alone[middle]  # so the second place made the difference


def test_neighbours_more_than_the_gap_apart_lend_nothing(chat: Session) -> None:
    plain(chat, [("Ana Ruiz", "how was the pottery class?", 0.0), ("Ben", "loved it", 13 * 60.0)])
    question = "how was the pottery class?"
    scores = {r.memory.text: r.score for r in chat.recall(question, k=2)}
    plain_scores = {
        r.memory.text: r.score for r in chat.recall(question, k=2, fusion=Fusion(context=0))
    }
    assert scores == pytest.approx(plain_scores)
    wide = {
        r.memory.text: r.score
        for r in chat.recall(question, k=2, fusion=Fusion(context_gap=math.inf))
    }
    assert wide["Ben: loved it"] > plain_scores["Ben: loved it"]


def test_a_plain_text_names_its_speaker(chat: Session) -> None:
    plain(
        chat,
        [
            ("Ben", "Ana, was the hiking good?", 0.0),
            ("Ana", "The hiking in the Dolomites was great.", 60 * 24 * 3.0),
        ],
    )
    question = "Where did Ana go hiking?"
    # "Ana, ..." addresses Ana and by default does not match "Ana" (skip_addressed); off here,
    # so that the speaker boost alone decides the order.
    control = Fusion(context=0.0, speaker_boost=0.0, skip_addressed=False)
    off = chat.recall(question, k=2, fusion=control)
    assert off[0].memory.text.startswith("Ben:")
    on = chat.recall(question, k=2, fusion=Fusion(context=0.0, skip_addressed=False))
    assert on[0].memory.text.startswith("Ana:")


KATE = [
    ("Katherine Moore", "I signed up for the pottery course", 0.0),
    ("Ana Ruiz", "good luck with it Kate!", 1.0),
    ("Katherine Moore", "thanks", 2.0),
    ("Ana Ruiz", "ok Kate", 3.0),
    ("Ana Ruiz", "I think the pottery course is far too expensive", 4.0),
]


def test_a_question_may_call_a_speaker_by_the_name_the_chat_uses(chat: Session) -> None:
    plain(chat, KATE)
    question = "What did Kate say about the pottery course?"
    named = chat.recall(question, k=5, fusion=Fusion(context=0.0))
    unnamed = chat.recall(question, k=5, fusion=Fusion(context=0.0, speaker_aliases=False))
    kate = "Katherine Moore: I signed up for the pottery course"
    by_text = {r.memory.text: r.score for r in unnamed}
    assert {r.memory.text: r.score for r in named}[kate] == pytest.approx(1.2 * by_text[kate])
    ana = "Ana Ruiz: I think the pottery course is far too expensive"
    assert {r.memory.text: r.score for r in named}[ana] == pytest.approx(by_text[ana])


def test_learned_aliases_survive_a_snapshot(store_location: str) -> None:
    store = severance.Store.init(store_location)
    store.add_persona("chat")
    store.add_floor("phone", persona="chat")
    question = "What did Kate say about the pottery course?"
    with store.enter(floor="phone") as session:
        plain(session, KATE)
        before = [(r.memory.id, r.score) for r in session.recall(question, k=5)]
        session.checkpoint()
    store.close()
    store = severance.Store.open(store_location)
    with store.enter(floor="phone") as session:
        after = [(r.memory.id, r.score) for r in session.recall(question, k=5)]
    store.close()
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before])


def test_speaker_of_reads_metadata_then_a_name_prefix() -> None:
    assert speaker_of("anything", {"speaker": "Ana"}) == "Ana"
    assert speaker_of("Katherine Moore: ok", {}) == "Katherine Moore"
    assert speaker_of("Dr. O'Neill: yes", {}) == "Dr. O'Neill"
    for text in ("Note: buy milk", "Release note 4: blocked", "melanie: hi", "at 10:30 Bob"):
        assert speaker_of(text, {}) is None, text


def test_vocatives_and_aliases() -> None:
    assert vocative("Ana Ruiz: good luck today Kate!!", "Ana Ruiz") == "kate"
    assert vocative("Hey Mel, how are you?", None) == "mel"
    assert vocative("thanks Jo", None) == "jo"
    assert vocative("Katherine Moore: see you on Monday", "Katherine Moore") is None
    assert vocative("Caroline: I love it", "Caroline") is None  # the prefix is not a vocative
    speakers = ["Kate M", "Ana", "Kate M", "Ana", "Ben", "Ana"]
    words = [None, "kate", None, "kate", "ana", None]
    # "kate" twice for Kate M; "ana" once only: not enough to be an alias.
    assert learn_aliases(speakers, words) == {"Kate M": frozenset({"kate"})}
    # A word used for two people, for neither 75% of the time, is no one's alias.
    said_to = ["A", "B", "A", "B", "C", "B", "C", "B"]
    assert learn_aliases(said_to, [None, "jo"] * 4) == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"context_gap": float("nan")},
        {"context_gap": -1.0},
        {"context_reach": 0},
        {"context_reach": 11},
        {"context_reach": True},
        {"context_decay": 1.5},
        {"context_decay": -0.1},
        {"speaker_aliases": "yes"},
        {"context_speakers": 1},
    ],
)
def test_bad_context_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(severance.InvalidInputError):
        Fusion(**bad)  # type: ignore[arg-type]


def test_an_unbounded_gap_is_allowed() -> None:
    assert Fusion(context_gap=math.inf).context_gap == math.inf


def test_a_snapshot_without_addressed_names_is_filled_in_on_wake(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from severance.search import PersonaIndex
    from severance.search.container import pack_arrays, unpack_arrays

    def as_format_3(data: bytes) -> bytes:
        meta, arrays = unpack_arrays(data)
        meta["format"] = 3
        arrays.pop("addressed_codes")
        return pack_arrays(meta, arrays)

    store = severance.Store.init(store_location)
    store.add_persona("chat")
    store.add_floor("phone", persona="chat")
    question = "What did Kate say about the pottery course?"
    with store.enter(floor="phone") as session:
        plain(session, KATE)
        want = [(r.memory.id, r.score) for r in session.recall(question, k=5)]
        current = PersonaIndex.snapshot_pieces
        monkeypatch.setattr(  # what a checkpoint seals
            PersonaIndex,
            "snapshot_pieces",
            lambda self: [memoryview(as_format_3(b"".join(current(self))))],
        )
        session.checkpoint()
        monkeypatch.undo()
    store.close()
    store = severance.Store.open(store_location)
    with store.enter(floor="phone") as session:
        got = [(r.memory.id, r.score) for r in session.recall(question, k=5)]
    store.close()
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want])
