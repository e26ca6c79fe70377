"""Reintegration and override: the two deliberate crossings between personas.

Real stores (the ``store`` fixture: personas work/home/side on floors office/house/studio) and
the real bundled embedder. "Changes nothing" is checked against the public API (audit chain,
personas, floors) and, on SQLite, against every raw row of every table of ``store.db``.
Expiry is reached by moving the clock (``time.time``) forward, never by sleeping.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import severance
from severance import (
    InvalidInputError,
    MemoryNotFoundError,
    PersonaNotFoundError,
    SessionClosedError,
    UnlockError,
    WrongKeyError,
)
from severance.crossings import DUPLICATE_SIMILARITY, Selection
from severance.keys import Secret, write_key_file
from severance.store import MAX_OVERRIDE_MINUTES

FLOORS = {"work": "office", "home": "house", "side": "studio"}

BUDGET = "The quarterly budget review moved to Friday afternoon."
BUDGET_NEAR = "The quarterly budget review was moved to Friday afternoon."
ACME = "The Acme contract renewal is due in March."
DEPLOY = "Deploy the billing service on Tuesdays only."
LUNCH = "Lunch with the design team on Thursday."
SISTER = "My sister is visiting next weekend."

WORK = {
    BUDGET: ("finance",),
    ACME: ("acme", "legal"),
    DEPLOY: ("ops",),
    LUNCH: ("social",),
}


# -- helpers -------------------------------------------------------------------------------------
def raw_tables(location: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a SQLite store, in a stable order."""
    with closing(sqlite3.connect(Path(location) / "store.db")) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def fingerprint(store: severance.Store, backend_name: str, location: str) -> dict[str, Any]:
    """What a refused operation must leave exactly as it was."""
    state: dict[str, Any] = {
        "audit": [(e.seq, e.event, e.hash) for e in store.audit()],
        "personas": store.personas(),
        "floors": store.floors(),
    }
    if backend_name == "sqlite":
        state["rows"] = raw_tables(location)
    return state


def memory_state(store: severance.Store, backend_name: str, location: str) -> dict[str, Any]:
    """Everything but the audit chain (a dry run records one entry, and nothing else)."""
    state = fingerprint(store, backend_name, location)
    del state["audit"]
    if "rows" in state:
        del state["rows"]["audit"]
        state["rows"]["meta"] = [r for r in state["rows"]["meta"] if r[0] != "audit_head"]
    return state


def all_memories(session: severance.Session) -> list[severance.Memory]:
    out: list[severance.Memory] = []
    offset: int | None = 0
    while offset is not None:
        page = session.memories(limit=1000, offset=offset, newest_first=False)
        out.extend(page.items)
        offset = page.next_offset
    return out


def contents(store: severance.Store, persona: str, secret: Secret | None = None) -> list[str]:
    with store.enter(floor=FLOORS.get(persona, persona), secret=secret) as s:
        return sorted(m.text for m in all_memories(s))


def cosine(store: severance.Store, a: str, b: str) -> float:
    va, vb = store.embedder.embed([a, b])
    return float(np.dot(va, vb))


def shift_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move ``time.time`` (which sessions and grants read) ``seconds`` into the future."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


@pytest.fixture
def filled(store: severance.Store) -> severance.Store:
    """work holds four memories; home one unrelated memory; side nothing."""
    with store.enter(floor="office") as s:
        for text, tags in WORK.items():
            s.remember(text, tags=tags, kind="fact", metadata={"origin": "desk"})
    with store.enter(floor="house") as s:
        s.remember(SISTER, tags=("family",))
    return store


# -- reintegration: copy and move ----------------------------------------------------------------
def test_copy_all_carries_provenance_and_leaves_the_source_unchanged(
    filled: severance.Store,
) -> None:
    with filled.enter(floor="office") as s:
        before = {m.id: m for m in all_memories(s)}
    work_id = filled.persona("work").id

    report = filled.reintegrate("work", "home")

    assert (report.source, report.into, report.mode, report.dry_run) == (
        "work",
        "home",
        "copy",
        False,
    )
    assert (report.selected, report.copied, report.merged, report.removed_from_source) == (
        4,
        4,
        0,
        0,
    )
    with filled.enter(floor="office") as s:
        assert {m.id: m for m in all_memories(s)} == before
    with filled.enter(floor="house") as s:
        home = {m.text: m for m in all_memories(s)}
    assert sorted(home) == sorted([*WORK, SISTER])
    assert home[SISTER].provenance == ()
    by_text = {m.text: m for m in before.values()}
    for text, tags in WORK.items():
        copy = home[text]
        assert copy.id not in before  # a new memory of home, not the source row
        assert copy.tags == tags
        assert (copy.kind, copy.metadata) == ("fact", {"origin": "desk"})
        assert copy.occurred_at == by_text[text].occurred_at
        (origin,) = copy.provenance
        assert origin["persona"] == "work"
        assert origin["persona_id"] == work_id
        assert origin["memory_id"] == by_text[text].id
        assert origin["mode"] == "copy"
        assert origin["at"]


def test_move_all_empties_the_source(filled: severance.Store) -> None:
    with filled.enter(floor="office") as s:
        ids = {m.text: m.id for m in all_memories(s)}

    report = filled.reintegrate("work", "home", mode="move")

    assert (report.selected, report.copied, report.removed_from_source) == (4, 4, 4)
    with filled.enter(floor="office") as s:
        assert s.count() == 0
        for memory_id in ids.values():
            with pytest.raises(MemoryNotFoundError):
                s.get(memory_id)
    with filled.enter(floor="house") as s:
        home = {m.text: m for m in all_memories(s)}
    assert sorted(home) == sorted([*WORK, SISTER])
    for text, memory_id in ids.items():
        (origin,) = home[text].provenance
        assert (origin["memory_id"], origin["mode"]) == (memory_id, "move")
    assert contents(filled, "side") == []


def test_provenance_accumulates_over_successive_crossings(filled: severance.Store) -> None:
    filled.reintegrate("work", "home", select=Selection(tags=("ops",)), mode="move")
    filled.reintegrate("home", "side", select=Selection(tags=("ops",)))
    with filled.enter(floor="studio") as s:
        (memory,) = all_memories(s)
    assert memory.text == DEPLOY
    assert [(o["persona"], o["mode"]) for o in memory.provenance] == [
        ("work", "move"),
        ("home", "copy"),
    ]
    assert memory.to_dict()["provenance"] == list(memory.provenance)


def test_query_selection_crosses_only_the_best_match(filled: severance.Store) -> None:
    report = filled.reintegrate(
        "work", "home", select=Selection(query="when is the budget review?", limit=1)
    )
    assert report.selected == 1
    assert [m.text for m in report.memories] == [BUDGET]
    assert contents(filled, "home") == sorted([BUDGET, SISTER])
    assert contents(filled, "work") == sorted(WORK)


def test_query_selection_with_move_removes_only_the_selected(filled: severance.Store) -> None:
    filled.reintegrate(
        "work", "side", select=Selection(query="Acme contract renewal", limit=1), mode="move"
    )
    assert contents(filled, "side") == [ACME]
    assert contents(filled, "work") == sorted(set(WORK) - {ACME})


def test_tag_selection_crosses_only_tagged_memories(filled: severance.Store) -> None:
    report = filled.reintegrate("work", "home", select=Selection(tags=("acme",)))
    assert [m.text for m in report.memories] == [ACME]
    assert contents(filled, "home") == sorted([ACME, SISTER])

    report = filled.reintegrate("work", "side", select=Selection(tags=("ops",)), mode="move")
    assert (report.selected, report.removed_from_source) == (1, 1)
    assert contents(filled, "side") == [DEPLOY]
    assert contents(filled, "work") == sorted(set(WORK) - {DEPLOY})


def test_a_selection_that_matches_nothing_changes_nothing(
    filled: severance.Store, backend_name: str, store_location: str
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    report = filled.reintegrate("work", "home", select=Selection(tags=("no-such-tag",)))
    assert (report.selected, report.copied, report.merged) == (0, 0, 0)
    assert fingerprint(filled, backend_name, store_location) == before


# -- de-duplication ------------------------------------------------------------------------------
def test_an_exact_duplicate_is_merged_not_copied(filled: severance.Store) -> None:
    with filled.enter(floor="house") as s:
        existing = s.remember(BUDGET, tags=("calendar",))

    report = filled.reintegrate("work", "home", select=Selection(tags=("finance",)))

    assert (report.selected, report.copied, report.merged) == (1, 0, 1)
    with filled.enter(floor="house") as s:
        assert sorted(m.text for m in all_memories(s)) == sorted([BUDGET, SISTER])
        merged = s.get(existing.id)
        history = s.history(existing.id)
    assert merged.text == BUDGET
    assert merged.tags == ("calendar", "finance")
    assert merged.version == 2
    (origin,) = merged.provenance
    assert (origin["persona"], origin["mode"]) == ("work", "copy")
    assert [v.version for v in history] == [1, 2]
    assert history[0].tags == ("calendar",)
    assert history[0].provenance == ()


def test_a_near_duplicate_is_kept_apart_and_reported(filled: severance.Store) -> None:
    assert cosine(filled, BUDGET, BUDGET_NEAR) >= DUPLICATE_SIMILARITY  # the premise
    with filled.enter(floor="house") as s:
        existing = s.remember(BUDGET_NEAR)

    report = filled.reintegrate("work", "home", mode="move")

    assert (report.selected, report.copied, report.merged) == (4, 4, 0)
    (similar,) = report.similar
    assert (similar.similar_to, similar.in_target, similar.merged) == (existing.id, True, False)
    assert similar.similarity >= DUPLICATE_SIMILARITY
    with filled.enter(floor="house") as s:
        texts = sorted(m.text for m in all_memories(s))
        kept = s.get(existing.id)
    assert texts == sorted([BUDGET, BUDGET_NEAR, ACME, DEPLOY, LUNCH, SISTER])
    assert kept.version == 1 and kept.provenance == ()
    assert contents(filled, "work") == []


def test_merge_similar_opts_into_merging_a_near_duplicate(filled: severance.Store) -> None:
    with filled.enter(floor="house") as s:
        existing = s.remember(BUDGET_NEAR)

    report = filled.reintegrate("work", "home", mode="move", merge_similar=True)

    assert (report.selected, report.copied, report.merged) == (4, 3, 1)
    assert [s.merged for s in report.similar] == [True]
    with filled.enter(floor="house") as s:
        texts = sorted(m.text for m in all_memories(s))
        kept = s.get(existing.id)
    assert BUDGET not in texts  # merged into the near duplicate, which keeps its own text
    assert kept.text == BUDGET_NEAR
    assert kept.tags == ("finance",)
    (origin,) = kept.provenance
    # What the merged memory said, and its kind and metadata, survive in the provenance.
    assert (origin["mode"], origin["text"], origin["kind"]) == ("move", BUDGET, "fact")
    assert origin["metadata"] == {"origin": "desk"}


def test_a_move_keeps_a_similar_memory_a_memory(store: severance.Store) -> None:
    thursday = "The quarterly budget review moved to Thursday afternoon."
    assert cosine(store, BUDGET, thursday) >= DUPLICATE_SIMILARITY  # the premise
    with store.enter(floor="house") as s:
        s.remember(BUDGET)
    with store.enter(floor="office") as s:
        moved = s.remember(thursday, kind="event", metadata={"room": "4b"})
    report = store.reintegrate("work", "home", mode="move")
    assert (report.copied, report.merged, report.removed_from_source) == (1, 0, 1)
    with store.enter(floor="house") as s:
        (hit,) = [r.memory for r in s.recall(thursday, k=1)]
    # Recalling it returns it — its own text, kind, metadata and time — not the other one.
    assert (hit.text, hit.kind, hit.metadata) == (thursday, "event", {"room": "4b"})
    assert hit.occurred_at == moved.occurred_at


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Invoice 4411 is paid", "Invoice 4412 is paid"),
        ("Dentist on Thursday at 3pm", "Dentist on Friday at 3pm"),
        (
            "The quarterly budget review moved to Friday afternoon.",
            "The quarterly budget review moved to Thursday afternoon.",
        ),
        ("Call Ana back", "Don't call Ana back"),
    ],
)
@pytest.mark.parametrize("mode", ["copy", "move"])
def test_distinct_facts_never_merge(
    store: severance.Store, first: str, second: str, mode: str
) -> None:
    with store.enter(floor="house") as s:
        s.remember(first)
    with store.enter(floor="office") as s:
        s.remember(second)
        s.remember(first.upper())  # the same text in another case: *this* one merges
    report = store.reintegrate("work", "home", mode=mode)  # type: ignore[arg-type]
    assert (report.copied, report.merged) == (1, 1)
    assert contents(store, "home") == sorted([first, second])


def test_300_number_only_variants_merge_with_nothing(store: severance.Store) -> None:
    """The issue's measurement: 300 memories that differ only by a number, moved into a
    persona holding 300 other numbers of the same sentences: 0 merged (44 were, before)."""
    rng = random.Random(11)
    templates = ["Invoice {} is paid", "Dentist appointment {} confirmed", "Gate code is {}"]
    numbers = rng.sample(range(100, 999), 200)
    texts = [t.format(n) for t in templates for n in numbers[:100]]
    others = [t.format(n) for t in templates for n in numbers[100:]]
    with store.enter(floor="house") as s:
        s.remember_many(others)
    with store.enter(floor="office") as s:
        s.remember_many(texts)
    report = store.reintegrate("work", "home", mode="move")
    assert (report.selected, report.copied, report.merged) == (300, 300, 0)
    assert report.similar  # the premise: many of them are near-duplicates by vector
    assert contents(store, "home") == sorted(texts + others)


def test_numbers_are_never_merged_away(store: severance.Store) -> None:
    """300 memories that differ only by a number: every one crosses as itself."""
    rng = random.Random(9)
    templates = [
        "Invoice {} is paid",
        "Room {} is booked for the offsite",
        "Flight {} leaves from gate 12",
        "Order {} shipped today",
        "Ticket {} was closed",
        "Locker {} code changed",
    ]
    numbers = rng.sample(range(1000, 9999), 50)
    texts = [t.format(n) for t in templates for n in numbers]
    assert len(set(texts)) == 300
    with store.enter(floor="house") as s:
        s.remember_many(texts[::2])  # half already in the target, merged only with themselves
    with store.enter(floor="office") as s:
        s.remember_many(texts)
    report = store.reintegrate("work", "home", mode="move")
    assert (report.selected, report.copied, report.merged) == (300, 150, 150)
    assert all(not s.merged for s in report.similar)
    assert contents(store, "home") == sorted(texts)
    with store.enter(floor="house") as s:
        merged = [m for m in all_memories(s) if m.version == 2]
    # Each merge landed on the memory with exactly its text.
    assert len(merged) == 150 and {m.text for m in merged} == set(texts[::2])
    assert all("text" not in o for m in merged for o in m.provenance)


def test_a_related_memory_below_the_threshold_is_copied(filled: severance.Store) -> None:
    related = "The quarterly sales review is on Monday morning."
    assert cosine(filled, BUDGET, related) < DUPLICATE_SIMILARITY  # the premise
    with filled.enter(floor="house") as s:
        s.remember(related)
    report = filled.reintegrate("work", "home", select=Selection(tags=("finance",)))
    assert (report.copied, report.merged) == (1, 0)
    assert contents(filled, "home") == sorted([BUDGET, related, SISTER])


@pytest.mark.parametrize("mode", ["copy", "move"])
def test_duplicates_within_the_selection_cross_once(store: severance.Store, mode: str) -> None:
    with store.enter(floor="office") as s:
        first = s.remember(BUDGET, tags=("finance",))
        again = s.remember(BUDGET, tags=("calendar",))
        near = s.remember(BUDGET_NEAR, tags=("review",))
        other = s.remember(ACME)

    report = store.reintegrate("work", "home", mode=mode)  # type: ignore[arg-type]

    assert (report.selected, report.copied, report.merged) == (4, 3, 1)
    assert [(x.memory_id, x.in_target, x.merged) for x in report.similar] == [
        (near.id, False, False)
    ]
    with store.enter(floor="house") as s:
        home = all_memories(s)
    assert sorted(m.text for m in home) == sorted([BUDGET, BUDGET_NEAR, ACME])
    (budget,) = [m for m in home if m.text == BUDGET]
    # Every selected twin is traceable from the one copy; none of their tags is lost.
    assert {o["memory_id"] for o in budget.provenance} == {first.id, again.id}
    assert set(budget.tags) == {"finance", "calendar"}
    (acme,) = [m for m in home if m.text == ACME]
    assert [o["memory_id"] for o in acme.provenance] == [other.id]
    expected_source = [] if mode == "move" else sorted([BUDGET, BUDGET, BUDGET_NEAR, ACME])
    assert contents(store, "work") == expected_source


def test_a_move_merges_only_when_kind_and_metadata_agree(store: severance.Store) -> None:
    with store.enter(floor="house") as s:
        s.remember(BUDGET, kind="fact", metadata={"room": "1"})
    with store.enter(floor="office") as s:
        s.remember(BUDGET, kind="fact", metadata={"room": "2"})
        s.remember(BUDGET, kind="event", metadata={"room": "1"})
        # A tag of its own, or remembering it would return the room-2 memory (same text,
        # kind and tags: a duplicate); a move merges it all the same, uniting the tags.
        s.remember(BUDGET, kind="fact", metadata={"room": "1"}, tags=["q3"])
    report = store.reintegrate("work", "home", mode="move")
    assert (report.copied, report.merged) == (2, 1)
    with store.enter(floor="house") as s:
        kinds = sorted((m.kind, m.metadata["room"]) for m in all_memories(s))
    assert kinds == [("event", "1"), ("fact", "1"), ("fact", "2")]


# -- dry run -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["copy", "move"])
def test_a_dry_run_lists_the_memories_and_changes_nothing(
    filled: severance.Store, backend_name: str, store_location: str, mode: str
) -> None:
    with filled.enter(floor="house") as s:
        # so the plan includes a merge (a move needs kind and metadata to agree too)
        s.remember(BUDGET, kind="fact", metadata={"origin": "desk"})
    before = memory_state(filled, backend_name, store_location)
    audit_length = len(filled.audit())

    report = filled.reintegrate("work", "home", mode=mode, dry_run=True)  # type: ignore[arg-type]

    assert report.dry_run
    assert sorted(m.text for m in report.memories) == sorted(WORK)
    assert (report.selected, report.copied, report.merged) == (4, 3, 1)
    assert report.removed_from_source == (4 if mode == "move" else 0)
    # The selection was decrypted for review: one audit entry records it, without content.
    entries = filled.audit()
    assert len(entries) == audit_length + 1
    assert entries[-1].event == "reintegration_previewed"
    assert entries[-1].detail["selected"] == 4 and BUDGET not in repr(entries[-1].detail)
    assert filled.verify_audit().ok
    assert memory_state(filled, backend_name, store_location) == before
    assert "memories" in report.to_dict(with_memories=True)


def test_a_dry_run_with_a_query_changes_nothing(
    filled: severance.Store, backend_name: str, store_location: str
) -> None:
    before = memory_state(filled, backend_name, store_location)
    report = filled.reintegrate(
        "work", "home", select=Selection(query="billing deploys", limit=2), dry_run=True
    )
    assert DEPLOY in [m.text for m in report.memories]
    assert memory_state(filled, backend_name, store_location) == before


# -- refusals ------------------------------------------------------------------------------------
@pytest.fixture
def sealed(filled: severance.Store, tmp_path: Path) -> dict[str, Secret]:
    """side sealed with a key file and holding one memory; a wrong key file beside it."""
    secret = Secret(key_file=tmp_path / "side.key")
    with filled.enter(floor="studio") as s:
        s.remember("Sketch the logo for the bakery.")
    filled.seal_persona("side", secret)
    write_key_file(tmp_path / "wrong.key", os.urandom(32))  # a valid key file, the wrong key
    return {"right": secret, "wrong": Secret(key_file=tmp_path / "wrong.key")}


@pytest.mark.parametrize("mode", ["copy", "move"])
@pytest.mark.parametrize(
    ("source", "into", "secrets", "error"),
    [
        ("side", "work", {}, UnlockError),
        ("side", "work", {"source_secret": "wrong"}, WrongKeyError),
        ("work", "side", {}, UnlockError),
        ("work", "side", {"into_secret": "wrong"}, WrongKeyError),
        ("work", "side", {"source_secret": "right"}, UnlockError),  # the secret of the wrong end
        ("work", "work", {}, InvalidInputError),
        ("side", "side", {"source_secret": "right", "into_secret": "right"}, InvalidInputError),
        ("nobody", "home", {}, PersonaNotFoundError),
        ("work", "nobody", {}, PersonaNotFoundError),
    ],
)
def test_a_refused_reintegration_changes_nothing(
    filled: severance.Store,
    sealed: dict[str, Secret],
    backend_name: str,
    store_location: str,
    mode: str,
    source: str,
    into: str,
    secrets: dict[str, str],
    error: type[Exception],
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    kwargs = {name: sealed[which] for name, which in secrets.items()}
    with pytest.raises(error):
        filled.reintegrate(source, into, mode=mode, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error):
        filled.reintegrate(source, into, mode=mode, dry_run=True, **kwargs)  # type: ignore[arg-type]
    assert fingerprint(filled, backend_name, store_location) == before


@pytest.mark.parametrize("mode", ["swap", "", None])
def test_an_unknown_mode_is_refused(
    filled: severance.Store, backend_name: str, store_location: str, mode: Any
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    with pytest.raises(InvalidInputError):
        filled.reintegrate("work", "home", mode=mode)
    assert fingerprint(filled, backend_name, store_location) == before


def test_sealed_personas_cross_with_their_secrets(
    filled: severance.Store, sealed: dict[str, Secret]
) -> None:
    filled.reintegrate("work", "side", into_secret=sealed["right"], mode="move")
    assert contents(filled, "work") == []
    report = filled.reintegrate(
        "side", "home", source_secret=sealed["right"], select=Selection(tags=("acme",))
    )
    assert [m.text for m in report.memories] == [ACME]
    assert contents(filled, "home") == sorted([ACME, SISTER])
    assert contents(filled, "side", sealed["right"]) == sorted(
        [*WORK, "Sketch the logo for the bakery."]
    )


# -- notices and audit ---------------------------------------------------------------------------
def test_both_personas_are_told_at_their_next_normal_wake(filled: severance.Store) -> None:
    filled.reintegrate("work", "home", select=Selection(tags=("acme",)), mode="move")

    with filled.enter(floor="house") as s:
        (notice,) = s.notices()
    assert notice.event == "reintegrated_from"
    # A persona's own view never names the other side (see audit.persona_view); the owner's
    # store-wide log does.
    assert "source" not in notice.detail
    assert any(e.detail.get("source") == "work" for e in filled.audit("home"))
    assert (notice.detail["mode"], notice.detail["selected"], notice.detail["copied"]) == (
        "move",
        1,
        1,
    )
    with filled.enter(floor="office") as s:
        (notice,) = s.notices()
    assert notice.event == "reintegrated_into"
    assert "into" not in notice.detail

    # Told once: the wake after that has nothing new; a bystander was never told.
    for floor in ("house", "office", "studio"):
        with filled.enter(floor=floor) as s:
            assert s.notices() == []


def test_reintegration_is_audited_without_memory_content(filled: severance.Store) -> None:
    filled.reintegrate("work", "home", select=Selection(query="Acme contract renewal", limit=3))
    entries = filled.audit()
    events = [e.event for e in entries]
    assert "reintegrated_into" in events and "reintegrated_from" in events
    for entry in entries:
        text = repr(entry.detail)
        for needle in [*WORK, SISTER, "Acme contract renewal", "desk"]:
            assert needle not in text
    assert filled.verify_audit().ok


# -- kill -9 during a large move -----------------------------------------------------------------
N_LARGE = 1_500
KILLS = 3
CHILD = textwrap.dedent(
    """
    import sys
    import severance

    store = severance.Store.open(sys.argv[1])
    store.embedder  # load the model before telling the parent we are ready
    print("ready", flush=True)
    store.reintegrate(sys.argv[2], sys.argv[3], mode="move")
    print("done", flush=True)
    """
)


def distinct_texts(n: int) -> list[str]:
    """Short made-up texts, far enough apart that none is merged as a duplicate."""
    rng = random.Random(3)
    syllables = [a + b for a in "kmnrstvz" for b in "aeiou"][:20]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(3))

    return [f"{word()} {word()} {word()} {word()}" for _ in range(n)]


def wal_size(location: str) -> int:
    wal = Path(location) / "store.db-wal"
    return wal.stat().st_size if wal.exists() else 0


def run_mover(
    location: str, source: str, into: str, kill_after: float | None, from_first_write: bool
) -> float:
    """Run a move in a child process and kill -9 it ``kill_after`` seconds after it is ready
    (or, with ``from_first_write``, after its write transaction starts filling the SQLite
    WAL); with ``kill_after=None`` let it finish. Returns the seconds from ready to done."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, location, source, into],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() or line
        started = time.monotonic()
        if kill_after is None:
            line = proc.stdout.readline()
            took = time.monotonic() - started
            err = proc.stderr.read()
            assert proc.wait(timeout=300) == 0 and line.strip() == "done", err
            return took
        if from_first_write:
            base = wal_size(location)
            while wal_size(location) == base and proc.poll() is None:
                time.sleep(0.001)
        time.sleep(kill_after)
        proc.kill()  # SIGKILL: no cleanup, no atexit, no rollback by Python
        proc.communicate(timeout=60)
        return time.monotonic() - started


def check_all_in_exactly_one(location: str, backend_name: str, expected: set[str]) -> str:
    """Every memory in work or home, never both, never neither; returns the holder."""
    if backend_name == "sqlite":
        with closing(sqlite3.connect(Path(location) / "store.db")) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with severance.Store.open(location) as store:
        held = {}
        for persona in ("work", "home"):
            with store.enter(floor=FLOORS[persona]) as s:
                held[persona] = [m.text for m in all_memories(s)]
        assert store.verify_audit().ok
    work, home = set(held["work"]), set(held["home"])
    assert len(work) == len(held["work"]) and len(home) == len(held["home"])  # none twice
    assert not work & home  # never both
    assert work | home == expected  # never neither
    # A move is one transaction: it happened entirely or not at all.
    assert expected in (work, home)
    return "work" if work == expected else "home"


@pytest.mark.slow
def test_kill_9_during_a_large_move_leaves_every_memory_in_exactly_one_persona(
    store: severance.Store, store_location: str, backend_name: str
) -> None:
    texts = distinct_texts(N_LARGE)
    with store.enter(floor="office") as s:
        s.remember_many(texts)
    plan = store.reintegrate("work", "home", mode="move", dry_run=True)
    assert (plan.selected, plan.copied) == (N_LARGE, N_LARGE)  # no duplicates: ids are texts
    store.close()
    expected = set(texts)

    # One uninterrupted move tells how long a move takes on this machine.
    duration = run_mover(store_location, "work", "home", None, from_first_write=False)
    holder = check_all_in_exactly_one(store_location, backend_name, expected)
    assert holder == "home"

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for attempt in range(KILLS):
        other = "work" if holder == "home" else "home"
        # Kills 0 and 2 (on SQLite) land at a random moment once the write transaction has
        # begun filling the WAL, since the write is only the last ~15% of a move; kill 1 (and
        # every kill on other back-ends) anywhere in the move.
        in_write = attempt % 2 == 0 and backend_name == "sqlite"
        delay = rng.uniform(0, 0.3) if in_write else rng.uniform(0.1, 1.05) * duration
        run_mover(store_location, holder, other, delay, from_first_write=in_write)
        try:
            holder = check_all_in_exactly_one(store_location, backend_name, expected)
        except AssertionError as e:
            when = "after the first write" if in_write else "after ready"
            raise AssertionError(f"seed {seed}, kill {attempt} {delay:.3f}s {when}: {e}") from e

    # The store still works: finish one more move to the other persona.
    other = "work" if holder == "home" else "home"
    run_mover(store_location, holder, other, None, from_first_write=False)
    assert check_all_in_exactly_one(store_location, backend_name, expected) == other


# -- override ------------------------------------------------------------------------------------
def test_an_override_wakes_the_persona_outside_its_floor(filled: severance.Store) -> None:
    before = time.time()
    with filled.override("work", reason="on-call incident", minutes=30) as s:
        assert (s.persona, s.floor) == ("work", None)
        assert s.expires_at is not None
        assert before + 30 * 60 <= s.expires_at.timestamp() <= time.time() + 30 * 60
        assert [r.memory.text for r in s.recall("Acme contract", 1)] == [ACME]
        s.remember("Incident 4411 resolved by rolling back.")
        assert s.notices() == []
    assert "Incident 4411 resolved by rolling back." in contents(filled, "work")


def test_the_longest_override_is_allowed(filled: severance.Store) -> None:
    with filled.override("work", reason="audit week", minutes=MAX_OVERRIDE_MINUTES) as s:
        assert s.count() == 4


@pytest.mark.parametrize(
    ("reason", "minutes"),
    [
        (None, 30),
        ("", 30),
        ("   \t\n", 30),
        ("x" * 501, 30),
        (42, 30),
        ("on call", 0),
        ("on call", -5),
        ("on call", MAX_OVERRIDE_MINUTES + 1),
        ("on call", 30.0),
        ("on call", "30"),
        ("on call", True),
        ("on call", None),
    ],
)
def test_an_override_without_a_proper_reason_or_limit_is_refused(
    filled: severance.Store,
    backend_name: str,
    store_location: str,
    reason: Any,
    minutes: Any,
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    with pytest.raises(InvalidInputError):
        filled.override("work", reason=reason, minutes=minutes)
    assert fingerprint(filled, backend_name, store_location) == before
    with pytest.raises(SessionClosedError):
        filled.resume_override("work")


def test_an_override_needs_a_reason_argument(filled: severance.Store) -> None:
    with pytest.raises(TypeError):
        filled.override("work", minutes=30)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("persona", "secret", "error"),
    [
        ("side", None, UnlockError),
        ("side", "wrong", WrongKeyError),
        ("nobody", None, PersonaNotFoundError),
    ],
)
def test_an_override_without_the_personas_unlock_is_refused(
    filled: severance.Store,
    sealed: dict[str, Secret],
    backend_name: str,
    store_location: str,
    persona: str,
    secret: str | None,
    error: type[Exception],
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    with pytest.raises(error):
        filled.override(
            persona, reason="urgent", minutes=10, secret=sealed[secret] if secret else None
        )
    assert fingerprint(filled, backend_name, store_location) == before


def test_a_sealed_persona_can_be_overridden_with_its_secret(
    filled: severance.Store, sealed: dict[str, Secret]
) -> None:
    with filled.override("side", reason="client call", minutes=5, secret=sealed["right"]) as s:
        assert s.count() == 1
    with pytest.raises(UnlockError):
        filled.resume_override("side")
    with filled.resume_override("side", secret=sealed["right"]) as s:
        assert s.count() == 1


def session_calls(s: severance.Session, memory_id: str) -> dict[str, Callable[[], object]]:
    return {
        "remember": lambda: s.remember("after hours"),
        "remember_many": lambda: s.remember_many(["after hours"]),
        "recall": lambda: s.recall("budget"),
        "get": lambda: s.get(memory_id),
        "update": lambda: s.update(memory_id, "changed"),
        "forget": lambda: s.forget(memory_id),
        "history": lambda: s.history(memory_id),
        "memories": lambda: s.memories(),
        "count": lambda: s.count(),
        "export": lambda: s.export(),
        "audit": lambda: s.audit(),
        "notices": lambda: s.notices(),
        "checkpoint": lambda: s.checkpoint(),
    }


def test_an_expired_override_refuses_every_call(
    filled: severance.Store,
    monkeypatch: pytest.MonkeyPatch,
    backend_name: str,
    store_location: str,
) -> None:
    session = filled.override("work", reason="release night", minutes=1)
    memory_id = session.memories(limit=1).items[0].id

    with monkeypatch.context() as m:
        shift_clock(m, 30)  # half way: still running
        assert session.count() == 4
        filled.resume_override("work").close()

    shift_clock(monkeypatch, 61)
    before = fingerprint(filled, backend_name, store_location)
    for call in session_calls(session, memory_id).values():
        with pytest.raises(SessionClosedError):
            call()
    with pytest.raises(SessionClosedError):
        filled.resume_override("work")
    assert fingerprint(filled, backend_name, store_location) == before
    session.close()
    # A normal wake is unaffected and still finds the memory untouched.
    with filled.enter(floor="office") as s:
        assert s.get(memory_id).version == 1


def test_an_override_granted_elsewhere_is_resumed_until_it_expires(
    filled: severance.Store, store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SessionClosedError):
        filled.resume_override("work")  # nothing granted yet
    filled.override("work", reason="pager duty", minutes=MAX_OVERRIDE_MINUTES).close()

    with severance.Store.open(store_location) as other:  # e.g. the next CLI command
        with other.resume_override("work") as s:
            assert s.persona == "work" and s.expires_at is not None
            assert s.count() == 4
        with pytest.raises(SessionClosedError):
            other.resume_override("home")  # granted for work only
        shift_clock(monkeypatch, MAX_OVERRIDE_MINUTES * 60 + 1)
        with pytest.raises(SessionClosedError):
            other.resume_override("work")


def test_an_override_is_shown_at_the_next_normal_wake(filled: severance.Store) -> None:
    with filled.override("work", reason="quarter close", minutes=45) as s:
        s.recall("budget")
    with filled.enter(floor="house") as s:
        assert s.notices() == []  # another persona is not told
    with filled.enter(floor="office") as s:
        (notice,) = s.notices()
    assert notice.event == "override"
    assert (notice.detail["reason"], notice.detail["minutes"]) == ("quarter close", 45)
    assert "expires_at" in notice.detail
    with filled.enter(floor="office") as s:
        assert s.notices() == []


def test_an_override_is_in_the_audit_chain_without_memory_content(
    filled: severance.Store,
) -> None:
    canary = "canary-override-7f3a: the launch code is 0000"
    with filled.override("work", reason="incident 12", minutes=15) as s:
        s.remember(canary)
        s.recall(canary)
    entries = filled.audit("work")
    (grant,) = [e for e in entries if e.event == "override"]
    assert grant.persona == "work"
    assert (grant.detail["reason"], grant.detail["minutes"]) == ("incident 12", 15)
    enter = next(e for e in entries if e.event == "enter" and e.detail.get("override"))
    assert enter.seq > grant.seq
    for entry in filled.audit():
        assert "canary" not in repr(entry.to_dict())
    assert all(e.persona_id == filled.persona("work").id for e in entries)
    assert filled.verify_audit().ok
