"""Clean slate: irreversible erasure of one persona (crypto-shredding plus deletion).

Memory text is ciphertext at rest anyway, so besides the canary strings the raw scans look for
the erased persona's *wrapped key* and the leading bytes (version, random nonce, start of the
ciphertext) of each of its sealed blobs, read raw before the erase and checked to be findable
then. Backups: what holds with and without the key file is asserted here, so that
docs/security.md stays honest.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import severance
from severance import (
    InvalidInputError,
    MissingKeyError,
    PersonaNotFoundError,
    SessionClosedError,
    UnlockError,
    WrongKeyError,
)
from severance.keys import Secret, default_key_file

CANARIES = [f"canary-erase-{i:03d} the codename is bluebird-{i}" for i in range(40)]
HOME = ["Water the tomatoes on Sunday.", "Mum's birthday is on the 3rd of May."]
PREFIX = 40  # version byte + 12-byte random nonce + 27 bytes of ciphertext: unique per blob


def raw_tables(location: str) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(Path(location) / "store.db")) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def fingerprint(store: severance.Store, backend_name: str, location: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "audit": [(e.seq, e.event, e.hash) for e in store.audit()],
        "personas": store.personas(),
        "floors": store.floors(),
    }
    if backend_name == "sqlite":
        state["rows"] = raw_tables(location)
    return state


def secret_bytes(location: str, persona_id: str) -> list[bytes]:
    """A persona's wrapped key and the leading bytes of each of its sealed blobs, read raw."""
    queries = [
        "SELECT wrapped_key FROM personas WHERE id = ?",
        "SELECT payload FROM memories WHERE persona_id = ?",
        "SELECT vector FROM memories WHERE persona_id = ?",
        "SELECT payload FROM history WHERE persona_id = ?",
        "SELECT chunk FROM snapshots WHERE persona_id = ?",
    ]
    with closing(sqlite3.connect(Path(location) / "store.db")) as db:
        (wrapped,) = db.execute(queries[0], (persona_id,)).fetchone()
        blobs = [bytes(r[0])[:PREFIX] for q in queries[1:] for r in db.execute(q, (persona_id,))]
    # The index snapshot is a file beside the database: a slice of its sealed chunks.
    snapshot = Path(location) / "snapshots" / f"{persona_id}.snap"
    if snapshot.is_file():
        data = snapshot.read_bytes()
        blobs.append(data[len(data) // 2 : len(data) // 2 + PREFIX])
    return [bytes(wrapped), *blobs]


def every_byte(directory: str) -> bytes:
    """The whole data directory (store.db, -wal, -shm and anything else), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file())


def memories(store: severance.Store, floor: str, secret: Secret | None = None) -> list[Any]:
    with store.enter(floor=floor, secret=secret) as s:
        return sorted(s.memories(limit=1000).items, key=lambda m: m.id)


@pytest.fixture
def sqlite_only(backend_name: str) -> None:
    """Ask for it first: it skips before the costlier fixtures are built."""
    if backend_name != "sqlite":
        pytest.skip("reads or copies the SQLite data directory")


@pytest.fixture
def full(store: severance.Store) -> severance.Store:
    """work: canaries with a history, a tombstone and an index snapshot; home: two memories."""
    with store.enter(floor="office") as s:
        written = s.remember_many(
            {"text": t, "tags": ["bluebird"], "metadata": {"project": "bluebird"}} for t in CANARIES
        )
        s.update(written[0].id, "canary-erase-updated the codename changed to kestrel")
        s.forget(written[1].id)
        s.checkpoint()
    with store.enter(floor="house") as s:
        s.remember_many(HOME)
    return store


def test_nothing_of_the_erased_persona_is_left_in_any_file(
    sqlite_only: None, full: severance.Store, store_location: str
) -> None:
    work_id, home_id = full.persona("work").id, full.persona("home").id
    erased_bytes = secret_bytes(store_location, work_id)
    kept_bytes = secret_bytes(store_location, home_id)
    assert len(erased_bytes) > 2 * len(CANARIES)  # key, payloads, vectors, history, snapshot
    before = every_byte(store_location)
    assert all(b in before for b in erased_bytes + kept_bytes)  # the scan can see them
    home_before = memories(full, "house")

    assert full.clean_slate("work", confirm="work") == len(CANARIES) - 1

    after = every_byte(store_location)
    assert [b for b in erased_bytes if b in after] == []
    for needle in ("canary-erase", "bluebird", "kestrel"):
        assert needle.encode() not in after
    assert all(b in after for b in kept_bytes)
    rows = raw_tables(store_location)
    # (The audit chain keeps the erased persona's id and name, never its content.)
    for table in ("personas", "memories", "history", "tombstones", "snapshots", "floors"):
        assert work_id not in repr(rows[table]), table
    # The other personas are untouched and readable.
    assert memories(full, "house") == home_before
    assert memories(full, "studio") == []
    assert full.verify_audit().ok


def test_the_erasure_is_recorded_without_content(full: severance.Store) -> None:
    work_id = full.persona("work").id
    full.clean_slate("work", confirm="work")
    with pytest.raises(PersonaNotFoundError):
        full.persona("work")
    assert [p.name for p in full.personas()] == ["home", "side"]
    assert "office" not in [f.name for f in full.floors()]
    entry = full.audit()[-1]
    assert (entry.event, entry.persona, entry.persona_id) == ("clean_slate", "work", work_id)
    assert entry.detail == {"memories": len(CANARIES) - 1}
    for e in full.audit():
        assert "canary" not in repr(e.to_dict()) and "bluebird" not in repr(e.to_dict())
    assert full.verify_audit().ok


def test_an_open_session_of_the_erased_persona_stops_working(full: severance.Store) -> None:
    work = full.enter(floor="office")
    home = full.enter(floor="house")
    assert work.count() == len(CANARIES) - 1
    full.clean_slate("work", confirm="work")
    with pytest.raises(SessionClosedError):
        work.recall("codename")
    with pytest.raises(SessionClosedError):
        work.remember("written after the erasure")
    work.close()
    assert home.count() == len(HOME)  # unaffected
    home.close()
    assert full.audit()[-1].event == "exit"  # home's exit; nothing logged for the erased one
    assert full.audit()[-1].persona == "home"


def test_the_name_can_be_reused_for_a_new_empty_persona(full: severance.Store) -> None:
    old_id = full.persona("work").id
    full.override("work", reason="last look", minutes=30).close()
    full.clean_slate("work", confirm="work")

    info = full.add_persona("work")
    assert info.id != old_id and not info.sealed
    full.add_floor("office", persona="work")
    with full.enter(floor="office") as s:
        assert s.count() == 0
        assert s.recall("codename bluebird") == []
        assert s.notices() == []  # the old persona's override is not the new one's
    with pytest.raises(SessionClosedError):
        full.resume_override("work")
    assert {e.persona_id for e in full.audit("work")} == {info.id}
    assert "clean_slate" not in [e.event for e in full.audit("work")]
    assert sorted(m.text for m in memories(full, "house")) == sorted(HOME)


def test_a_wrong_confirmation_erases_nothing(
    full: severance.Store, store_location: str, backend_name: str
) -> None:
    before = fingerprint(full, backend_name, store_location)
    for confirm in ["", "Work", "work ", " work", "home", "yes", None]:
        with pytest.raises(InvalidInputError):
            full.clean_slate("work", confirm=confirm)  # type: ignore[arg-type]
        assert fingerprint(full, backend_name, store_location) == before, confirm
    assert len(memories(full, "office")) == len(CANARIES) - 1


def test_an_unknown_persona_erases_nothing(
    full: severance.Store, store_location: str, backend_name: str
) -> None:
    before = fingerprint(full, backend_name, store_location)
    with pytest.raises(PersonaNotFoundError):
        full.clean_slate("nobody", confirm="nobody")
    assert fingerprint(full, backend_name, store_location) == before


# -- backups -------------------------------------------------------------------------------------
@pytest.fixture
def backup(sqlite_only: None, full: severance.Store, store_location: str, tmp_path: Path) -> Path:
    """A copy of the data directory taken before work is erased (the key file is elsewhere)."""
    full.close()
    copy = tmp_path / "backup-of-store"
    shutil.copytree(store_location, copy)
    with severance.Store.open(store_location) as live:
        live.clean_slate("work", confirm="work")
    return copy


def test_a_backup_without_the_key_file_opens_nothing(
    backup: Path, store_location: str, tmp_path: Path
) -> None:
    with severance.Store.open(backup) as old:
        store_id = old.store_id
    key_file = default_key_file(store_id)
    assert key_file.is_file() and Path(store_location) not in key_file.parents
    assert backup not in key_file.parents
    for needle in (b"canary-erase", b"bluebird"):
        assert needle not in every_byte(str(backup))

    # Whoever holds the backup but not the key file (kept apart from the data) gets nothing.
    aside = tmp_path / "key-kept-elsewhere"
    key_file.rename(aside)
    try:
        with pytest.raises(MissingKeyError):
            severance.Store.open(backup)
        with pytest.raises(WrongKeyError):
            severance.Store.open(backup, key=os.urandom(32))
        with pytest.raises(UnlockError):
            severance.Store.open(backup, passphrase="bluebird")
    finally:
        aside.rename(key_file)


def test_a_backup_with_its_key_file_still_opens_the_erased_persona(
    backup: Path, store_location: str, tmp_path: Path
) -> None:
    """Crypto-shredding protects backups only when the keys are kept apart from them."""
    with severance.Store.open(store_location) as live:
        key_file = default_key_file(live.store_id)
    key_backup = tmp_path / "key-backup"
    shutil.copy(key_file, key_backup)  # clean slate does not change the master key

    with severance.Store.open(backup, key_file=key_backup) as old:
        texts = {m.text for m in memories(old, "office")}
    assert set(CANARIES[2:]) <= texts  # the erased persona, readable from the old copy

    # The live key file opens that old copy too, until the master key is rotated.
    with severance.Store.open(backup) as old:
        assert len(memories(old, "office")) == len(CANARIES) - 1
    with severance.Store.open(store_location) as live:
        live.rotate_key()
    with pytest.raises(WrongKeyError):
        severance.Store.open(backup)
    with severance.Store.open(backup, key_file=key_backup) as old:  # the old key still does
        assert len(memories(old, "office")) == len(CANARIES) - 1


def test_a_sealed_persona_whose_key_file_is_destroyed_is_gone_from_backups(
    sqlite_only: None, store: severance.Store, store_location: str, tmp_path: Path
) -> None:
    vault_key = tmp_path / "employer" / "vault.key"
    secret = Secret(key_file=vault_key)
    store.add_persona("vault", sealed_with=secret)
    store.add_floor("safe", persona="vault")
    with store.enter(floor="safe", secret=secret) as s:
        s.remember_many(CANARIES[:10])
    store.close()
    copy = tmp_path / "backup-of-store"
    shutil.copytree(store_location, copy)
    key_backup = tmp_path / "master-key-backup"
    with severance.Store.open(store_location) as live:
        shutil.copy(default_key_file(live.store_id), key_backup)
        live.clean_slate("vault", confirm="vault")
    vault_key.unlink()  # destroyed on erasure, as docs/security.md advises

    with severance.Store.open(copy, key_file=key_backup) as old:  # data and master key
        assert old.persona("vault").sealed
        with pytest.raises(UnlockError):
            old.enter(floor="safe")
        with pytest.raises(MissingKeyError):
            old.enter(floor="safe", secret=secret)
