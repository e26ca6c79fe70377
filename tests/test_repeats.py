"""Repeats go after the distinct results: a message said again ("ok", "nothing much, just
chilling", a note stored on two days) takes no second place among the best results of a hybrid
search, and scores still fall along the list (:func:`severance.search.scoring.repeats_last`).
Real stores (both back-ends), the bundled embedder; each scenario has a control search with
``Fusion(repeats_last=False)``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import severance
from severance import Session
from severance.errors import InvalidInputError
from severance.search import Fusion
from severance.search.scoring import repeats_last

START = datetime(2024, 5, 6, 19, 0, tzinfo=UTC)
NO_REPEATS_RULE = Fusion(repeats_last=False)


def test_repeats_move_after_the_distinct_results_and_scores_still_fall() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(6, 16)).astype(np.float32)
    vectors[1] = vectors[0] + 1e-5  # the first said again (another batch's last bits)
    vectors[3] = vectors[0]  # ... by someone else
    vectors[5] = vectors[2]  # the third again
    keyword = np.array([2.0, 2.0, 1.0, 2.0, 0.0, 1.0], dtype=np.float32)
    speakers = np.array([1, 1, 1, 2, 1, 1], dtype=np.int32)
    kinds = np.zeros(6, dtype=np.int32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # the index holds unit vectors
    dense = (vectors @ vectors[4]).astype(np.float64)  # cosines to some query
    moved = repeats_last(scores, np.arange(6), vectors, dense, keyword, speakers, kinds)
    assert moved is not None
    order, new = moved
    assert order.tolist() == [0, 2, 3, 4, 1, 5]
    assert new.tolist() == [0.9, 0.7, 0.6, 0.5, 0.5, 0.4]  # capped at the last distinct one
    assert all(a >= b for a, b in itertools.pairwise(new))


def test_repeats_are_found_in_half_precision_rows_too() -> None:
    # A persona with an HNSW graph keeps float16 rows: the same message must still count as a
    # repeat, and a merely similar one (cosine 0.9999x) must not.
    rng = np.random.default_rng(11)
    base = rng.normal(size=384)
    near = base + rng.normal(size=384) * 0.012
    rows = np.stack([base, base, near]).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert 0.9999 < float(rows[0] @ rows[2]) < 0.99999
    half = rows.astype(np.float16)
    same = np.zeros(3, dtype=np.int32)
    keyword = np.ones(3, dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7])
    moved = repeats_last(scores, np.array([0, 2, 1]), half, None, keyword, same, same)
    assert moved is not None
    assert moved[0].tolist() == [0, 1, 2]  # the repeat (row 1, ranked last) stays last ...
    moved = repeats_last(scores, np.array([0, 1, 2]), half, None, keyword, same, same)
    assert moved is not None
    assert moved[0].tolist() == [0, 2, 1]  # ... and moves after the near one when above it


def test_only_the_head_is_rearranged_and_nothing_to_do_is_none() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    vectors = np.eye(4, 8, dtype=np.float32)
    vectors[2] = vectors[3] = vectors[0]
    vectors[1, :2] = [0.9999, 0.01414]  # close to the first, not close enough (cosine 0.9999)
    speakers = np.zeros(4, dtype=np.int32)
    kinds = np.array([0, 0, 0, 1], dtype=np.int32)  # the last: another kind
    slots = np.arange(4)
    moved = repeats_last(scores, slots[:3], vectors, None, None, speakers, kinds)
    assert moved is not None and moved[0].tolist() == [0, 1, 2, 3]
    assert moved[1].tolist() == [0.9, 0.8, 0.7, 0.6]  # already last of the head: kept
    assert repeats_last(scores, slots[:2], vectors, None, None, speakers, kinds) is None
    other_words = np.array([1.0, 0.0, 2.0, 0.0], dtype=np.float32)
    assert repeats_last(scores, slots, vectors, None, other_words, speakers, kinds) is None
    far_apart = np.array([0.9, 0.5, 0.3, 0.1])  # cosines to the query rule the pairs out
    assert repeats_last(scores, slots, vectors, far_apart, None, speakers, kinds) is None
    assert repeats_last(scores[:1], slots[:1], vectors, None, None, speakers, kinds) is None


@pytest.fixture
def chat(store_location: str) -> Iterator[Session]:
    store = severance.Store.init(store_location)
    store.add_persona("chat")
    store.add_floor("phone", persona="chat")
    with store.enter(floor="phone") as session:
        yield session
    store.close()


def _say(session: Session, lines: list[tuple[str, float]]) -> None:
    """Plain messages, each a day apart from the last (so no conversation context)."""
    for text, days in lines:
        session.remember(text, occurred_at=START + timedelta(days=days))


def test_a_repeated_message_takes_no_second_place(chat: Session) -> None:
    filler = "Ana Ruiz: nothing much, just chilling"
    _say(
        chat,
        [
            (filler, 0),
            ("Ana Ruiz: chilling at the lake with the dog today", 1),
            (filler, 2),
            ("Ana Ruiz: the pottery class starts next week", 3),
            (filler, 4),
        ],
    )
    question = "what was Ana doing while chilling?"
    control = [r.memory.text for r in chat.recall(question, k=3, fusion=NO_REPEATS_RULE)]
    assert control.count(filler) >= 2  # without the rule the copies crowd the top
    hits = chat.recall(question, k=3)
    texts = [r.memory.text for r in hits]
    assert texts[:2].count(filler) == 1
    assert "Ana Ruiz: chilling at the lake with the dog today" in texts[:2]
    assert [r.score for r in hits] == sorted((r.score for r in hits), reverse=True)
    # Every copy is still there, further down: nothing is dropped.
    everything = [r.memory.text for r in chat.recall(question, k=5)]
    assert everything.count(filler) == 3


def test_other_speakers_and_modes_are_left_alone(chat: Session) -> None:
    _say(chat, [("Ana Ruiz: ok see you then", 0), ("Ben Ode: ok see you then", 1)])
    _say(chat, [("Ana Ruiz: ok see you then", 2)])
    question = "see you then"
    hits = chat.recall(question, k=3)
    speakers = [r.memory.text.split(":")[0] for r in hits]
    assert sorted(speakers[:2]) == ["Ana Ruiz", "Ben Ode"]  # two people: two messages
    for mode in ("dense", "keyword"):
        plain = chat.recall(question, k=3, mode=mode)  # type: ignore[arg-type]
        ruled_off = chat.recall(question, k=3, mode=mode, fusion=NO_REPEATS_RULE)  # type: ignore[arg-type]
        assert [r.memory.id for r in plain] == [r.memory.id for r in ruled_off]


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_repeats_setting_that_is_not_a_flag_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="repeats_last"):
        Fusion(repeats_last=bad)  # type: ignore[arg-type]
