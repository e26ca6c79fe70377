"""Encryption at rest: raw scans of every file of a store, tampering, and key handling.

The raw-file tests read the SQLite files byte by byte and edit rows with the ``sqlite3``
module behind Severance's back; they are skipped on other back-ends.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

import severance
from severance import (
    IntegrityError,
    InvalidInputError,
    MissingKeyError,
    Store,
    WrongKeyError,
)
from severance.keys import default_key_file

# Lower-case words that tokenising leaves unchanged, so an index snapshot would hold them as
# they are if it were not encrypted.
CANARIES = {
    "work": ("canarytextwork", "canarytagwork", "canarymetawork", "canarykeywork"),
    "home": ("canarytexthome", "canarytaghome", "canarymetahome", "canarykeyhome"),
    "side": ("canarytextside", "canarytagside", "canarymetaside", "canarykeyside"),
}
FORGOTTEN = "canaryforgotten"
UPDATED_AWAY = "canaryoldversion"
FLOORS = {"work": "office", "home": "house", "side": "studio"}


@pytest.fixture
def sqlite_only(backend_name: str) -> None:
    if backend_name != "sqlite":
        pytest.skip("reads and edits the SQLite files directly")


def db_path(store: Store) -> Path:
    return Path(store.location) / "store.db"


@contextmanager
def raw(store: Store) -> Iterator[sqlite3.Connection]:
    """A second, plain connection to the store's database (autocommit)."""
    with closing(sqlite3.connect(db_path(store), isolation_level=None, timeout=30)) as db:
        yield db


def flip(blob: bytes, at: int) -> bytes:
    data = bytearray(blob)
    data[at] ^= 0x01
    return bytes(data)


def fill(store: Store) -> dict[str, list[severance.Memory]]:
    """Canaries in the text, tags, metadata keys and values of every persona."""
    made: dict[str, list[severance.Memory]] = {}
    for role, (text, tag, meta, key) in CANARIES.items():
        with store.enter(floor=FLOORS[role]) as s:
            made[role] = [
                s.remember(
                    f"The {text} memory number {i} about the launch budget",
                    kind="fact",
                    tags=[tag, "launch"],
                    metadata={key: meta, "n": i},
                    source=f"{text}-source",
                )
                for i in range(5)
            ]
            s.recall("launch budget")  # load the index
            s.checkpoint()  # an encrypted index snapshot, stored as rows
            # History rows: an older version holds its own canary.
            s.update(made[role][0].id, f"Replaced {text} text")
            old = s.remember(f"Soon changed {UPDATED_AWAY}")
            s.update(old.id, f"Changed away from the old {text} version")
            doomed = s.remember(f"Forget {FORGOTTEN} please", tags=[FORGOTTEN])
            s.forget(doomed.id)
            s.recall("launch")  # the tail is applied to the live index
    return made


def scan(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def assert_no_canary(files: dict[str, bytes]) -> None:
    # The scan does see plaintext where there is some: floor names are stored in the clear.
    assert any(b"studio" in data for data in files.values())
    words = [w for group in CANARIES.values() for w in group] + [FORGOTTEN, UPDATED_AWAY]
    for name, data in files.items():
        lowered = data.lower()
        for word in words:
            for form in (word.encode(), word.encode("utf-16-le"), word[:10].encode()):
                assert form not in lowered, f"{word!r} found in {name}"


# -- raw scans -------------------------------------------------------------------------------------
def test_no_plaintext_in_any_file_after_close(sqlite_only: None, store: Store) -> None:
    fill(store)
    location = Path(store.location)
    store.close()
    files = scan(location)
    assert "store.db" in files
    assert len(files["store.db"]) > 10_000
    assert_no_canary(files)


def test_no_plaintext_in_any_file_with_a_live_wal(sqlite_only: None, store: Store) -> None:
    location = Path(store.location)
    with raw(store) as reader:  # another connection keeps the WAL from being checkpointed away
        reader.execute("SELECT count(*) FROM meta").fetchone()
        fill(store)
        store.close()
        files = scan(location)
        assert {"store.db", "store.db-wal", "store.db-shm"} <= set(files)
        assert len(files["store.db-wal"]) > 0
        assert_no_canary(files)
        # The WAL really holds the memories (encrypted), not just a header.
        n = reader.execute("SELECT count(*) FROM memories").fetchone()[0]
        assert n == 3 * 6
        snaps = reader.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        assert snaps >= 3
        history = reader.execute("SELECT count(*) FROM history").fetchone()[0]
        assert history == 3 * 2


def test_the_master_key_is_not_in_the_store(sqlite_only: None, store_location: str) -> None:
    with Store.init(store_location) as st:
        st.add_persona("work")
        key_file = default_key_file(st.store_id)
    key_text = key_file.read_text().strip()
    raw_key = base64.urlsafe_b64decode(key_text)
    for name, data in scan(Path(store_location)).items():
        assert raw_key not in data, name
        assert key_text.encode() not in data, name


# -- tampering -------------------------------------------------------------------------------------
def test_flipped_payload_byte_is_an_integrity_error(sqlite_only: None, store: Store) -> None:
    with store.enter(floor="office") as s:
        victim = s.remember("The vault code is 1234", tags=["vault"])
        bystander = s.remember("The lobby opens at 8")
    with raw(store) as db:
        (payload,) = db.execute(
            "SELECT payload FROM memories WHERE id = ?", (victim.id,)
        ).fetchone()
        for at in (0, 5, len(payload) // 2, len(payload) - 1):  # version, nonce, body, tag
            db.execute(
                "UPDATE memories SET payload = ? WHERE id = ?", (flip(payload, at), victim.id)
            )
            with store.enter(floor="office") as s:
                for call in (s.get, s.history):
                    with pytest.raises(IntegrityError):
                        call(victim.id)
                with pytest.raises(IntegrityError):
                    s.update(victim.id, "overwrite the tampered memory")
                # Quarantined, not collapsed: every read skips it, the rest stays readable.
                assert [m.id for m in s.memories().items] == [bystander.id]
                assert victim.id not in [r.memory.id for r in s.recall("vault code")]
                assert s.quarantined() == [victim.id]
                assert s.get(bystander.id).text == "The lobby opens at 8"
        db.execute("UPDATE memories SET payload = ? WHERE id = ?", (payload, victim.id))
        db.execute("UPDATE memories SET payload = ? WHERE id = ?", (payload[:10], victim.id))
    with store.enter(floor="office") as s, pytest.raises(IntegrityError):
        s.get(victim.id)  # a truncated blob is malformed, not a crash


def test_flipped_vector_byte_is_an_integrity_error(sqlite_only: None, store: Store) -> None:
    with store.enter(floor="office") as s:
        victim = s.remember("The vault code is 1234")
        s.remember("The lobby opens at 8")
    with raw(store) as db:
        (vector,) = db.execute("SELECT vector FROM memories WHERE id = ?", (victim.id,)).fetchone()
        db.execute(
            "UPDATE memories SET vector = ? WHERE id = ?",
            (flip(vector, len(vector) // 2), victim.id),
        )
    with store.enter(floor="office") as s:
        assert s.get(victim.id).text == "The vault code is 1234"  # the payload is intact
        # Building the index opens every vector: the bad one is quarantined, not indexed.
        assert victim.id not in [r.memory.id for r in s.recall("vault")]
        assert s.quarantined() == [victim.id]
        with pytest.raises(IntegrityError):
            s.update(victim.id, tags=["moved"])  # keeping the vector opens it


def test_flipped_snapshot_chunk_is_rebuilt_from_rows(sqlite_only: None, store: Store) -> None:
    queries = ["launch budget", "vault code", "lobby"]
    with store.enter(floor="office") as s:
        for i in range(12):
            s.remember(f"Memory {i}: the launch budget line {i * 7}")
        s.remember("The vault code is 1234")
        s.remember("The lobby opens at 8")
        s.recall("warm")
        s.checkpoint()
        expected = [[(r.memory.id, r.score) for r in s.recall(q, k=5)] for q in queries]
        persona_id = s.persona_id
    with raw(store) as db:
        (chunk,) = db.execute(
            "SELECT chunk FROM snapshots WHERE persona_id = ?", (persona_id,)
        ).fetchone()
        db.execute(
            "UPDATE snapshots SET chunk = ? WHERE persona_id = ?",
            (flip(chunk, len(chunk) // 2), persona_id),
        )
    with store.enter(floor="office") as s:
        got = [[(r.memory.id, r.score) for r in s.recall(q, k=5)] for q in queries]
    assert got == expected
    rejected = [e for e in store.audit("work") if e.event == "snapshot_rejected"]
    assert len(rejected) == 1
    with raw(store) as db:
        left = db.execute("SELECT count(*) FROM snapshots WHERE persona_id = ?", (persona_id,))
        assert left.fetchone()[0] == 0  # the bad snapshot is never trusted again
    assert store.verify_audit().ok


def test_snapshot_of_another_persona_is_rejected(sqlite_only: None, store: Store) -> None:
    with store.enter(floor="office") as s:
        s.remember("Work memory about the launch")
        s.recall("launch")
        s.checkpoint()
        work_id = s.persona_id
    with store.enter(floor="house") as s:
        mine = s.remember("Home memory about the garden")
        home_id = s.persona_id
    with raw(store) as db:
        db.execute("DELETE FROM snapshots WHERE persona_id = ?", (home_id,))
        db.execute(
            "INSERT INTO snapshots SELECT ?, part, watermark, chunk FROM snapshots"
            " WHERE persona_id = ?",
            (home_id, work_id),
        )
    with store.enter(floor="house") as s:
        results = s.recall("launch", k=10)
    assert [r.memory.id for r in results] == [mine.id]
    assert [e.event for e in store.audit("home")].count("snapshot_rejected") == 1


def test_flipped_wrapped_key_is_an_integrity_error(sqlite_only: None, store: Store) -> None:
    with store.enter(floor="office") as s:
        s.remember("work memory")
    with store.enter(floor="house") as s:
        home_memory = s.remember("home memory")
    with raw(store) as db:
        (wrapped,) = db.execute("SELECT wrapped_key FROM personas WHERE name = 'work'").fetchone()
        db.execute("UPDATE personas SET wrapped_key = ? WHERE name = 'work'", (flip(wrapped, 20),))
    with pytest.raises(IntegrityError):
        store.enter(floor="office")
    with Store.open(store.location) as again, pytest.raises(IntegrityError):
        again.enter(floor="office")
    with store.enter(floor="house") as s:  # other personas are unaffected
        assert s.get(home_memory.id).text == "home memory"


def test_swapped_wrapped_keys_do_not_open(sqlite_only: None, store: Store) -> None:
    with store.enter(floor="office") as s:
        s.remember("work memory")
    with raw(store) as db:
        (home_key,) = db.execute("SELECT wrapped_key FROM personas WHERE name = 'home'").fetchone()
        db.execute("UPDATE personas SET wrapped_key = ? WHERE name = 'work'", (home_key,))
    with pytest.raises(IntegrityError):
        store.enter(floor="office")


def test_a_row_copied_into_another_persona_does_not_decrypt(
    sqlite_only: None, store: Store
) -> None:
    with store.enter(floor="office") as s:
        secret = s.remember("The merger closes on Friday", tags=["merger"])
    with store.enter(floor="house") as s:
        home_id = s.persona_id
        s.remember("Pick up the kids at 4")
    with raw(store) as db:
        db.execute(
            "INSERT INTO memories SELECT ?, id, seq + 1000, version, learned_at, occurred_at,"
            " updated_at, payload, vector FROM memories WHERE id = ?",
            (home_id, secret.id),
        )
    with store.enter(floor="house") as s:
        with pytest.raises(IntegrityError):
            s.get(secret.id)
        assert secret.id not in [r.memory.id for r in s.recall("merger")]
        assert s.quarantined() == [secret.id]
    with store.enter(floor="office") as s:  # the original is untouched
        assert s.get(secret.id).text == "The merger closes on Friday"


def test_payload_moved_between_memories_or_versions_does_not_decrypt(
    sqlite_only: None, store: Store
) -> None:
    with store.enter(floor="office") as s:
        a = s.remember("Memory A")
        b = s.remember("Memory B")
        s.update(a.id, "Memory A, second version")
    with raw(store) as db:
        (b_payload,) = db.execute("SELECT payload FROM memories WHERE id = ?", (b.id,)).fetchone()
        (old_payload,) = db.execute(
            "SELECT payload FROM history WHERE memory_id = ? AND version = 1", (a.id,)
        ).fetchone()
        # Another memory's payload under a's id:
        db.execute("UPDATE memories SET payload = ? WHERE id = ?", (b_payload, a.id))
        with store.enter(floor="office") as s, pytest.raises(IntegrityError):
            s.get(a.id)
        # Rolling a memory back to an older version's payload:
        db.execute("UPDATE memories SET payload = ? WHERE id = ?", (old_payload, a.id))
        with store.enter(floor="office") as s, pytest.raises(IntegrityError):
            s.get(a.id)


# -- keys -----------------------------------------------------------------------------------------
def test_default_key_file_lives_outside_the_store_with_mode_0600(
    store_location: str, isolated_env: Path
) -> None:
    with Store.init(store_location) as st:
        key_file = default_key_file(st.store_id)
    assert key_file.is_file()
    assert key_file.parent == isolated_env / ".config" / "severance" / "keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    if "://" not in store_location:
        store_dir = Path(store_location).resolve()
        assert store_dir not in key_file.resolve().parents
        assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700
    assert len(base64.urlsafe_b64decode(key_file.read_text().strip())) == 32
    Store.open(store_location).close()


def test_explicit_key_file_must_be_outside_the_store(store_location: str, tmp_path: Path) -> None:
    if "://" in store_location:
        pytest.skip("a database URL has no directory to be inside of")
    with pytest.raises(InvalidInputError, match="outside"):
        Store.init(store_location, key_file=Path(store_location) / "master.key")
    assert not (Path(store_location) / "master.key").exists()
    key_file = tmp_path / "elsewhere" / "master.key"
    Store.init(store_location, key_file=key_file).close()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Store.open(store_location).close()  # the key file's place is remembered


def test_wrong_key_is_refused(store_location: str) -> None:
    key = os.urandom(32)
    Store.init(store_location, key=key).close()
    with pytest.raises(WrongKeyError):
        Store.open(store_location, key=os.urandom(32))
    with pytest.raises(WrongKeyError):
        Store.open(store_location, key="not base64 at all!")
    with pytest.raises(InvalidInputError):
        Store.open(store_location, key=b"short")
    with pytest.raises(MissingKeyError):
        Store.open(store_location)
    Store.open(store_location, key=key).close()
    Store.open(store_location, key=base64.urlsafe_b64encode(key).decode()).close()


def test_key_from_the_environment(store_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    Store.init(store_location, key=key).close()
    monkeypatch.setenv("SEVERANCE_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    with pytest.raises(WrongKeyError):
        Store.open(store_location)
    monkeypatch.setenv("SEVERANCE_KEY", "garbage")
    with pytest.raises(WrongKeyError):
        Store.open(store_location)
    monkeypatch.setenv("SEVERANCE_KEY", base64.urlsafe_b64encode(key).decode())
    Store.open(store_location).close()


def test_wrong_or_missing_passphrase(store_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.init(store_location, passphrase="correct horse battery staple") as st:
        st.add_persona("work")
        st.add_floor("office", persona="work")
        with st.enter(floor="office") as s:
            m = s.remember("locked by a passphrase")
    with pytest.raises(WrongKeyError):
        Store.open(store_location, passphrase="Correct horse battery staple")
    with pytest.raises(MissingKeyError):
        Store.open(store_location)
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", "wrong")
    with pytest.raises(WrongKeyError):
        Store.open(store_location)
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", "correct horse battery staple")
    with Store.open(store_location) as st, st.enter(floor="office") as s:
        assert s.get(m.id).text == "locked by a passphrase"
    with Store.open(store_location, passphrase="correct horse battery staple"):
        pass


def test_missing_key_file(store_location: str, tmp_path: Path) -> None:
    with Store.init(store_location) as st:
        key_file = default_key_file(st.store_id)
    moved = tmp_path / "backup.key"
    key_file.rename(moved)
    with pytest.raises(MissingKeyError):
        Store.open(store_location)
    with pytest.raises(MissingKeyError):
        Store.open(store_location, key_file=tmp_path / "nope.key")
    Store.open(store_location, key_file=moved).close()
    other = tmp_path / "other.key"
    other.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
    with pytest.raises(WrongKeyError):
        Store.open(store_location, key_file=other)
    other.write_text("this is not a key\n")
    with pytest.raises(WrongKeyError):
        Store.open(store_location, key_file=other)
