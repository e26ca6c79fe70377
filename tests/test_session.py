"""Session behaviour: remember, get, update, forget, memories, recall, sync between processes,
snapshots, close. Real stores, the real bundled embedder."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import severance
from severance import (
    MemoryDraft,
    MemoryNotFoundError,
    Recall,
    Session,
    SessionClosedError,
    Store,
)
from severance.search import Fusion

FACTS = [
    ("The Q3 launch moved to October 12", "fact", ["launch", "q3"]),
    ("The Acme contract renewal is due on March 1", "fact", ["acme", "contract"]),
    ("Standup moved to 9:30 in room 4B", "note", ["meetings"]),
    ("Prefers dark mode in every editor", "preference", []),
    ("The staging database password rotates every Monday", "note", ["ops"]),
    ("Met the Acme procurement team about the launch budget", "episode", ["acme", "launch"]),
]


@pytest.fixture
def work(store: Store) -> Iterator[Session]:
    with store.enter(floor="office") as s:
        yield s


def remember_facts(s: Session) -> dict[str, severance.Memory]:
    return {text: s.remember(text, kind=kind, tags=tags) for text, kind, tags in FACTS}


def texts(results: list[Recall]) -> list[str]:
    return [r.memory.text for r in results]


def ids(results: list[Recall]) -> list[str]:
    return [r.memory.id for r in results]


# -- remember / get ----------------------------------------------------------------------------
def test_remember_and_get_round_trip(work: Session) -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    m = work.remember(
        "Q3 launch moved to Oct 12",
        kind="fact",
        tags=["launch", " q3 ", "launch"],
        metadata={"ticket": "PLAT-7", "n": 3, "nested": {"ok": True}},
        occurred_at=when,
        source="slack",
    )
    assert m.id.startswith("m_")
    assert (m.text, m.kind, m.tags, m.version, m.source) == (
        "Q3 launch moved to Oct 12",
        "fact",
        ("launch", "q3"),
        1,
        "slack",
    )
    assert m.metadata == {"ticket": "PLAT-7", "n": 3, "nested": {"ok": True}}
    assert m.occurred_at == when
    assert m.learned_at == m.updated_at
    assert m.learned_at > when
    assert work.get(m.id) == m
    assert work.count() == 1


def test_defaults_and_iso_strings(work: Session) -> None:
    m = work.remember("Lunch at noon", occurred_at="2024-05-01T12:00:00Z")
    assert (m.kind, m.tags, m.metadata, m.source) == ("note", (), {}, None)
    assert m.occurred_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    naive = work.remember("Naive times are UTC", occurred_at=datetime(2024, 5, 1, 12))
    assert naive.occurred_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    now = work.remember("Occurred defaults to learned")
    assert now.occurred_at == now.learned_at
    assert work.get(m.id) == m


def test_to_dict_is_json_ready(work: Session) -> None:
    import json

    m = work.remember("Dentist on Tuesday", tags=["health"], metadata={"a": [1, 2]})
    data = json.loads(json.dumps(m.to_dict()))
    assert data["id"] == m.id
    assert data["tags"] == ["health"]
    assert datetime.fromisoformat(data["occurred_at"]) == m.occurred_at


# -- update / history ---------------------------------------------------------------------------
def test_update_keeps_previous_versions(work: Session) -> None:
    m1 = work.remember("Launch on Oct 12", kind="fact", tags=["launch"], metadata={"v": 1})
    m2 = work.update(m1.id, "Launch on Oct 19")
    assert (m2.id, m2.version, m2.text) == (m1.id, 2, "Launch on Oct 19")
    assert (m2.kind, m2.tags, m2.metadata) == ("fact", ("launch",), {"v": 1})
    assert m2.learned_at == m1.learned_at
    assert m2.updated_at >= m1.updated_at
    m3 = work.update(m1.id, tags=["launch", "moved"], metadata={"v": 3}, kind="note")
    assert (m3.version, m3.text, m3.kind, m3.tags, m3.metadata) == (
        3,
        "Launch on Oct 19",
        "note",
        ("launch", "moved"),
        {"v": 3},
    )
    when = datetime(2024, 1, 2, tzinfo=UTC)
    m4 = work.update(m1.id, occurred_at=when)
    assert (m4.version, m4.occurred_at) == (4, when)
    assert work.get(m1.id) == m4
    history = work.history(m1.id)
    assert [v.version for v in history] == [1, 2, 3, 4]
    assert [v.text for v in history] == [
        "Launch on Oct 12",
        "Launch on Oct 19",
        "Launch on Oct 19",
        "Launch on Oct 19",
    ]
    assert history[0] == m1
    assert history[-1] == m4
    assert history[1].kind == "fact" and history[2].kind == "note"
    assert work.count() == 1


def test_update_with_nothing_changed_is_a_no_op(work: Session) -> None:
    m = work.remember(
        "Standup at 9:30",
        kind="fact",
        tags=["a", "b"],
        metadata={"x": 1},
        occurred_at="2024-05-01T09:30:00+00:00",
    )
    same = work.update(m.id)
    assert same == m
    assert work.update(m.id, "Standup at 9:30", kind="fact") == m
    assert work.update(m.id, tags=("a", "b"), metadata={"x": 1}) == m
    # The same instant written in another offset is the same time.
    assert work.update(m.id, occurred_at="2024-05-01T11:30:00+02:00") == m
    assert work.history(m.id) == [m]
    assert work.get(m.id).version == 1
    assert work.counts["updated"] == 0


def test_updated_text_is_what_recall_finds(work: Session) -> None:
    m = work.remember("The offsite is in Lisbon")
    work.remember("Coffee machine on floor 3 is broken")
    assert texts(work.recall("Lisbon", mode="keyword")) == ["The offsite is in Lisbon"]
    work.update(m.id, "The offsite moved to Porto")
    assert work.recall("Lisbon", mode="keyword") == []
    found = work.recall("Porto", mode="keyword")
    assert texts(found) == ["The offsite moved to Porto"]
    assert found[0].memory.version == 2


def test_update_of_tags_only_keeps_the_vector(work: Session) -> None:
    m = work.remember("The quarterly planning offsite happens in Lisbon")
    work.remember("The cafeteria serves soup on Fridays")
    before = work.recall("where is the planning offsite", k=1, mode="dense")
    work.update(m.id, tags=["travel"])
    after = work.recall("where is the planning offsite", k=1, mode="dense")
    assert ids(before) == ids(after) == [m.id]
    assert after[0].dense_score == pytest.approx(before[0].dense_score, abs=1e-6)


# -- forget ---------------------------------------------------------------------------------------
def test_forget_is_a_hard_delete(work: Session, store: Store, backend_name: str) -> None:
    m = work.remember("The wifi password is swordfish")
    work.update(m.id, "The wifi password is marlin")
    keep = work.remember("The printer is on floor 2")
    work.forget(m.id)
    for call in (work.get, work.history, work.forget):
        with pytest.raises(MemoryNotFoundError) as e:
            call(m.id)
        assert str(e.value) == f"no memory with id {m.id!r}"
    with pytest.raises(MemoryNotFoundError):
        work.update(m.id, "again")
    assert work.count() == 1
    assert [x.id for x in work.memories().items] == [keep.id]
    assert work.recall("wifi password", mode="keyword") == []
    assert ids(work.recall("wifi password")) == [keep.id]
    if backend_name == "sqlite":
        db = Path(store.location) / "store.db"
        with closing(sqlite3.connect(db)) as raw:
            for table, column in (("memories", "id"), ("history", "memory_id")):
                n = raw.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (m.id,))
                assert n.fetchone()[0] == 0, table


# -- memories() ---------------------------------------------------------------------------------
def test_memories_pages_in_learned_order(work: Session) -> None:
    made = [work.remember(f"memory number {i}") for i in range(7)]
    page = work.memories(limit=3)
    assert page.total == 7
    assert [m.id for m in page.items] == [m.id for m in reversed(made)][:3]
    seen = list(page.items)
    while page.next_offset is not None:
        page = work.memories(limit=3, offset=page.next_offset)
        seen.extend(page.items)
    assert [m.id for m in seen] == [m.id for m in reversed(made)]
    assert page.next_offset is None
    oldest = work.memories(limit=5, newest_first=False)
    assert [m.id for m in oldest.items] == [m.id for m in made[:5]]
    assert oldest.next_offset == 5
    rest = work.memories(limit=5, offset=5, newest_first=False)
    assert [m.id for m in rest.items] == [m.id for m in made[5:]]
    assert rest.next_offset is None
    beyond = work.memories(offset=50)
    assert (beyond.items, beyond.total, beyond.next_offset) == ((), 7, None)
    assert work.memories(limit=7).next_offset is None
    assert work.memories() == work.memories(limit=50, offset=0, newest_first=True)


def test_memories_of_an_empty_persona(work: Session) -> None:
    page = work.memories()
    assert (page.items, page.total, page.next_offset) == ((), 0, None)
    assert work.recall("anything") == []
    assert work.export() == []


# -- recall ---------------------------------------------------------------------------------------
def test_recall_finds_the_right_memory(work: Session) -> None:
    remember_facts(work)
    top = work.recall("when is the launch?", k=1)
    assert texts(top) == ["The Q3 launch moved to October 12"]
    top = work.recall("what time is the daily standup meeting", k=1, mode="dense")
    assert texts(top) == ["Standup moved to 9:30 in room 4B"]
    assert work.counts["recalled"] == 2


def test_recall_results_carry_scores_and_ranks(work: Session) -> None:
    remember_facts(work)
    results = work.recall("Acme launch", k=6, fusion=Fusion.reciprocal_rank())
    assert len(results) == 6
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert r.dense_rank is not None and r.dense_score is not None
        expected = 1 / (60 + r.dense_rank)
        if r.keyword_rank is not None:
            assert r.keyword_score is not None and r.keyword_score > 0
            expected += 1 / (60 + r.keyword_rank)
        assert r.score == pytest.approx(expected)
    # Both words appear only in the episode: it is first in the keyword list and first overall.
    assert results[0].memory.text.startswith("Met the Acme procurement team")
    assert results[0].keyword_rank == 1
    assert sorted(r.dense_rank for r in results) == [1, 2, 3, 4, 5, 6]
    keyword_ranked = sorted(r.keyword_rank for r in results if r.keyword_rank is not None)
    assert keyword_ranked == list(range(1, len(keyword_ranked) + 1))
    assert results[0].to_dict()["memory"]["id"] == results[0].memory.id


def test_recall_modes(work: Session) -> None:
    remember_facts(work)
    dense = work.recall("Acme", k=10, mode="dense")
    assert len(dense) == len(FACTS)
    for r in dense:
        assert r.keyword_rank is None and r.keyword_score is None
        assert r.score == r.dense_score
    keyword = work.recall("Acme", k=10, mode="keyword")
    assert sorted(texts(keyword)) == sorted(t for t, _, _ in FACTS if "Acme" in t)
    for r in keyword:
        assert r.dense_rank is None and r.dense_score is None
        assert r.score == r.keyword_score
        assert r.keyword_score is not None and r.keyword_score > 0
    # Keyword mode finds nothing for words no memory holds; dense always ranks something.
    assert work.recall("xylophone", mode="keyword") == []
    assert len(work.recall("xylophone", k=2, mode="dense")) == 2
    hybrid = work.recall("Acme", k=3)
    assert len(hybrid) == 3
    # Keyword matching is stemmed and case-insensitive.
    assert texts(work.recall("LAUNCHES", mode="keyword"))


def test_recall_k_limits_results(work: Session) -> None:
    remember_facts(work)
    for k in (1, 2, 5, 6, 100):
        assert len(work.recall("work", k=k)) == min(k, len(FACTS))


def test_recall_filters(work: Session) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for i, (text, kind, tags) in enumerate(FACTS):
        work.remember(text, kind=kind, tags=tags, occurred_at=base + timedelta(days=30 * i))
    q = "Acme launch meeting"

    def got(**flt: object) -> set[str]:
        return set(texts(work.recall(q, k=50, **flt)))  # type: ignore[arg-type]

    assert got(kind="fact") == {t for t, k, _ in FACTS if k == "fact"}
    assert got(kind=["note", "preference"]) == {
        t for t, k, _ in FACTS if k in ("note", "preference")
    }
    assert got(kind="decision") == set()
    assert got(tags=["acme"]) == {t for t, _, tags in FACTS if "acme" in tags}
    assert got(tags=["acme", "launch"]) == {FACTS[5][0]}  # all of the tags
    assert got(tags=["acme", "meetings"]) == set()
    assert got(tags=[]) == {t for t, _, _ in FACTS}
    assert got(since=base + timedelta(days=60)) == {t for t, _, _ in FACTS[2:]}
    assert got(until=base + timedelta(days=60)) == {t for t, _, _ in FACTS[:2]}
    assert got(since="2024-01-31T00:00:00Z", until="2024-03-31T00:00:00Z") == {
        FACTS[1][0],
        FACTS[2][0],
    }
    assert got(kind="fact", tags=["acme"], since=base) == {FACTS[1][0]}
    # Filters apply to keyword mode too.
    keyword = work.recall("Acme", mode="keyword", kind="episode")
    assert texts(keyword) == [FACTS[5][0]]


def test_min_similarity_drops_unrelated_results(work: Session) -> None:
    remember_facts(work)
    unrelated = "quantum chromodynamics lattice gauge theory"
    assert len(work.recall(unrelated, k=3)) == 3
    assert work.recall(unrelated, k=3, min_similarity=0.5) == []
    assert len(work.recall(unrelated, k=3, min_similarity=-1.0)) == 3
    # A shared keyword keeps a result whatever its similarity.
    kept = work.recall("Acme zebra", k=10, min_similarity=0.99)
    assert {r.memory.text for r in kept} == {t for t, _, _ in FACTS if "Acme" in t}
    assert all(r.keyword_rank is not None for r in kept)


def test_recency_prefers_newer_memories(work: Session) -> None:
    old = work.remember("Team lunch at the ramen place", occurred_at="2023-01-01T12:00:00Z")
    new = work.remember("Team lunch at the ramen place", occurred_at="2024-06-01T12:00:00Z")
    # Identical texts tie in both lists; the tie goes to the memory learned first.
    plain = work.recall("team lunch", k=2, mode="dense")
    assert plain[0].score == pytest.approx(plain[1].score)
    assert ids(plain) == [old.id, new.id]
    assert ids(work.recall("team lunch", k=2)) == [old.id, new.id]
    for mode in ("hybrid", "dense", "keyword"):
        recent = work.recall("team lunch", k=2, recency=1.0, mode=mode)  # type: ignore[arg-type]
        assert ids(recent) == [new.id, old.id], mode
        assert recent[0].score > recent[1].score
    half = work.recall("team lunch", k=2, recency=0.5, mode="dense")
    assert ids(half) == [new.id, old.id]
    assert half[1].score < plain[1].score


# -- remember_many --------------------------------------------------------------------------------
def test_remember_many_with_progress(work: Session) -> None:
    calls: list[tuple[int, int]] = []
    items: list[MemoryDraft | dict[str, object] | str] = [
        "plain string memory",
        {"text": "a dict memory", "kind": "fact", "tags": ["x"], "metadata": {"k": 1}},
        MemoryDraft("a draft memory", kind="episode", occurred_at=datetime(2024, 1, 1)),
        {"text": "another dict", "source": "import"},
        "last one",
    ]
    stored = work.remember_many(
        items, progress=lambda n, total: calls.append((n, total)), batch_size=2
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert [m.text for m in stored] == [
        "plain string memory",
        "a dict memory",
        "a draft memory",
        "another dict",
        "last one",
    ]
    assert stored[1].tags == ("x",) and stored[1].metadata == {"k": 1}
    assert stored[2].kind == "episode"
    assert stored[2].occurred_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert stored[3].source == "import"
    assert len({m.id for m in stored}) == 5
    for m in stored:
        assert work.get(m.id) == m
    assert work.count() == 5
    assert work.counts["remembered"] == 5
    assert texts(work.recall("draft", mode="keyword")) == ["a draft memory"]
    assert work.remember_many([]) == []


def test_remember_many_of_a_generator(work: Session) -> None:
    stored = work.remember_many(f"generated memory {i}" for i in range(4))
    assert work.count() == len(stored) == 4


# -- another process on the same store -----------------------------------------------------------
def test_writes_by_another_store_object_are_seen(store: Store, store_location: str) -> None:
    with store.enter(floor="office") as mine:
        first = mine.remember("The deploy freeze starts Friday")
        assert ids(mine.recall("deploy freeze")) == [first.id]  # the index is loaded now
        with Store.open(store_location) as other, other.enter(floor="office") as theirs:
            added = theirs.remember("The kiwi deploy dashboard moved to Grafana")
            theirs.update(first.id, "The deploy freeze starts Thursday")
            home = other.enter(floor="house")
            home.remember("kiwi smoothie recipe for Sunday")
            home.close()
        found = mine.recall("kiwi", mode="keyword")
        assert texts(found) == ["The kiwi deploy dashboard moved to Grafana"]
        assert found[0].memory.id == added.id
        again = mine.recall("deploy freeze Thursday", k=1)
        assert again[0].memory.text == "The deploy freeze starts Thursday"
        assert again[0].memory.version == 2
        assert mine.count() == 2
        assert mine.get(added.id).text == added.text


def test_forget_by_another_store_object_is_reflected(store: Store, store_location: str) -> None:
    with store.enter(floor="office") as mine:
        gone = mine.remember("The quokka project is cancelled")
        kept = mine.remember("The quokka mascot stays")
        assert len(mine.recall("quokka", mode="keyword")) == 2
        with Store.open(store_location) as other, other.enter(floor="office") as theirs:
            theirs.forget(gone.id)
        assert ids(mine.recall("quokka", mode="keyword")) == [kept.id]
        assert ids(mine.recall("quokka project cancelled", k=5)) == [kept.id]
        with pytest.raises(MemoryNotFoundError):
            mine.get(gone.id)


def test_forget_elsewhere_then_snapshot_elsewhere_is_still_reflected(
    store: Store, store_location: str
) -> None:
    """Another process forgets a memory and then snapshots the index (which may drop the
    deletion's tombstone): an older session must still not lose results to the ghost."""
    with store.enter(floor="office") as mine:
        gone = mine.remember("The walrus budget meeting is on Monday")
        kept = mine.remember("Walrus team offsite happens in May")
        assert len(mine.recall("walrus", mode="keyword")) == 2
        with Store.open(store_location) as other, other.enter(floor="office") as theirs:
            theirs.forget(gone.id)
            theirs.recall("walrus")
            theirs.checkpoint()
        # The best match for this query was forgotten: the next best must take its place.
        top = mine.recall("walrus budget meeting", k=1)
        assert ids(top) == [kept.id]
        assert ids(mine.recall("walrus", k=10, mode="keyword")) == [kept.id]


# -- snapshots ------------------------------------------------------------------------------------
QUERIES = ["launch date", "Acme contract", "standup room", "editor theme", "password", "budget"]


def _answers(s: Session) -> list[list[tuple[str, int | None, int | None]]]:
    out = []
    for q in QUERIES:
        for mode in ("hybrid", "dense", "keyword"):
            out.append(
                [(r.memory.id, r.dense_rank, r.keyword_rank) for r in s.recall(q, k=4, mode=mode)]
            )
    return out


def test_snapshot_plus_tail_equals_a_fresh_rebuild(store: Store, store_location: str) -> None:
    with store.enter(floor="office") as s:
        made = remember_facts(s)
        s.remember_many([f"filler memory about topic {i}" for i in range(20)])
        s.recall("warm up the index")
        s.checkpoint()
        persona_id = s.persona_id
        # The tail: changes after the snapshot, from this session and from another process.
        s.remember("The launch party is at the rooftop bar")
        s.update(made[FACTS[0][0]].id, "The Q3 launch moved to October 19")
        s.forget(made[FACTS[3][0]].id)
        with Store.open(store_location) as other, other.enter(floor="office") as o:
            o.remember("Budget review for the launch is on Wednesday")
            o.forget(made[FACTS[4][0]].id)
        live = _answers(s)
    assert store._backend.rows(persona_id).read_snapshot() is not None
    with store.enter(floor="office") as s:
        from_snapshot = _answers(s)
    store._backend.rows(persona_id).drop_snapshot()
    with store.enter(floor="office") as s:
        rebuilt = _answers(s)
    assert from_snapshot == rebuilt == live
    assert not [e for e in store.audit() if e.event == "snapshot_rejected"]


def test_checkpoint_of_an_empty_persona(store: Store) -> None:
    with store.enter(floor="studio") as s:
        s.checkpoint()
    with store.enter(floor="studio") as s:
        assert s.recall("anything") == []
        m = s.remember("first memory after an empty snapshot")
        assert ids(s.recall("first memory")) == [m.id]


def test_reopened_store_recalls_from_the_snapshot(store_location: str) -> None:
    with Store.init(store_location) as st:
        st.add_persona("work")
        st.add_floor("office", persona="work")
        with st.enter(floor="office") as s:
            remember_facts(s)
            s.checkpoint()
            s.remember("A tail memory about the launch checklist")
            expected = _answers(s)
    with Store.open(store_location) as st, st.enter(floor="office") as s:
        assert _answers(s) == expected


# -- closing --------------------------------------------------------------------------------------
def test_closed_sessions_refuse_every_call(store: Store) -> None:
    s = store.enter(floor="office")
    m = s.remember("remember me")
    s.close()
    assert s.closed
    s.close()  # closing twice is harmless
    calls = [
        lambda: s.remember("x"),
        lambda: s.remember_many(["x"]),
        lambda: s.get(m.id),
        lambda: s.update(m.id, "y"),
        lambda: s.forget(m.id),
        lambda: s.history(m.id),
        lambda: s.memories(),
        lambda: s.recall("remember"),
        lambda: s.count(),
        lambda: s.export(),
        lambda: s.checkpoint(),
        lambda: s.audit(),
        lambda: s.notices(),
    ]
    for call in calls:
        with pytest.raises(SessionClosedError):
            call()
    with store.enter(floor="office") as again:
        assert again.get(m.id).text == "remember me"


def test_closing_the_store_closes_its_sessions(store_location: str) -> None:
    st = Store.init(store_location)
    st.add_persona("work")
    st.add_floor("office", persona="work")
    s = st.enter(floor="office")
    s.remember("something")
    st.close()
    assert s.closed
    with pytest.raises(SessionClosedError):
        s.count()
    with pytest.raises(severance.StoreError):
        st.enter(floor="office")
    with Store.open(store_location) as st2:
        events = [e.event for e in st2.audit()]
    assert events[-2:] == ["enter", "exit"]


def test_a_closed_store_refuses_calls(store_location: str) -> None:
    st = Store.init(store_location)
    st.close()
    with pytest.raises(severance.StoreError):
        st.add_persona("late")


# -- export, audit, identity ----------------------------------------------------------------------
def test_export_returns_every_memory_and_is_audited(store: Store) -> None:
    with store.enter(floor="office") as s:
        made = remember_facts(s)
        exported = s.export()
        assert {m.id for m in exported} == {m.id for m in made.values()}
        assert {m.text for m in exported} == set(made)
        own = s.audit()
    assert own[-1].event == "export"
    assert own[-1].detail == {"memories": len(FACTS)}
    assert all(e.persona == "work" for e in own)


def test_session_identity_and_audit_trail(store: Store) -> None:
    with store.enter(floor="house") as s:
        assert (s.persona, s.floor, s.expires_at) == ("home", "house", None)
        assert s.persona_id == store.persona("home").id
        s.remember("x")
        s.recall("x")
        counts = dict(s.counts)
        assert s.notices() == []
    assert counts == {"remembered": 1, "recalled": 1, "updated": 0, "forgotten": 0}
    exits = [e for e in store.audit("home") if e.event == "exit"]
    assert exits[-1].detail == counts
    assert {e.persona for e in store.audit("home")} == {"home"}
