"""Sealed personas: a data key wrapped only by the persona's own secret, never by the master key.

The person who holds the store's master key (key file, passphrase) can list a sealed persona,
erase it, but not read it. Its secret is a passphrase (scrypt) or a key file (e.g. one kept by
an employer).
"""

from __future__ import annotations

import base64
import itertools
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import severance
from severance import (
    InvalidInputError,
    MemoryNotFoundError,
    MissingKeyError,
    PersonaNotFoundError,
    UnlockError,
    WrongKeyError,
)
from severance.keys import Secret, write_key_file

PASSPHRASE = "correct horse battery staple"
CANARY = "canary-vault-51d2: the merger closes on the 14th"


def raw_tables(location: str) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(Path(location) / "store.db")) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def fingerprint(store: severance.Store, backend_name: str, location: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "audit": [(e.seq, e.event, e.hash) for e in store.audit()],
        "personas": store.personas(),
    }
    if backend_name == "sqlite":
        state["rows"] = raw_tables(location)
    return state


def texts(session: severance.Session) -> list[str]:
    return sorted(m.text for m in session.memories(limit=1000).items)


def random_key_file(path: Path) -> Secret:
    write_key_file(path, os.urandom(32))
    return Secret(key_file=path)


@pytest.fixture
def sqlite_only(backend_name: str) -> None:
    """Ask for it first: it skips before the costlier fixtures are built."""
    if backend_name != "sqlite":
        pytest.skip("reads the SQLite files")


@pytest.fixture(params=["passphrase", "key-file"])
def secret(request: pytest.FixtureRequest, tmp_path: Path) -> Secret:
    if request.param == "passphrase":
        return Secret(passphrase=PASSPHRASE)
    return Secret(key_file=tmp_path / "employer" / "vault.key")  # created on first use


@pytest.fixture
def wrong_secrets(secret: Secret, tmp_path: Path) -> list[Secret]:
    """Secrets that are well-formed but do not open the vault."""
    if secret.passphrase is not None:
        return [
            Secret(passphrase=PASSPHRASE + "!"),
            Secret(passphrase=PASSPHRASE.upper()),
            random_key_file(tmp_path / "other.key"),
        ]
    return [random_key_file(tmp_path / "other.key"), Secret(passphrase=PASSPHRASE)]


@pytest.fixture
def vault(store: severance.Store, secret: Secret) -> severance.Store:
    """A sealed persona ``vault`` (floor ``safe``) holding one canary memory."""
    info = store.add_persona("vault", sealed_with=secret)
    assert info.sealed
    store.add_floor("safe", persona="vault")
    with store.enter(floor="safe", secret=secret) as s:
        s.remember(CANARY, tags=("deal",))
    return store


def test_a_new_sealing_key_file_is_created_private(store: severance.Store, tmp_path: Path) -> None:
    path = tmp_path / "employer" / "keys" / "vault.key"
    store.add_persona("vault", sealed_with=Secret(key_file=path))
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(path.read_text().strip())) == 32


def test_the_master_key_alone_cannot_open_a_sealed_persona(
    vault: severance.Store, store_location: str, backend_name: str
) -> None:
    before = fingerprint(vault, backend_name, store_location)
    with pytest.raises(UnlockError) as caught:
        vault.enter(floor="safe")
    assert not isinstance(caught.value, WrongKeyError)  # refused for want of a secret
    assert fingerprint(vault, backend_name, store_location) == before
    assert {p.name: p.sealed for p in vault.personas()} == {
        "work": False,
        "home": False,
        "side": False,
        "vault": True,
    }

    # A fresh handle holding nothing but the master key is refused the same way.
    with severance.Store.open(store_location) as again:
        with pytest.raises(UnlockError):
            again.enter(floor="safe")
        with pytest.raises(UnlockError):
            again.override("vault", reason="curious", minutes=5)
        with pytest.raises(UnlockError):
            again.reintegrate("vault", "work")
        with pytest.raises(UnlockError):
            again.unseal_persona("vault", Secret(passphrase="guess"))


def test_its_own_secret_opens_it(
    vault: severance.Store, store_location: str, secret: Secret
) -> None:
    with severance.Store.open(store_location) as again:
        with again.enter(floor="safe", secret=secret) as s:
            assert texts(s) == [CANARY]
            (hit,) = s.recall("when does the merger close?", 1)
            assert hit.memory.tags == ("deal",)
            s.remember("second entry")
        with again.enter(floor="safe", secret=secret) as s:
            assert s.count() == 2


def test_a_wrong_secret_is_refused_with_wrong_key_error(
    vault: severance.Store,
    store_location: str,
    backend_name: str,
    wrong_secrets: list[Secret],
    secret: Secret,
    tmp_path: Path,
) -> None:
    before = fingerprint(vault, backend_name, store_location)
    for wrong in wrong_secrets:
        with pytest.raises(WrongKeyError):
            vault.enter(floor="safe", secret=wrong)
        with pytest.raises(WrongKeyError):
            vault.override("vault", reason="try", minutes=1, secret=wrong)
        with pytest.raises(WrongKeyError):
            vault.unseal_persona("vault", wrong)
    missing = Secret(key_file=tmp_path / "no-such.key")
    expected = MissingKeyError if secret.key_file is not None else WrongKeyError
    with pytest.raises(expected):  # both are UnlockErrors
        vault.enter(floor="safe", secret=missing)
    assert fingerprint(vault, backend_name, store_location) == before


def test_a_malformed_key_file_is_refused(vault: severance.Store, tmp_path: Path) -> None:
    junk = tmp_path / "junk.key"
    junk.write_text("not a key\n")
    with pytest.raises(UnlockError):
        vault.enter(floor="safe", secret=Secret(key_file=junk))


def test_a_secret_is_a_passphrase_or_a_key_file() -> None:
    with pytest.raises(InvalidInputError):
        Secret()
    with pytest.raises(InvalidInputError):
        Secret(passphrase="x", key_file="y")
    with pytest.raises(InvalidInputError):
        Secret(passphrase="")


def test_sealing_and_unsealing_an_existing_persona(
    store: severance.Store,
    secret: Secret,
    wrong_secrets: list[Secret],
    store_location: str,
    backend_name: str,
) -> None:
    with store.enter(floor="office") as s:
        s.remember(CANARY)

    info = store.seal_persona("work", secret)
    assert info.sealed and store.persona("work").sealed
    with pytest.raises(UnlockError):
        store.enter(floor="office")
    with store.enter(floor="office", secret=secret) as s:
        assert texts(s) == [CANARY]

    before = fingerprint(store, backend_name, store_location)
    with pytest.raises(InvalidInputError):
        store.seal_persona("work", secret)  # already sealed
    with pytest.raises(WrongKeyError):
        store.unseal_persona("work", wrong_secrets[0])
    with pytest.raises(PersonaNotFoundError):
        store.seal_persona("nobody", secret)
    assert fingerprint(store, backend_name, store_location) == before

    assert not store.unseal_persona("work", secret).sealed
    with store.enter(floor="office") as s:  # the master key opens it again
        assert texts(s) == [CANARY]
    with pytest.raises(InvalidInputError):
        store.unseal_persona("work", secret)  # not sealed any more
    events = [e.event for e in store.audit("work")]
    assert events.index("persona_sealed") < events.index("persona_unsealed")
    assert store.verify_audit().ok


def test_neither_the_secret_nor_the_data_key_is_stored_in_the_clear(
    sqlite_only: None, vault: severance.Store, store_location: str, secret: Secret
) -> None:
    needles = [CANARY.encode()]
    if secret.passphrase is not None:
        needles.append(secret.passphrase.encode())
    else:
        text = Path(secret.key_file).read_text().strip()  # type: ignore[arg-type]
        needles += [text.encode(), base64.urlsafe_b64decode(text)]
    vault.close()
    blob = b"".join(p.read_bytes() for p in Path(store_location).iterdir() if p.is_file())
    for needle in needles:
        assert needle not in blob


# -- isolation with sealed personas among the others ----------------------------------------------
WORDS = ["invoice", "garden", "roadmap", "birthday", "deploy", "recipe", "contract", "holiday"]
# k = 0 plain; 1 sealed with a passphrase; 2 sealed with a key file; 3 sealed after it was written
KINDS = 4
_example = itertools.count()


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, KINDS - 1), st.sampled_from(WORDS)), min_size=1, max_size=10
    )
)
def test_memories_of_a_sealed_persona_never_appear_elsewhere(
    store: severance.Store, tmp_path: Path, plan: list[tuple[int, str]]
) -> None:
    n = next(_example)
    names = [f"iso{n}-{k}" for k in range(KINDS)]
    secrets: list[Secret | None] = [
        None,
        Secret(passphrase=f"ochre lantern {n} drifts sideways"),
        Secret(key_file=tmp_path / f"iso{n}.key"),
        None,
    ]
    for name, secret in zip(names, secrets, strict=True):
        store.add_persona(name, sealed_with=secret)
        store.add_floor(name, persona=name)

    written: list[dict[str, str]] = [{} for _ in range(KINDS)]  # id -> text, per persona
    for k in range(KINDS):
        with store.enter(floor=names[k], secret=secrets[k]) as s:
            for i, (_, word) in enumerate(item for item in plan if item[0] == k):
                text = f"{word} canary-{n}-{k}-{i}"
                written[k][s.remember(text, tags=(word,)).id] = text
    late = Secret(key_file=tmp_path / f"iso{n}-late.key")
    store.seal_persona(names[3], late)
    secrets[3] = late

    for k in range(KINDS):
        if k:
            with pytest.raises(UnlockError):
                store.enter(floor=names[k])
        with store.enter(floor=names[k], secret=secrets[k]) as s:
            assert s.count() == len(written[k])
            assert texts(s) == sorted(written[k].values())
            for other in range(KINDS):
                if other == k:
                    continue
                for memory_id, text in written[other].items():
                    with pytest.raises(MemoryNotFoundError):
                        s.get(memory_id)
                    found = {r.memory.text for r in s.recall(text, 50)}
                    assert found <= set(written[k].values())
                    word = text.split()[0]
                    assert len(s.recall(word, 50, tags=[word], mode="keyword")) == sum(
                        t.startswith(word + " ") for t in written[k].values()
                    )
    for floor in ("office", "house", "studio"):  # the fixture's personas never hold anything
        with store.enter(floor=floor) as s:
            assert s.count() == 0
