"""Master key rotation: every data key (and the audit key) re-wrapped under a new master key.

Memories stay readable, the old key stops working, the audit chain still verifies, sealed
personas keep their own secret, and a rotation interrupted between the database commit and the
key-file rename (``<key file>.new`` left behind, see ``_find_key``) still opens.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import severance
from severance import InvalidInputError, MissingKeyError, UnlockError, WrongKeyError
from severance.keys import Secret, default_key_file

WORK = ["The staging database password rotates monthly.", "Standup is at 9:15."]
HOME = ["The boiler service is booked for June."]
SIDE = "Invoice the bakery for the logo."
PASSPHRASE = "a brand new passphrase"


def raw_tables(location: str) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(Path(location) / "store.db")) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def texts(store: severance.Store, floor: str, secret: Secret | None = None) -> list[str]:
    with store.enter(floor=floor, secret=secret) as s:
        return sorted(m.text for m in s.memories(limit=1000).items)


@pytest.fixture
def sqlite_only(backend_name: str) -> None:
    """Ask for it first: it skips before the costlier fixtures are built."""
    if backend_name != "sqlite":
        pytest.skip("reads the SQLite files (a SQLite store is a directory)")


@pytest.fixture
def keyed(store: severance.Store) -> severance.Store:
    with store.enter(floor="office") as s:
        s.remember_many(WORK)
    with store.enter(floor="house") as s:
        s.remember_many(HOME)
    with store.enter(floor="studio") as s:
        s.remember(SIDE)
    return store


@pytest.fixture
def key_file(keyed: severance.Store) -> Path:
    path = default_key_file(keyed.store_id)
    assert path.is_file()
    return path


def test_rotation_keeps_memories_readable_and_retires_the_old_key(
    keyed: severance.Store, store_location: str, key_file: Path, tmp_path: Path
) -> None:
    old = key_file.read_text()

    assert keyed.rotate_key() == str(key_file)

    assert key_file.read_text() != old
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not key_file.with_name(key_file.name + ".new").exists()
    # The same handle keeps working, and so does a fresh one with the new key.
    assert texts(keyed, "office") == sorted(WORK)
    with severance.Store.open(store_location) as again:
        assert texts(again, "office") == sorted(WORK)
        assert texts(again, "house") == sorted(HOME)
        with again.enter(floor="studio") as s:
            assert [r.memory.text for r in s.recall("bakery invoice", 1)] == [SIDE]
        assert again.verify_audit().ok
        (rotated,) = [e for e in again.audit() if e.event == "key_rotated"]
    assert rotated.detail == {"key_mode": "key-file", "personas": 3}

    old_copy = tmp_path / "old.key"
    old_copy.write_text(old)
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location, key=old.strip())
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location, key=base64.urlsafe_b64decode(old.strip()))
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location, key_file=old_copy)


def test_the_old_key_in_the_environment_is_refused(
    keyed: severance.Store,
    store_location: str,
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_copy = tmp_path / "old.key"
    old_copy.write_text(key_file.read_text())
    keyed.rotate_key()
    monkeypatch.setenv("SEVERANCE_KEY_FILE", str(old_copy))
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location)
    monkeypatch.delenv("SEVERANCE_KEY_FILE")
    monkeypatch.setenv("SEVERANCE_KEY", old_copy.read_text().strip())
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location)


def test_memories_are_not_re_encrypted_only_their_keys_rewrapped(
    sqlite_only: None, keyed: severance.Store, store_location: str
) -> None:
    before = raw_tables(store_location)
    keyed.rotate_key()
    after = raw_tables(store_location)
    assert after["memories"] == before["memories"]
    old_keys = {r[0]: r[3] for r in before["personas"]}
    new_keys = {r[0]: r[3] for r in after["personas"]}
    assert old_keys.keys() == new_keys.keys()
    assert all(old_keys[p] != new_keys[p] for p in old_keys)


def test_rotation_to_a_passphrase_and_back_to_a_key_file(
    keyed: severance.Store,
    store_location: str,
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old_copy = tmp_path / "old.key"
    old_copy.write_text(key_file.read_text())
    assert keyed.rotate_key(passphrase=PASSPHRASE) is None
    keyed.close()

    with pytest.raises(MissingKeyError):
        severance.Store.open(store_location)
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location, key_file=old_copy)
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location, passphrase=PASSPHRASE + " ")
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", PASSPHRASE)
    with severance.Store.open(store_location) as again:
        assert texts(again, "house") == sorted(HOME)
    monkeypatch.delenv("SEVERANCE_PASSPHRASE")

    with severance.Store.open(store_location, passphrase=PASSPHRASE) as again:
        assert texts(again, "office") == sorted(WORK)
        new_file = tmp_path / "keys" / "rotated.key"
        assert again.rotate_key(key_file=new_file) == str(new_file)
        assert again.verify_audit().ok
    with severance.Store.open(store_location) as again:  # finds the recorded key file
        assert texts(again, "office") == sorted(WORK)
        assert [e.detail["key_mode"] for e in again.audit() if e.event == "key_rotated"] == [
            "passphrase",
            "key-file",
        ]
    with pytest.raises(UnlockError):
        severance.Store.open(store_location, passphrase=PASSPHRASE)


def test_sealed_personas_keep_working_with_their_own_secret(
    keyed: severance.Store, store_location: str
) -> None:
    secret = Secret(passphrase="the employer's secret")
    keyed.seal_persona("side", secret)

    keyed.rotate_key()

    assert keyed.audit()[-1].detail["personas"] == 2  # side is not wrapped by the master key
    with severance.Store.open(store_location) as again:
        with pytest.raises(UnlockError):
            again.enter(floor="studio")
        with pytest.raises(WrongKeyError):
            again.enter(floor="studio", secret=Secret(passphrase="guess"))
        assert texts(again, "studio", secret) == [SIDE]
        assert texts(again, "office") == sorted(WORK)
        again.unseal_persona("side", secret)  # and it can join the new master key
        assert texts(again, "studio") == [SIDE]
        assert again.verify_audit().ok


def test_rotation_refuses_a_passphrase_and_a_key_file_together(
    keyed: severance.Store, store_location: str, key_file: Path, tmp_path: Path
) -> None:
    audit = keyed.audit()
    old = key_file.read_text()
    with pytest.raises(InvalidInputError):
        keyed.rotate_key(passphrase=PASSPHRASE, key_file=tmp_path / "new.key")
    with pytest.raises(InvalidInputError):
        keyed.rotate_key(passphrase="")
    assert keyed.audit() == audit
    assert key_file.read_text() == old
    assert not (tmp_path / "new.key").exists()
    with severance.Store.open(store_location) as again:
        assert texts(again, "office") == sorted(WORK)


class Died(BaseException):
    """The process dying between the database commit and the key-file rename."""


def test_a_rotation_interrupted_after_the_commit_still_opens(
    keyed: severance.Store, store_location: str, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = key_file.read_text()
    pending = key_file.with_name(key_file.name + ".new")

    def die(*args: object) -> None:
        raise Died

    with monkeypatch.context() as m:
        m.setattr(os, "replace", die)
        with pytest.raises(Died):
            keyed.rotate_key()
    keyed.close()
    assert pending.is_file() and key_file.read_text() == old  # the state a crash leaves
    new = pending.read_text()

    with severance.Store.open(store_location) as again:  # finishes the rotation
        assert texts(again, "office") == sorted(WORK)
        assert again.verify_audit().ok
        assert [e.event for e in again.audit()].count("key_rotated") == 1
    assert not pending.exists()
    assert key_file.read_text() == new
    with pytest.raises(WrongKeyError):
        severance.Store.open(store_location, key=old.strip())


def test_a_stale_pending_key_from_an_uncommitted_rotation_is_ignored(
    keyed: severance.Store, store_location: str, key_file: Path
) -> None:
    """Death before the commit: the database still wants the old key."""
    keyed.close()
    old = key_file.read_text()
    pending = key_file.with_name(key_file.name + ".new")
    pending.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")

    with severance.Store.open(store_location) as again:
        assert texts(again, "house") == sorted(HOME)
        # A reader never deletes it: it may be the key a rotation in another process is
        # about to commit. The next rotation here replaces it.
        assert pending.exists()
        again.rotate_key()
    assert not pending.exists()
    assert key_file.read_text() != old


@pytest.mark.parametrize("inside", ["master.key", "keys/master.key"])
def test_rotation_refuses_a_key_file_inside_the_store_directory(
    sqlite_only: None, keyed: severance.Store, store_location: str, key_file: Path, inside: str
) -> None:
    old = key_file.read_text()
    with pytest.raises(InvalidInputError):
        keyed.rotate_key(key_file=Path(store_location) / inside)
    assert key_file.read_text() == old
    assert not (Path(store_location) / inside).exists()
    with severance.Store.open(store_location) as again:
        assert texts(again, "office") == sorted(WORK)


def test_rotation_never_overwrites_an_existing_unrelated_file(
    keyed: severance.Store, store_location: str, key_file: Path, tmp_path: Path
) -> None:
    other = severance.Store.init(tmp_path / "other-store")
    other_key = default_key_file(other.store_id)
    other.close()
    precious = other_key.read_text()
    with pytest.raises(severance.SeveranceError):
        keyed.rotate_key(key_file=other_key)
    assert other_key.read_text() == precious  # the other store's only key
    severance.Store.open(tmp_path / "other-store").close()
    with severance.Store.open(store_location) as again:
        assert texts(again, "office") == sorted(WORK)


@pytest.mark.parametrize("to", ["passphrase", "another key file"])
def test_rotation_retires_the_old_key_file(
    keyed: severance.Store, key_file: Path, tmp_path: Path, to: str
) -> None:
    if to == "passphrase":
        keyed.rotate_key(passphrase=PASSPHRASE)
    else:
        keyed.rotate_key(key_file=tmp_path / "elsewhere" / "new.key")
    assert not key_file.exists()
