"""The Keyring on its own: creating and unlocking a master key each way, typed errors for the
wrong secret, wrapping and unwrapping persona data keys (by the master key or a persona's own
secret), sealing, and a rotation made by another process picked up by a keyring (and a Store)
opened before it — on a real SQLite file, with a real second process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from severance import (
    InvalidInputError,
    MissingKeyError,
    Store,
    StoreExistsError,
    UnlockError,
    WeakPassphraseError,
    WrongKeyError,
)
from severance.audit import AuditLog
from severance.backends import open_backend
from severance.backends.base import Backend, PersonaRow
from severance.errors import IntegrityError
from severance.keys import (
    ENV_KEY,
    ENV_PASSPHRASE,
    Keyring,
    Secret,
    Unlock,
    default_key_file,
    encode_key,
    read_key_file,
)
from severance.records import AuthenticatedBackend, authenticated
from severance.seal import new_key

PASSPHRASE = "correct horse battery staple of the keyring"
OTHER = "an entirely different passphrase for the test"


def _create(location: str, **how: Any) -> str:
    """A store made by Store.init (the keyring's create step), closed again; its id."""
    with Store.init(location, **how) as store:
        store.add_persona("work")
        store.add_floor("office", persona="work")
        with store.enter(floor="office") as s:
            s.remember("The release train leaves on Thursdays.")
        return store.store_id


@contextmanager
def keyring_on(
    location: str, unlock: Unlock | None = None
) -> Iterator[tuple[Keyring, AuthenticatedBackend, AuditLog]]:
    """A keyring opened on a store's back-end directly, as a store builds one (no Store)."""
    backend: Backend = open_backend(location)
    try:
        meta = backend.get_meta()
        opened = unlock or Unlock()
        master = Keyring.unlock_master(meta, opened)
        audit_key = Keyring.audit_key(master, meta)
        audit = AuditLog(backend, audit_key)
        records = authenticated(backend, master.store_id, audit_key, audit)
        yield Keyring(records, audit.append, master, opened), records, audit
    finally:
        backend.close()


def _row(records: AuthenticatedBackend, name: str = "work") -> PersonaRow:
    return next(p for p in records.personas() if p.name == name)


# -- creating and unlocking ---------------------------------------------------------------------
def test_a_key_file_master_is_written_outside_the_store_and_found_again(tmp_path: Path) -> None:
    new = Keyring.create_master("s_test1", str(tmp_path / "store"))
    path = default_key_file("s_test1")
    assert new.key_file == path and read_key_file(path) == new.master.raw
    assert new.settings["key_mode"] == "key-file" and new.settings["key_file"] == str(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    meta = {"store_id": "s_test1", **new.settings}
    assert Keyring.unlock_master(meta, Unlock()).raw == new.master.raw
    new.discard()
    assert not path.exists()
    with pytest.raises(MissingKeyError):
        Keyring.unlock_master(meta, Unlock())


def test_each_way_of_unlocking_opens_the_store_it_made(tmp_path: Path) -> None:
    key = new_key()
    key_file = tmp_path / "elsewhere" / "store.key"
    ways: dict[str, tuple[dict[str, Any], Unlock]] = {
        "passphrase": ({"passphrase": PASSPHRASE}, Unlock(passphrase=PASSPHRASE)),
        "key": ({"key": key}, Unlock(key=encode_key(key))),
        "key-file": ({"key_file": key_file}, Unlock(key_file=key_file)),
    }
    for mode, (how, unlock) in ways.items():
        location = str(tmp_path / mode)
        _create(location, **how)
        with keyring_on(location, unlock) as (keyring, records, _):
            assert records.get_meta()["key_mode"] == mode
            data_key = keyring.unlock(_row(records))
            assert len(data_key) == 32
    # And from the environment, which Store.open documents as the next place to look.
    os.environ[ENV_PASSPHRASE] = PASSPHRASE
    try:
        with keyring_on(str(tmp_path / "passphrase")) as (keyring, records, _):
            assert keyring.unlock(_row(records))
    finally:
        del os.environ[ENV_PASSPHRASE]
    os.environ[ENV_KEY] = encode_key(key)
    try:
        with keyring_on(str(tmp_path / "key")) as (keyring, records, _):
            assert keyring.unlock(_row(records))
    finally:
        del os.environ[ENV_KEY]


def test_the_wrong_secret_is_a_typed_error_and_no_key_is_missing_key(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    _create(location, passphrase=PASSPHRASE)
    meta = open_backend(location)
    try:
        settings = meta.get_meta()
    finally:
        meta.close()
    with pytest.raises(WrongKeyError):
        Keyring.unlock_master(settings, Unlock(passphrase=OTHER))
    with pytest.raises(WrongKeyError):
        Keyring.unlock_master(settings, Unlock(key=new_key()))
    with pytest.raises(WrongKeyError):
        Keyring.unlock_master(settings, Unlock(key="not base64 of a key"))
    with pytest.raises(MissingKeyError):
        Keyring.unlock_master(settings, Unlock(key_file=tmp_path / "no.key"))
    with pytest.raises(MissingKeyError):
        Keyring.unlock_master(settings, Unlock())


def test_creating_refuses_bad_secrets_and_writes_nothing(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    with pytest.raises(InvalidInputError):
        Keyring.create_master("s_two", location, passphrase=PASSPHRASE, key=new_key())
    with pytest.raises(WeakPassphraseError):
        Keyring.create_master("s_weak", location, passphrase="password1")
    with pytest.raises(InvalidInputError):
        Keyring.create_master("s_inside", location, key_file=Path(location) / "k.key")
    taken = tmp_path / "taken.key"
    taken.write_text("someone else's\n")
    with pytest.raises(StoreExistsError):
        Keyring.create_master("s_taken", location, key_file=taken)
    assert taken.read_text() == "someone else's\n"
    assert not default_key_file("s_two").exists() and not default_key_file("s_weak").exists()


# -- wrapping ----------------------------------------------------------------------------------
def test_wrap_and_unlock_round_trip_by_master_and_by_secret(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    _create(location)
    with keyring_on(location) as (keyring, records, _):
        row = _row(records)
        data_key = new_key()
        wrapped, kdf = keyring.wrap("p_new", data_key)
        assert kdf is None
        assert keyring.unlock(_like(row, "p_new", wrapped, None)) == data_key

        secret = Secret(passphrase=PASSPHRASE)
        sealed, kdf = keyring.wrap("p_new", data_key, secret)
        assert kdf is not None and kdf.startswith("argon2id:")
        locked = _like(row, "p_new", sealed, kdf)
        assert keyring.unlock(locked, secret) == data_key
        with pytest.raises(UnlockError):
            keyring.unlock(locked)  # sealed: the master key is not asked
        with pytest.raises(WrongKeyError):
            keyring.unlock(locked, Secret(passphrase=OTHER))
        with pytest.raises(WrongKeyError):
            keyring.unlock(locked, Secret(key_file=tmp_path / "a.key"))
        with pytest.raises(IntegrityError):
            keyring.unlock(_like(row, "p_new", sealed, None))  # the master cannot open it
        # A wrap is bound to its persona id: moved to another persona it opens nothing.
        with pytest.raises(IntegrityError):
            keyring.unlock(_like(row, "p_other", wrapped, None))


def test_a_key_file_secret_is_created_when_sealing_with_a_new_one(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    _create(location)
    employer = tmp_path / "employer" / "work.key"
    employer.parent.mkdir()
    with keyring_on(location) as (keyring, records, audit):
        row = _row(records)
        data_key = keyring.unlock(row)
        keyring.seal(row, Secret(key_file=employer))
        assert employer.is_file()
        sealed = _row(records)
        assert sealed.sealed and sealed.seal_kdf == "key-file"
        assert keyring.unlock(sealed, Secret(key_file=employer)) == data_key
        with pytest.raises(UnlockError):
            keyring.unlock(sealed)
        keyring.unseal(sealed, Secret(key_file=employer))
        assert not _row(records).sealed and keyring.unlock(_row(records)) == data_key
        assert audit.verify().ok
    with Store.open(location) as store:
        events = [e.event for e in store.audit("work")]
        assert events[-2:] == ["persona_sealed", "persona_unsealed"]


def _like(row: PersonaRow, persona_id: str, wrapped: bytes, kdf: str | None) -> PersonaRow:
    return replace(row, id=persona_id, wrapped_key=wrapped, sealed=kdf is not None, seal_kdf=kdf)


# -- rotation in another process ----------------------------------------------------------------
def _rotate_elsewhere(location: str, passphrase: str | None, key: bytes | None) -> None:
    with Store.open(location, key=key) as store:
        store.rotate_key(passphrase=passphrase)


def _in_another_process(
    location: str, passphrase: str | None = None, key: bytes | None = None
) -> None:
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=_rotate_elsewhere, args=(location, passphrase, key))
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == 0


def test_a_keyring_picks_up_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    store_id = _create(location)
    old_key = read_key_file(default_key_file(store_id))
    with keyring_on(location) as (keyring, records, _):
        before = keyring.unlock(_row(records))
        assert keyring.refresh() is False  # nothing changed yet
        _in_another_process(location)
        assert read_key_file(default_key_file(store_id)) != old_key
        # The row as it is now is wrapped by the new master key: the keyring in hand fails
        # to open it, notices the new key check, re-reads the replaced key file and retries.
        assert keyring.unlock(_row(records)) == before
        assert keyring.refresh() is False  # already picked up
        wrapped, _ = keyring.wrap("p_after", before)
    # The new key file opens the store; the wrap made after the rotation is good.
    with Store.open(location) as again, again.enter(floor="office") as s:
        assert [m.text for m in s.memories().items] == ["The release train leaves on Thursdays."]
    with keyring_on(location) as (fresh, records, _):
        assert fresh.unlock(_like(_row(records), "p_after", wrapped, None)) == before


def test_a_store_opened_before_a_rotation_elsewhere_keeps_working(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    _create(location)
    with Store.open(location) as first:
        _in_another_process(location)
        # Adding a persona wraps its key under the master key in force (picked up under the
        # writer lock), so the store opened after can wake it.
        first.add_persona("home")
        first.add_floor("house", persona="home")
        with first.enter(floor="office") as s:
            assert s.count() == 1
    with Store.open(location) as again:
        with again.enter(floor="house") as s:
            assert s.count() == 0
        assert [e.event for e in again.audit()].count("key_rotated") == 1
        assert again.verify_audit().ok


def test_a_store_opened_with_a_retired_explicit_key_gets_a_typed_error(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    key = new_key()
    _create(location, key=key)
    with Store.open(location, key=key) as first:
        _in_another_process(location, PASSPHRASE, key)
        with pytest.raises(UnlockError, match="rotated by another process"):
            first.enter(floor="office")
    with Store.open(location, passphrase=PASSPHRASE) as again, again.enter(floor="office") as s:
        assert s.count() == 1


def test_a_rotation_committed_while_a_keyring_catches_up_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rotations elsewhere, the second landing inside the keyring's catch-up: between its
    read of the settings and its read of the key file (the file then holds a newer key than
    the check it read), and between the catch-up and its re-read of the persona's row (wrapped
    by a newer key than the one just picked up). Both are followed, not taken for a retired
    key or for tampering. Seen as an ``UnlockError`` in a writer racing a rotation in CI."""
    import severance.keys as keys_module

    location = str(tmp_path / "store")
    _create(location)
    real_find, real_open = keys_module.find_master_key, keys_module.open_master
    with keyring_on(location) as (keyring, records, _):
        before = keyring.unlock(_row(records))
        for where in ("before the key file is read", "after the new key is picked up"):
            _in_another_process(location)  # the keyring in hand is now one rotation behind
            stale = _row(records)
            rotated: list[str] = []

            def find(*args: Any, where: str = where, rotated: list[str] = rotated) -> bytes:
                if where.startswith("before") and not rotated:
                    rotated.append(where)
                    _in_another_process(location)
                return real_find(*args)

            def open_(*args: Any, where: str = where, rotated: list[str] = rotated) -> Any:
                master = real_open(*args)
                if where.startswith("after") and not rotated:
                    rotated.append(where)
                    _in_another_process(location)
                return master

            monkeypatch.setattr(keys_module, "find_master_key", find)
            monkeypatch.setattr(keys_module, "open_master", open_)
            assert keyring.unlock(stale) == before, where
            assert rotated == [where]
            monkeypatch.undo()
            assert keyring.refresh() is False  # it holds the newest key
    with Store.open(location) as again, again.enter(floor="office") as s:
        assert s.count() == 1
        assert [e.event for e in again.audit()].count("key_rotated") == 4


def test_a_rotation_whose_commit_answer_is_lost_keeps_its_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation's COMMIT reached the database, but its answer did not come back (a
    dropped connection): the store now expects the new key, so the new key file is
    installed, not destroyed as if nothing had committed (no key would open the store)."""
    from severance.errors import StorageError

    location = str(tmp_path / "store")
    _create(location)
    with keyring_on(location) as (keyring, records, _):
        real = records.transaction
        depth = [0]

        @contextmanager
        def answer_lost() -> Iterator[None]:
            depth[0] += 1
            try:
                with real():
                    yield
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise StorageError("the connection to the database was lost")

        monkeypatch.setattr(records, "transaction", answer_lost)
        keyring.rotate()
        monkeypatch.undo()
    with Store.open(location) as again, again.enter(floor="office") as s:
        assert s.count() == 1
        assert [e.event for e in again.audit()].count("key_rotated") == 1
