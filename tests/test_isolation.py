"""Isolation, as a Hypothesis state machine over three personas.

Random remember / remember_many / update / forget / recall / get / history / memories / count
/ export steps run against long-lived sessions (sometimes closed and re-entered, sometimes
checkpointed, sometimes with the whole store reopened) and against a second ``Store`` object
on the same location that plays "another process". A model says what each persona holds.
After every step:

* no result ever contains another persona's memory (checked by id *and* by the persona
  marker word every text, tag list and metadata carries);
* recall returns only the awake persona's memories, and all of them when asked for its marker;
* ``get``/``history``/``update``/``forget`` of another persona's id raise
  ``MemoryNotFoundError`` with exactly the message a never-existing id gets;
* counts and pages match the model.

All examples share one store (so the test runs unchanged on every back-end); each example
adds its own three personas, so earlier examples leave foreign memories — with the same
marker words — lying around for a leak to surface. What an example *does* depends only on
what it drew and made itself (its foreign ids come from a fourth persona it fills itself;
memories are picked in the order it made them, never by their random ids): a failure saved
in the Hypothesis database replays the same steps whatever examples ran before it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import severance
from severance import MemoryNotFoundError, Session, Store
from severance.model import new_id

ROLES = ("work", "home", "side")
FLOORS = {"work": "office", "home": "house", "side": "studio"}
# One marker word per role: it survives tokenising unchanged and occurs nowhere else.
MARKERS = {"work": "zqworkx", "home": "zqhomex", "side": "zqsidex"}
# Words every persona uses, so dense and keyword search have cross-persona temptations.
VOCAB = ["launch", "budget", "birthday", "dentist", "guitar", "invoice", "garden", "meeting"]

roles = st.sampled_from(ROLES)
word_lists = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4)
modes = st.sampled_from(["hybrid", "dense", "keyword"])


@dataclass
class Entry:
    text: str
    tags: tuple[str, ...]
    version: int


class IsolationMachine(RuleBasedStateMachine):
    location: str = ""
    examples = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        n = next(self.examples)
        self.serial = itertools.count()
        self.names = {role: f"{role}-{n}" for role in ROLES}
        self.floors = {role: f"{FLOORS[role]}-{n}" for role in ROLES}
        self.store = Store.open(self.location)
        self.other = Store.open(self.location)  # "another process" on the same store
        for role in ROLES:
            self.store.add_persona(self.names[role])
            self.store.add_floor(self.floors[role], persona=self.names[role])
        self.sessions: dict[str, Session | None] = dict.fromkeys(ROLES)
        self.model: dict[str, dict[str, Entry]] = {role: {} for role in ROLES}
        #: Ids foreign to every persona of this example: memories of a fourth persona (one
        #: of them forgotten), made here rather than taken from earlier examples.
        self.past_ids = self.foreign_ids(n)

    def foreign_ids(self, n: int) -> list[str]:
        self.other.add_persona(f"past-{n}")
        self.other.add_floor(f"attic-{n}", persona=f"past-{n}")
        with self.other.enter(floor=f"attic-{n}") as s:
            made = s.remember_many(
                [f"{' '.join(MARKERS.values())} {word} from the past" for word in VOCAB[:3]]
            )
            s.forget(made[0].id)
        return [m.id for m in made]

    def teardown(self) -> None:
        for s in self.sessions.values():
            if s is not None:
                s.close()
        assert self.store.verify_audit().ok
        self.store.close()
        self.other.close()

    # -- helpers ------------------------------------------------------------------------------
    def session(self, role: str) -> Session:
        s = self.sessions[role]
        if s is None:
            s = self.sessions[role] = self.store.enter(floor=self.floors[role])
        assert s.persona == self.names[role]
        return s

    def elsewhere(self, role: str) -> Session:
        s = self.other.enter(floor=self.floors[role])
        assert s.persona == self.names[role]
        return s

    def text(self, role: str, words: list[str]) -> str:
        return f"{MARKERS[role]} {' '.join(words)} number{next(self.serial)}"

    def check_memory(self, role: str, m: severance.Memory) -> None:
        """``m`` belongs to ``role`` and is exactly what the model says."""
        assert m.id in self.model[role], f"{self.names[role]} returned a memory it never held"
        entry = self.model[role][m.id]
        assert (m.text, m.tags, m.version) == (entry.text, entry.tags, entry.version)
        assert m.metadata == {"owner": MARKERS[role]}
        for other, marker in MARKERS.items():
            present = marker in m.text or marker in m.tags
            assert present == (other == role), f"{marker} in a memory of {self.names[role]}"

    def pick(self, data: st.DataObject, *, owner: str | None = None) -> tuple[str, str]:
        role = owner or data.draw(st.sampled_from([r for r in ROLES if self.model[r]]))
        # In the order this example made them: their ids are random, sorted they would not be.
        memory_id = data.draw(st.sampled_from(list(self.model[role])))
        return role, memory_id

    def has_memories(self) -> bool:
        return any(self.model.values())

    def not_found_like_a_made_up_id(self, call: object, memory_id: str) -> None:
        made_up = new_id("m_")
        with pytest.raises(MemoryNotFoundError) as foreign:
            call(memory_id)  # type: ignore[operator]
        with pytest.raises(MemoryNotFoundError) as never:
            call(made_up)  # type: ignore[operator]
        assert type(foreign.value) is type(never.value)
        assert str(foreign.value) == str(never.value).replace(made_up, memory_id)
        assert foreign.value.args == (str(foreign.value),)
        assert foreign.value.memory_id == memory_id

    # -- writes -------------------------------------------------------------------------------
    @rule(role=roles, words=word_lists, elsewhere=st.booleans())
    def remember(self, role: str, words: list[str], elsewhere: bool) -> None:
        text = self.text(role, words)
        tags = (MARKERS[role], words[0])
        meta = {"owner": MARKERS[role]}
        if elsewhere:
            with self.elsewhere(role) as s:
                m = s.remember(text, tags=tags, metadata=meta)
        else:
            m = self.session(role).remember(text, tags=tags, metadata=meta)
        self.model[role][m.id] = Entry(text, tags, 1)
        self.check_memory(role, m)

    @rule(role=roles, items=st.lists(word_lists, min_size=1, max_size=5))
    def remember_many(self, role: str, items: list[list[str]]) -> None:
        drafts = [
            {
                "text": self.text(role, w),
                "tags": [MARKERS[role]],
                "metadata": {"owner": MARKERS[role]},
            }
            for w in items
        ]
        stored = self.session(role).remember_many(drafts, batch_size=2)
        assert [m.text for m in stored] == [d["text"] for d in drafts]
        for m in stored:
            self.model[role][m.id] = Entry(m.text, (MARKERS[role],), 1)
            self.check_memory(role, m)

    @precondition(has_memories)
    @rule(data=st.data(), words=word_lists, elsewhere=st.booleans())
    def update(self, data: st.DataObject, words: list[str], elsewhere: bool) -> None:
        role, memory_id = self.pick(data)
        entry = self.model[role][memory_id]
        text = self.text(role, words)
        if elsewhere:
            with self.elsewhere(role) as s:
                m = s.update(memory_id, text)
        else:
            m = self.session(role).update(memory_id, text)
        entry.text, entry.version = text, entry.version + 1
        self.check_memory(role, m)

    @precondition(has_memories)
    @rule(data=st.data())
    def update_with_nothing_changed(self, data: st.DataObject) -> None:
        role, memory_id = self.pick(data)
        entry = self.model[role][memory_id]
        m = self.session(role).update(memory_id, entry.text, tags=entry.tags)
        self.check_memory(role, m)

    @precondition(has_memories)
    @rule(data=st.data(), elsewhere=st.booleans())
    def forget(self, data: st.DataObject, elsewhere: bool) -> None:
        role, memory_id = self.pick(data)
        if elsewhere:
            with self.elsewhere(role) as s:
                s.forget(memory_id)
        else:
            self.session(role).forget(memory_id)
        del self.model[role][memory_id]
        self.not_found_like_a_made_up_id(self.session(role).get, memory_id)

    # -- crossing the wall on purpose -------------------------------------------------------------
    @rule(data=st.data(), intruder=roles, from_the_past=st.booleans(), nth=st.integers(0, 999))
    def reach_into_another_persona(
        self, data: st.DataObject, intruder: str, from_the_past: bool, nth: int
    ) -> None:
        owners = [r for r in ROLES if self.model[r] and r != intruder]
        if from_the_past:
            memory_id = self.past_ids[nth % len(self.past_ids)]
        elif owners:
            _, memory_id = self.pick(data, owner=data.draw(st.sampled_from(owners)))
        else:
            return
        s = self.session(intruder)
        self.not_found_like_a_made_up_id(s.get, memory_id)
        self.not_found_like_a_made_up_id(s.history, memory_id)
        self.not_found_like_a_made_up_id(
            lambda i: s.update(i, "overwritten from outside"), memory_id
        )
        self.not_found_like_a_made_up_id(lambda i: s.update(i, tags=["x"]), memory_id)
        self.not_found_like_a_made_up_id(s.forget, memory_id)
        # ...and the owner's memory is untouched (checked by the invariant below).

    # -- reads ------------------------------------------------------------------------------------
    @rule(role=roles, words=word_lists, mode=modes, k=st.integers(1, 12), elsewhere=st.booleans())
    def recall(self, role: str, words: list[str], mode: str, k: int, elsewhere: bool) -> None:
        query = " ".join(words)
        if elsewhere:
            with self.elsewhere(role) as s:
                results = s.recall(query, k=k, mode=mode)  # type: ignore[arg-type]
        else:
            results = self.session(role).recall(query, k=k, mode=mode)  # type: ignore[arg-type]
        for r in results:
            self.check_memory(role, r.memory)
        assert len({r.memory.id for r in results}) == len(results)
        if mode != "keyword":
            # Dense ranks every memory of the persona: exactly min(k, n) results.
            assert len(results) == min(k, len(self.model[role]))

    @precondition(has_memories)
    @rule(role=roles, mode=modes)
    def recall_own_marker_finds_everything(self, role: str, mode: str) -> None:
        s = self.session(role)
        if mode == "keyword":
            results = s.recall(MARKERS[role], k=1000, mode="keyword")
        else:  # the marker is also a tag on every memory of the persona
            results = s.recall("anything", k=1000, mode=mode, tags=[MARKERS[role]])  # type: ignore[arg-type]
        assert {r.memory.id for r in results} == set(self.model[role])
        for r in results:
            self.check_memory(role, r.memory)

    @precondition(has_memories)
    @rule(role=roles, stranger=roles, mode=modes)
    def recall_a_foreign_marker_finds_nothing(self, role: str, stranger: str, mode: str) -> None:
        if role == stranger:
            return
        s = self.session(role)
        assert s.recall(MARKERS[stranger], k=1000, mode="keyword") == []
        assert s.recall("budget", k=1000, mode=mode, tags=[MARKERS[stranger]]) == []  # type: ignore[arg-type]
        assert s.recall(MARKERS[stranger], k=1000, mode=mode, min_similarity=0.99) == []  # type: ignore[arg-type]

    @precondition(has_memories)
    @rule(data=st.data(), elsewhere=st.booleans())
    def get_and_history(self, data: st.DataObject, elsewhere: bool) -> None:
        role, memory_id = self.pick(data)
        if elsewhere:
            with self.elsewhere(role) as s:
                m, versions = s.get(memory_id), s.history(memory_id)
        else:
            s = self.session(role)
            m, versions = s.get(memory_id), s.history(memory_id)
        self.check_memory(role, m)
        assert [v.version for v in versions] == list(range(1, m.version + 1))
        assert versions[-1] == m
        for v in versions:
            assert MARKERS[role] in v.text
            assert not any(mk in v.text for r, mk in MARKERS.items() if r != role)

    @rule(role=roles, limit=st.integers(1, 7), newest_first=st.booleans())
    def memories(self, role: str, limit: int, newest_first: bool) -> None:
        s = self.session(role)
        page = s.memories(limit=limit, newest_first=newest_first)
        seen = list(page.items)
        while page.next_offset is not None:
            page = s.memories(limit=limit, offset=page.next_offset, newest_first=newest_first)
            seen.extend(page.items)
        assert page.total == len(self.model[role])
        assert len(seen) == len({m.id for m in seen}) == len(self.model[role])
        for m in seen:
            self.check_memory(role, m)

    @rule(role=roles)
    def export(self, role: str) -> None:
        exported = self.session(role).export()
        assert {m.id for m in exported} == set(self.model[role])
        for m in exported:
            self.check_memory(role, m)

    @rule(role=roles)
    def own_audit_trail(self, role: str) -> None:
        s = self.session(role)
        entries = s.audit()
        assert entries and all(e.persona_id == s.persona_id for e in entries)
        assert all(e.persona == self.names[role] for e in entries)

    # -- lifetimes --------------------------------------------------------------------------------
    @rule(role=roles)
    def close_session(self, role: str) -> None:
        s = self.sessions[role]
        if s is not None:
            s.close()
            self.sessions[role] = None

    @precondition(has_memories)
    @rule(role=roles, elsewhere=st.booleans())
    def checkpoint(self, role: str, elsewhere: bool) -> None:
        if elsewhere:
            with self.elsewhere(role) as s:
                s.checkpoint()
        else:
            self.session(role).checkpoint()

    @precondition(lambda self: self.has_memories() and any(self.sessions.values()))
    @rule()
    def reopen_store(self) -> None:
        for role in ROLES:
            self.close_session(role)
        self.store.close()
        self.store = Store.open(self.location)

    @invariant()
    def counts_match_the_model(self) -> None:
        for role in ROLES:
            s = self.sessions[role]
            if s is not None:
                assert s.count() == len(self.model[role])


def test_personas_never_see_each_other(store_location: str, backend_name: str) -> None:
    Store.init(store_location).close()
    IsolationMachine.location = store_location
    run_state_machine_as_test(
        IsolationMachine,
        settings=settings(
            # A server round trip per call makes PostgreSQL several times slower.
            max_examples=25 if backend_name == "sqlite" else 10,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
