"""The synthetic chat development set: deterministic, well formed, and of the intended shape."""

from __future__ import annotations

import itertools

from bench.devset_chat import ChatDevSet, generate
from bench.locomo import SCORED_CATEGORIES

from severance.search.speakers import learn_aliases, vocative


def test_same_seed_same_chats_other_seed_other_chats() -> None:
    a, b, c = generate(5, conversations=2), generate(5, conversations=2), generate(6, 2)
    assert a == b
    assert a.conversations[0].turns != c.conversations[0].turns


def test_every_question_cites_existing_turns_and_turns_are_in_time_order() -> None:
    data = generate(3, conversations=3)
    for conv in data.conversations:
        ids = [t.dia_id for t in conv.turns]
        assert len(set(ids)) == len(ids)
        times = [t.occurred_at for t in conv.turns]
        assert times == sorted(times)
        assert {t.speaker for t in conv.turns} == set(conv.speakers)
        for q in conv.questions:
            assert q.category in SCORED_CATEGORIES
            assert q.evidence and set(q.evidence) <= set(ids)
        cats = {q.category for q in conv.questions}
        assert cats == set(SCORED_CATEGORIES)
        # Multi-hop questions cite at least two messages.
        assert all(len(q.evidence) >= 2 for q in conv.questions if q.category == 1)


def test_shape_differs_from_locomo_per_message_times_and_names() -> None:
    data = generate(11, conversations=4)
    for conv in data.conversations:
        times = [t.occurred_at for t in conv.turns]
        # Every message has its own send time (LoCoMo gives a whole session one time) ...
        assert len(set(times)) > 0.95 * len(times)
        # ... and some exchanges pause for more than an hour between two messages of a day.
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert any(3600 < g < 6 * 3600 for g in gaps)
        # Questions rarely name a person the way the speaker field does.
        full_names = [s.lower() for s in conv.speakers]
        asked = " ".join(q.question.lower() for q in conv.questions)
        assert not any(name in asked for name in full_names)


def test_aliases_are_learned_from_how_people_address_each_other() -> None:
    speakers = ["Katherine Moore", "Ana Ruiz", "Katherine Moore", "Ana Ruiz", "Ana Ruiz"]
    texts = [
        "back from the shops",
        "good luck today Kate!!",
        "thanks!",
        "ok Kate",
        "the Monday train was late",
    ]
    assert learn_aliases(speakers, [vocative(t, None) for t in texts]) == {
        "Katherine Moore": frozenset({"kate"})
    }


def test_hard_variant_rewords_answers_adds_distractors_and_group_chats() -> None:
    plain = generate(29, conversations=6)
    hard = generate(29, conversations=6, hard=True)
    assert hard == generate(29, conversations=6, hard=True)
    # Well formed, as the plain chats are.
    for conv in hard.conversations:
        ids = {t.dia_id for t in conv.turns}
        assert all(q.evidence and set(q.evidence) <= ids for q in conv.questions)
        assert {t.speaker for t in conv.turns} == set(conv.speakers)
    # Some chats have a third person, who says things the questions never cite.
    groups = [c for c in hard.conversations if len(c.speakers) == 3]
    assert groups and len(groups) < len(hard.conversations)
    for conv in groups:
        cited = {e for q in conv.questions for e in q.evidence}
        third = {t.dia_id for t in conv.turns if t.speaker == conv.speakers[2]}
        assert third and not third & cited

    # Storyline messages are reworded: the plain wording of the job offer is rare.
    def offers(data: ChatDevSet) -> list[str]:
        out = []
        for conv in data.conversations:
            by_id = {t.dia_id: t.text for t in conv.turns}
            out += [by_id[q.evidence[0]] for q in conv.questions if "job offer" in q.question]
        return out

    assert all("called this morning" in t for t in offers(plain))
    assert sum("called this morning" in t for t in offers(hard)) < len(offers(hard))
    # Distractors: messages about the same kinds of things, cited by no question.
    texts = [t.text for c in hard.conversations for t in c.turns]
    assert any(t.startswith("my mate got an interview at") for t in texts)

    # Names are said less: the nickname closes far fewer of the owner's messages.
    def named(data: ChatDevSet) -> float:
        turns = [t for c in data.conversations for t in c.turns]
        return sum(vocative(t.text, None) is not None for t in turns) / len(turns)

    assert named(hard) < 0.5 * named(plain)
