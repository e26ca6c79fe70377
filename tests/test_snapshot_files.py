"""Index snapshots as files beside the SQLite database: waking from them and from the older
in-database snapshots, crash safety (temporary file, fsync, rename; torn or missing files),
and erasure (clean slate leaves nothing of the persona's snapshot in any file)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import severance
from severance.backends.base import Snapshot

QUERIES = ["launch budget", "vault code", "lobby hours", "garden"]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[severance.Store]:
    s = severance.Store.init(tmp_path / "store")
    for persona, floor in (("work", "office"), ("home", "house")):
        s.add_persona(persona)
        s.add_floor(floor, persona=persona)
    yield s
    s.close()


def fill(store: severance.Store) -> dict[str, list[list[tuple[str, float]]]]:
    """Memories in both personas, a snapshot of each, one forgotten memory; the answers."""
    answers = {}
    for floor, word in (("office", "launch"), ("house", "garden")):
        with store.enter(floor=floor) as s:
            written = s.remember_many(
                f"Memory {i}: the {word} budget line {i * 7}, vault code {i}, lobby at {i}"
                for i in range(40)
            )
            s.forget(written[3].id)
            s.checkpoint()
            answers[floor] = results(s)
    return answers


def results(session: severance.Session) -> list[list[tuple[str, float]]]:
    return [[(r.memory.id, r.score) for r in session.recall(q, k=8)] for q in QUERIES]


def awake_results(store: severance.Store, floor: str) -> list[list[tuple[str, float]]]:
    with store.enter(floor=floor) as s:
        return results(s)


def snap_dir(store: severance.Store) -> Path:
    return Path(store.location) / "snapshots"


def snap_file(store: severance.Store, persona: str) -> Path:
    return snap_dir(store) / f"{store.persona(persona).id}.snap"


def db_snapshot_rows(store: severance.Store) -> int:
    with closing(sqlite3.connect(Path(store.location) / "store.db")) as db:
        return int(db.execute("SELECT count(*) FROM snapshots").fetchone()[0])


def rejected(store: severance.Store, persona: str) -> int:
    return [e.event for e in store.audit(persona)].count("snapshot_rejected")


def rebuilt(store: severance.Store, floor: str, persona: str) -> list[list[tuple[str, float]]]:
    """The answers of an index rebuilt from the rows alone (the snapshot set aside)."""
    path = snap_file(store, persona)
    kept = path.read_bytes()
    path.unlink()
    try:
        return awake_results(store, floor)
    finally:
        path.write_bytes(kept)


def test_wake_from_the_snapshot_file_gives_identical_results(
    sqlite_store: severance.Store,
) -> None:
    answers = fill(sqlite_store)
    assert snap_file(sqlite_store, "work").is_file()
    assert db_snapshot_rows(sqlite_store) == 0  # nothing of it in the database
    for floor, persona in (("office", "work"), ("house", "home")):
        assert awake_results(sqlite_store, floor) == answers[floor]
        assert rebuilt(sqlite_store, floor, persona) == answers[floor]
        assert rejected(sqlite_store, persona) == 0
    # Nothing is left of the temporary files the writes used.
    assert sorted(p.suffix for p in snap_dir(sqlite_store).iterdir()) == [".snap", ".snap"]


def test_a_snapshot_kept_in_the_database_by_an_older_version_still_wakes(
    sqlite_store: severance.Store,
) -> None:
    answers = fill(sqlite_store)
    work_id = sqlite_store.persona("work").id
    rows = sqlite_store._backend.rows(work_id)
    snapshot = rows.read_snapshot()
    assert snapshot is not None
    # Put it back where older versions kept it: chunk rows in the snapshots table.
    with closing(sqlite3.connect(Path(sqlite_store.location) / "store.db")) as db, db:
        db.executemany(
            "INSERT INTO snapshots VALUES (?, ?, ?, ?)",
            [(work_id, i, snapshot.watermark, bytes(c)) for i, c in enumerate(snapshot.chunks)],
        )
    del snapshot
    snap_file(sqlite_store, "work").unlink()
    assert awake_results(sqlite_store, "office") == answers["office"]
    assert rejected(sqlite_store, "work") == 0
    # The next snapshot moves it out of the database into its file.
    with sqlite_store.enter(floor="office") as s:
        s.remember("The lobby hours changed to 9")
        s.checkpoint()
        after = results(s)
    assert db_snapshot_rows(sqlite_store) == 0
    assert snap_file(sqlite_store, "work").is_file()
    assert awake_results(sqlite_store, "office") == after


@pytest.mark.parametrize("damage", ["truncated", "header", "empty", "garbage"])
def test_a_torn_snapshot_file_is_rebuilt_from_rows(
    sqlite_store: severance.Store, damage: str
) -> None:
    answers = fill(sqlite_store)
    path = snap_file(sqlite_store, "work")
    data = path.read_bytes()
    torn = {
        "truncated": data[: len(data) // 2],
        "header": data[:10],
        "empty": b"",
        "garbage": b"\x07" * len(data),
    }[damage]
    path.write_bytes(torn)
    assert awake_results(sqlite_store, "office") == answers["office"]
    assert rejected(sqlite_store, "work") == 1
    assert not path.exists()  # never trusted again
    assert awake_results(sqlite_store, "house") == answers["house"]  # the other is untouched
    assert rejected(sqlite_store, "home") == 0


def test_a_missing_snapshot_file_is_rebuilt_from_rows(sqlite_store: severance.Store) -> None:
    answers = fill(sqlite_store)
    snap_file(sqlite_store, "work").unlink()
    assert awake_results(sqlite_store, "office") == answers["office"]
    assert rejected(sqlite_store, "work") == 0  # nothing to reject: there was no snapshot


def test_a_write_that_died_before_its_rename_leaves_the_old_snapshot(
    sqlite_store: severance.Store,
) -> None:
    answers = fill(sqlite_store)
    files = sqlite_store._backend.snapshot_files
    work_id = sqlite_store.persona("work").id
    before = snap_file(sqlite_store, "work").read_bytes()
    # What a process killed between writing and renaming leaves: a full temporary file.
    leftover = files.prepare(work_id, Snapshot(10**9, (b"x" * 4096,)))
    assert leftover.exists()
    assert snap_file(sqlite_store, "work").read_bytes() == before
    assert awake_results(sqlite_store, "office") == answers["office"]
    assert rejected(sqlite_store, "work") == 0


def test_an_older_snapshot_never_replaces_a_newer_one(sqlite_store: severance.Store) -> None:
    fill(sqlite_store)
    work_id = sqlite_store.persona("work").id
    rows = sqlite_store._backend.rows(work_id)
    current = rows.read_snapshot()
    assert current is not None
    # Written late by a session that woke earlier: it must not win, since the tombstones the
    # newer snapshot covers are gone and its older view would bring forgotten memories back.
    rows.write_snapshot(Snapshot(current.watermark - 1, (b"stale",)))
    again = rows.read_snapshot()
    assert again is not None and again.watermark == current.watermark
    assert [bytes(c) for c in again.chunks] == [bytes(c) for c in current.chunks]
    assert [p.suffix for p in snap_dir(sqlite_store).iterdir()].count(".tmp") == 0


def test_clean_slate_leaves_nothing_of_the_snapshot_in_any_file(
    sqlite_store: severance.Store,
) -> None:
    answers = fill(sqlite_store)
    work_id = sqlite_store.persona("work").id
    data = snap_file(sqlite_store, "work").read_bytes()
    # Slices of the sealed chunks (ciphertext), and a crashed write's leftover.
    needles = [data[i : i + 48] for i in range(64, len(data) - 48, max(1, len(data) // 16))]
    sqlite_store._backend.snapshot_files.prepare(work_id, Snapshot(1, (b"leftover" * 64,)))
    location = sqlite_store.location
    sqlite_store.clean_slate("work", confirm="work")
    sqlite_store.close()
    every = {p: p.read_bytes() for p in Path(location).rglob("*") if p.is_file()}
    assert [p for p in every if work_id in p.name] == []
    blob = b"".join(every.values())
    assert [n for n in needles if n in blob] == []
    assert b"leftover" not in blob
    reopened = severance.Store.open(location)
    try:
        assert awake_results(reopened, "house") == answers["house"]
    finally:
        reopened.close()


def test_reembedding_drops_the_snapshot_file(sqlite_store: severance.Store) -> None:
    answers = fill(sqlite_store)
    sqlite_store.reembed("work")
    assert not snap_file(sqlite_store, "work").exists()
    assert awake_results(sqlite_store, "office") == answers["office"]


def test_after_key_rotation_the_snapshot_still_wakes(sqlite_store: severance.Store) -> None:
    answers = fill(sqlite_store)
    sqlite_store.rotate_key()
    assert awake_results(sqlite_store, "office") == answers["office"]
    assert rejected(sqlite_store, "work") == 0


def test_an_older_snapshot_never_replaces_a_newer_one_on_any_backend(
    store: severance.Store,
) -> None:
    with store.enter(floor="office") as s:
        written = s.remember_many(f"Memory {i} about the launch" for i in range(12))
        s.forget(written[0].id)
        s.checkpoint()
    # From the snapshot (the writing session's own index, awake since its first write, keeps
    # the forgotten slot: its scores may differ from a compacted index's in the last bits).
    want = awake_results(store, "office")
    rows = store._backend.rows(store.persona("work").id)
    current = rows.read_snapshot()
    assert current is not None
    rows.write_snapshot(Snapshot(current.watermark - 1, (b"stale",)))
    again = rows.read_snapshot()
    assert again is not None and again.watermark == current.watermark
    assert awake_results(store, "office") == want
    assert written[0].id not in {m for q in want for m, _ in q}
