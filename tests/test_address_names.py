"""A name a message addresses its listener by is not what the message is about: such a memory
does not match that name as a keyword ("good luck today Kate!!" is said to Kate, not about
her), while a memory that mentions the name in any other way still does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import severance
from severance import MemoryDraft, Session
from severance.search import Fusion
from severance.search.keyword import KeywordIndex, tokenize
from severance.search.speakers import address_tokens

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def chat(store_location: str) -> Iterator[Session]:
    store = severance.Store.init(store_location)
    store.add_persona("chat")
    store.add_floor("phone", persona="chat")
    with store.enter(floor="phone") as session:
        yield session
    store.close()


def _remember(session: Session, lines: list[str]) -> None:
    session.remember_many(
        [
            MemoryDraft(text=line, occurred_at=T0 + timedelta(days=3 * i))
            for i, line in enumerate(lines)
        ]
    )


def test_a_memory_does_not_match_the_name_it_addresses_someone_by(chat: Session) -> None:
    _remember(
        chat,
        [
            "Ana Ruiz: good luck today Kate!!",
            "Ana Ruiz: ok Kate",
            "Ana Ruiz: Kate said the flat above the bakery is free",
            "Katherine Moore: the interview went fine",
        ],
    )
    found = [r.memory.text for r in chat.recall("Kate", k=5, mode="keyword")]
    assert found == ["Ana Ruiz: Kate said the flat above the bakery is free"]
    # Fusion(skip_addressed=False) is the behaviour of before: every message with the name.
    before = chat.recall("Kate", k=5, mode="keyword", fusion=Fusion(skip_addressed=False))
    assert len(before) == 3
    assert Fusion.reciprocal_rank().skip_addressed is False
    # The other words of an addressing message still match.
    assert [r.memory.text for r in chat.recall("luck", k=5, mode="keyword")] == [
        "Ana Ruiz: good luck today Kate!!"
    ]
    # Hybrid search ranks the mention above the messages said to her.
    hybrid = [r.memory.text for r in chat.recall("What did Kate say about the flat?", k=4)]
    assert hybrid[0] == "Ana Ruiz: Kate said the flat above the bakery is free"


def test_the_rule_survives_a_snapshot_and_a_new_session(store_location: str) -> None:
    store = severance.Store.init(store_location)
    store.add_persona("chat")
    store.add_floor("phone", persona="chat")
    with store.enter(floor="phone") as session:
        said = [
            "Jo Park: thanks Mel, see you",
            "Jo Park: night Mel!",
            "Jo Park: Mel is bringing the cake",
        ]
        _remember(session, said)
        session.recall("cake", k=1)  # wake the index
    store.close()
    store = severance.Store.open(store_location)
    with store.enter(floor="phone") as session:
        found = [r.memory.text for r in session.recall("Mel", k=5, mode="keyword")]
    store.close()
    assert found == ["Jo Park: Mel is bringing the cake"]


def test_keyword_scores_leave_out_only_the_slots_addressing_by_that_term() -> None:
    index = KeywordIndex()
    texts = ["hey Sam, lunch?", "thanks Sam, lunch was great", "Sam loves lunch", "dinner"]
    for slot, text in enumerate(texts):
        index.add(slot, tokenize(text))
    names = ["sam", "Sam Lee", "theo"]  # addressed names and speakers share one table
    by_token = address_tokens(names)
    assert by_token == {tokenize("sam")[0]: [0], "theo": [2]}
    addressed = np.array([0, 0, -1, -1], dtype=np.int32)
    alive = np.ones(4, dtype=np.bool_)
    plain = index.scores(tokenize("Sam lunch"), alive, 4)
    without = index.scores(tokenize("Sam lunch"), alive, 4, addressed=(addressed, by_token))
    # Slots 0 and 1 keep their "lunch" score and lose only "sam"; the others are unchanged.
    assert 0 < without[0] < plain[0]
    assert without[0] == pytest.approx(index.scores(tokenize("lunch"), alive, 4)[0])
    assert np.array_equal(without[2:], plain[2:])
    # A word addressing someone in fewer than half of the memories holding it (or once) is
    # not taken for a name: "the offsite is in Lisbon" still matches "Lisbon".
    once = np.array([0, -1, -1, -1], dtype=np.int32)
    assert np.array_equal(index.scores(tokenize("Sam"), alive, 4, addressed=(once, by_token)),
                          index.scores(tokenize("Sam"), alive, 4))  # fmt: skip
