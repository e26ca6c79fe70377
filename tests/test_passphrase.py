"""Passphrase stores: Argon2id for new keys, scrypt stores still open and can be upgraded, weak
new passphrases refused by a strength estimate (issue 18 item 3; issue 9 item 10)."""

from __future__ import annotations

import os

import pytest

from severance import Store, WeakPassphraseError
from severance.cli import main
from severance.keys import KdfParams, Secret, derive_passphrase_key

STRONG = "ochre lantern drifts over the quiet harbour"


def kdf_of(store: Store) -> str:
    return store._backend.get_meta()["kdf"]


def test_a_new_passphrase_store_uses_argon2id(store_location: str) -> None:
    with Store.init(store_location, passphrase=STRONG) as store:
        assert kdf_of(store).startswith("argon2id:65536:3:4:")
    with Store.open(store_location, passphrase=STRONG) as again:
        assert again.store_id == store.store_id


@pytest.mark.parametrize("weak", ["x", "password1", "bluebird", "qwertyuiop", "summer2024"])
def test_weak_new_passphrases_are_refused_and_nothing_is_made(
    store_location: str, weak: str
) -> None:
    with pytest.raises(WeakPassphraseError, match="too easy to guess"):
        Store.init(store_location, passphrase=weak)
    with Store.init(store_location) as store:  # nothing was left behind by the refusal
        with pytest.raises(WeakPassphraseError):
            store.rotate_key(passphrase=weak)
        store.add_persona("work")
        with pytest.raises(WeakPassphraseError):
            store.seal_persona("work", Secret(passphrase=weak))
        with pytest.raises(WeakPassphraseError):
            store.add_persona("acme", sealed_with=Secret(passphrase=weak))
        assert [p.name for p in store.personas()] == ["work"]
        assert not store.persona("work").sealed


def test_an_old_scrypt_store_opens_and_rotation_upgrades_it(store_location: str) -> None:
    # A store locked the way stores were before Argon2id: scrypt, N=2^15, r=8, p=1.
    old = KdfParams(os.urandom(16))
    assert old.to_text().startswith("scrypt:32768:8:1:")
    with Store.init(store_location, key=derive_passphrase_key(STRONG, old)) as store:
        store.add_persona("work")
        store.add_floor("office", persona="work")
        with store.enter(floor="office") as s:
            kept = s.remember("made before the upgrade")
        store._backend.set_meta("key_mode", "passphrase")
        store._backend.set_meta("kdf", old.to_text())
    with Store.open(store_location, passphrase=STRONG) as store:
        store.rotate_key(passphrase=STRONG)  # the upgrade: same passphrase, Argon2id
        assert kdf_of(store).startswith("argon2id:")
    with Store.open(store_location, passphrase=STRONG) as again, again.enter(floor="office") as s:
        assert s.get(kept.id).text == "made before the upgrade"


def test_the_cli_refuses_a_weak_passphrase_in_one_line(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", "letmein")
    with pytest.raises(SystemExit) as caught:
        main(["init", str(tmp_path) + "/s", "--passphrase"])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.count("\n") == 1 and "too easy to guess" in err
