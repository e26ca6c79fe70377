"""The marks an index keeps of what it has seen of the rows, against other processes and a
hostile database (found by the fifth session's hostile review).

- A sync reads a persona's changes and its tombstones as one snapshot of the database: a
  memory written and another forgotten by another process between two reads must not move
  the mark past the memory it missed.
- An index found up to date with the store (other personas' writes included) does not write
  the store's high water as its snapshot's watermark: the anchor would then take the persona's
  tombstones as compacted away, and a row deleted behind the store's back would go unreported.
- A row's ``seq`` is not authenticated: one set far ahead by raw SQL must not make the index
  blind to every later write.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import severance
from severance.backends import sqlite_connection

REPO = Path(__file__).resolve().parent.parent


def in_another_process(location: str, code: str) -> str:
    """Run ``code`` (with ``store`` open at ``location``) in a fresh process; its output."""
    program = f"import severance\nwith severance.Store.open({location!r}) as store:\n"
    program += textwrap.indent(textwrap.dedent(code), "    ")
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


KETTLE = 'with store.enter(floor="office") as t: t.remember("The kettle is in the kitchen")'


def two_personas(location: str) -> severance.Store:
    store = severance.Store.init(location)
    for persona, floor in (("work", "office"), ("home", "house")):
        store.add_persona(persona)
        store.add_floor(floor, persona=persona)
    return store


def test_a_write_and_a_forget_landing_inside_a_sync_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = str(tmp_path / "store")
    store = two_personas(location)
    session = store.enter(floor="office")
    printer = session.remember("The printer is on floor 2")
    session.remember("Lunch is at noon")
    session.recall("printer", k=3)  # the index is loaded
    in_another_process(location, KETTLE)
    landed: dict[str, str] = {}
    real_query = sqlite_connection.SQLiteConnection.query

    def query(self: Any, sql: str, params: Any = ()) -> list[Any]:
        found = real_query(self, sql, params)
        if not landed and "FROM memories WHERE persona_id = ? AND seq > ?" in sql:
            # Right after the sync's read of the persona's changes: another process writes a
            # memory, then forgets an older one.
            landed["zebra"] = in_another_process(
                location,
                f"""
                with store.enter(floor="office") as t:
                    print(t.remember("The zebra named Quagga lives at the zoo").id)
                    t.forget({printer.id!r})
                """,
            )
        return found

    monkeypatch.setattr(sqlite_connection.SQLiteConnection, "query", query)
    session.recall("kettle", k=3)  # behind: the sync runs, and the writes land inside it
    monkeypatch.undo()
    assert landed
    zebra = landed["zebra"]
    assert zebra in [r.memory.id for r in session.recall("zebra Quagga zoo", k=5)]
    assert printer.id not in [r.memory.id for r in session.recall("printer floor", k=5)]
    session.checkpoint()  # the snapshot must not record the loss for later processes
    session.close()
    store.close()
    later = in_another_process(
        location,
        """
        with store.enter(floor="office") as t:
            print([r.memory.text for r in t.recall("zebra Quagga zoo", k=5)])
        """,
    )
    assert "The zebra named Quagga lives at the zoo" in later


def delete_behind_the_stores_back(location: str, victim: str) -> None:
    """Delete ``victim``'s row with raw SQL (no tombstone)."""
    if location.startswith("postgresql"):
        import psycopg

        parts = urlsplit(location)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "store"]
        with psycopg.connect(urlunsplit(parts._replace(query=urlencode(query)))) as conn:
            done = conn.execute("DELETE FROM severance.memories WHERE memory_id = %s", (victim,))
            assert done.rowcount == 1
        return
    with sqlite3.connect(Path(location) / "store.db") as db:
        assert db.execute("DELETE FROM memories WHERE id = ?", (victim,)).rowcount == 1


def test_a_snapshot_after_other_personas_wrote_still_lets_a_deleted_row_be_reported(
    store_location: str,
) -> None:
    store = two_personas(store_location)
    with store.enter(floor="office") as s:
        s.remember_many([f"work memo {i} about the quarterly plan" for i in range(300)])
    store.close()
    server = severance.Store.open(store_location)  # a long-lived server
    work = server.enter(floor="office")
    # Woken from the rows: 300 changes not yet in a snapshot. The victim is one of this
    # store's memories (the PostgreSQL database is shared with other tests' stores).
    victim = work.recall("plan", k=1)[0].memory.id
    other = severance.Store.open(store_location)  # a CLI beside it
    with other.enter(floor="house") as home:
        home.remember("home note")
    work.recall("plan")  # behind the store, nothing of its own changed
    work.close()  # the snapshot is due and written now
    try:
        delete_behind_the_stores_back(store_location, victim)
        reported = in_another_process(
            store_location, "print([p.record_id for p in store.rollback_problems])"
        )
        assert victim in reported
    finally:
        other.close()
        server.close()


def test_an_index_woken_from_the_rows_after_others_wrote_still_lets_a_deleted_row_be_reported(
    store_location: str,
) -> None:
    """As above, but the other persona writes *before* the index wakes (from the rows, with
    no snapshot): its mark is then this persona's last change, not the store's high water."""
    store = two_personas(store_location)
    with store.enter(floor="office") as s:
        s.remember_many([f"work memo {i} about the quarterly plan" for i in range(300)])
    store.close()
    server = severance.Store.open(store_location)  # a long-lived server
    other = severance.Store.open(store_location)  # a CLI beside it
    with other.enter(floor="house") as home:
        home.remember("home note")
    work = server.enter(floor="office")
    victim = work.recall("plan", k=1)[0].memory.id  # woken from the rows now
    work.close()  # the snapshot is due and written now
    try:
        delete_behind_the_stores_back(store_location, victim)
        reported = in_another_process(
            store_location, "print([p.record_id for p in store.rollback_problems])"
        )
        assert victim in reported
    finally:
        other.close()
        server.close()


def test_a_seq_set_far_ahead_in_the_database_does_not_blind_the_index(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    store = two_personas(location)
    session = store.enter(floor="office")
    victim = session.remember("The printer is on floor 2")
    session.recall("printer")
    with sqlite3.connect(Path(location) / "store.db") as db:
        db.execute("UPDATE memories SET seq = 1000000000000 WHERE id = ?", (victim.id,))
    in_another_process(location, KETTLE)
    assert session.recall("kettle", k=1)[0].memory.text == "The kettle is in the kitchen"
    zebra = in_another_process(
        location,
        """
        with store.enter(floor="office") as t:
            print(t.remember("The zebra named Quagga lives at the zoo").id)
        """,
    )
    assert zebra in [r.memory.id for r in session.recall("zebra Quagga", k=3)]
    session.checkpoint()
    session.close()
    store.close()
    later = in_another_process(
        location,
        """
        with store.enter(floor="office") as t:
            print([r.memory.text for r in t.recall("zebra Quagga", k=3)])
        """,
    )
    assert "The zebra named Quagga lives at the zoo" in later


# -- tombstones compacted by another process's snapshot ----------------------------------------
FORGET_AND_CHECKPOINT = """
with store.enter(floor="office") as t:
    t.forget({memory_id!r})
    t.checkpoint()  # its watermark covers the forget: the tombstone is dropped
"""


def test_a_forget_whose_tombstone_another_process_compacted_leaves_no_ghost(
    store_location: str,
) -> None:
    """Another process forgets a memory and checkpoints, which drops the tombstone: an index
    that had not seen the forget yet still learns of it (it is not kept as a ghost that only
    a recall hitting it would notice)."""
    store = two_personas(store_location)
    session = store.enter(floor="office")
    made = session.remember_many([f"Note {i} about the garden shed" for i in range(3)])
    session.recall("garden")  # loaded
    in_another_process(store_location, FORGET_AND_CHECKPOINT.format(memory_id=made[1].id))
    assert session.memories(kind="note").total == 2  # a read that syncs the index
    index = session.search_index
    assert index is not None and sorted(index.slot_of) == sorted([made[0].id, made[2].id])
    session.close()
    store.close()


def test_a_re_embedding_racing_a_forget_and_a_checkpoint_elsewhere_succeeds(
    store_location: str,
) -> None:
    """Re-embedding embeds outside the writer lock, then under it looks for what changed
    meanwhile: a memory forgotten by another process whose tombstone a checkpoint already
    dropped is not taken for a conflict ("memories changed during re-embedding")."""
    store = two_personas(store_location)
    with store.enter(floor="office") as s:
        made = s.remember_many([f"Note {i} about the garden shed" for i in range(3)])
    raced: list[int] = []

    def progress(done: int, total: int) -> None:
        if not raced:  # between the re-embedding and its writing transaction
            raced.append(done)
            in_another_process(store_location, FORGET_AND_CHECKPOINT.format(memory_id=made[0].id))

    assert store.reembed("work", progress=progress) == 2
    assert raced
    with store.enter(floor="office") as s:
        assert sorted(m.id for m in s.export()) == sorted([made[1].id, made[2].id])
        (top,) = s.recall("Note 2 about the garden shed", k=1, mode="dense")
        assert top.memory.id == made[2].id
    store.close()


def test_a_catch_up_after_only_other_personas_wrote_reads_no_changes_twice(
    store_location: str,
) -> None:
    """Once a catch-up found nothing of its persona after another persona's write, the next
    one reads the store's counter only (its ``checked`` mark), not the changes again; and
    ``seen``, the snapshot's watermark, stays at the persona's own last change."""
    from severance import index_lifecycle
    from severance.backends import open_backend

    store = two_personas(store_location)
    with store.enter(floor="office") as s:
        s.remember("The printer is on floor 2")
        persona_id = s.persona_id
    with store.enter(floor="house") as h:
        h.remember("The boiler was serviced in May")
    backend = open_backend(store_location)
    try:
        real = backend.rows(persona_id)
        listed: list[int] = []

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def changes_since(self, seq: int) -> Any:
                listed.append(seq)
                return real.changes_since(seq)

        rows: Any = Counting()
        awake = index_lifecycle.wake(
            rows,
            384,
            lambda _: b"",
            lambda _: None,
            lambda _: {},
            lambda: None,
            migrated_pending=0,
        )
        own = awake.seen
        assert own < real.high_water()  # the other persona wrote last
        listed.clear()
        index_lifecycle.catch_up(awake, rows, lambda _: None)
        index_lifecycle.catch_up(awake, rows, lambda _: None)
        assert listed == []
        assert awake.seen == own
    finally:
        backend.close()
        store.close()
