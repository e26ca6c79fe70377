"""The key hierarchy and its lifecycle: one master key per store, one data key per persona.

    passphrase ──Argon2id (scrypt: older stores)──┐
    key file ────────────┼──> master key ──HKDF──> wrapping key ──wraps──> persona data keys
    SEVERANCE_KEY ───────┘                                         └─wraps──> audit key (HMAC)
    persona secret (sealed persona) ──Argon2id/key file──> that persona's own wrapping key

The audit key is random and wrapped like a data key, so rotating the master key re-wraps it
and the existing chain still verifies.

Data keys seal memory text, metadata and vectors. A *sealed* persona's data key is wrapped
only by its own secret, so the person's master key cannot open it. Destroying a persona's
wrapped data key (clean slate) makes every ciphertext of that persona unrecoverable.

Key files hold the key as URL-safe base64 on one line and live outside the data directory
(by default ``$XDG_CONFIG_HOME/severance/keys/<store id>.key``, mode 0600), so a copy of the
data directory alone opens nothing (see :mod:`severance.keyfiles`; passphrases:
:mod:`severance.passphrases`).

The lifecycle is a :class:`Keyring`: :meth:`Keyring.create_master` makes a new store's master
key (and the settings that record how it is unlocked), :meth:`Keyring.unlock_master` opens an
existing one; the keyring of an open store then unlocks and wraps persona data keys, seals and
unseals personas, rotates the master key and picks up a rotation made by another process.
It is handed its collaborators — the store's (authenticated) settings and persona records, and
the audit log's ``append`` — and knows nothing of the store above it.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import validate
from .errors import (
    IntegrityError,
    InvalidInputError,
    MissingKeyError,
    PersonaNotFoundError,
    SeveranceError,
    StoreExistsError,
    UnlockError,
    WrongKeyError,
)
from .keyfiles import (
    check_key_file_place,
    decode_key,
    default_key_dir,
    default_key_file,
    destroy_key_file,
    encode_key,
    read_key_file,
    write_key_file,
)
from .passphrases import KdfParams, check_new_passphrase, derive_passphrase_key
from .rotation import NewKeyFile, retire_key_file
from .seal import KEY_BYTES, Sealer, aad, new_key

__all__ = [
    "AUDIT_KEY_ID",
    "KdfParams",
    "KeyStorage",
    "Keyring",
    "LockedKey",
    "MasterKey",
    "NewMaster",
    "Secret",
    "SecretKey",
    "Unlock",
    "check_key_file_place",
    "check_new_passphrase",
    "decode_key",
    "default_key_dir",
    "default_key_file",
    "derive_passphrase_key",
    "destroy_key_file",
    "encode_key",
    "find_master_key",
    "key_bytes",
    "read_key_file",
    "write_key_file",
]

#: A raw master key: 32 bytes, or their URL-safe base64.
KeyInput = bytes | str

ENV_KEY = "SEVERANCE_KEY"
ENV_KEY_FILE = "SEVERANCE_KEY_FILE"
ENV_PASSPHRASE = "SEVERANCE_PASSPHRASE"
_CHECK_PLAINTEXT = b"severance master key check"
# One message whatever the store's key mode: opening someone else's store by name must not
# tell whether a passphrase or a key file locks it.
_NO_KEY = (
    f"this store needs its key: give its passphrase (or set {ENV_PASSPHRASE}), its key file"
    f" (--key-file, {ENV_KEY_FILE}), or set {ENV_KEY}"
)


def _hkdf(key: bytes, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label.encode()).derive(
        key
    )


class MasterKey:
    """An unlocked store master key and the subkeys derived from it."""

    def __init__(self, key: bytes, store_id: str) -> None:
        if len(key) != KEY_BYTES:
            raise WrongKeyError("a master key has 256 bits")
        self.store_id = store_id
        self._wrap = Sealer(_hkdf(key, "severance wrap"))
        self._raw = key

    @classmethod
    def generate(cls, store_id: str) -> MasterKey:
        return cls(new_key(), store_id)

    @property
    def raw(self) -> bytes:
        return self._raw

    def check_value(self) -> bytes:
        """A sealed constant stored with the store: opening it proves the key is right."""
        return self._wrap.seal(_CHECK_PLAINTEXT, aad(self.store_id, "key-check"))

    def verify(self, check_value: bytes) -> None:
        try:
            ok = self._wrap.open(check_value, aad(self.store_id, "key-check")) == _CHECK_PLAINTEXT
        except Exception:
            ok = False
        if not ok:
            raise WrongKeyError("this key does not unlock the store")

    def wrap(self, persona_id: str, data_key: bytes) -> bytes:
        return self._wrap.seal(data_key, aad(self.store_id, persona_id, "data-key"))

    def unwrap(self, persona_id: str, wrapped: bytes) -> bytes:
        return self._wrap.open(wrapped, aad(self.store_id, persona_id, "data-key"))


@dataclass(frozen=True)
class Secret:
    """A sealed persona's own secret: a passphrase or a key file (exactly one)."""

    # repr=False: a secret must never reach a log line or a traceback through its repr.
    passphrase: str | None = field(default=None, repr=False)
    key_file: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if (self.passphrase is None) == (self.key_file is None):
            raise InvalidInputError("a secret is either a passphrase or a key file")
        if self.passphrase is not None and not self.passphrase:
            raise InvalidInputError("a passphrase may not be empty")

    def kdf_text(self) -> str:
        """What to record beside the wrapped key (never the secret itself). Called when a
        persona is sealed with this secret, so a weak new passphrase is refused here."""
        if self.passphrase is not None:
            check_new_passphrase(self.passphrase)
        return "key-file" if self.key_file is not None else KdfParams.fresh().to_text()

    def derive(self, store_id: str, kdf_text: str | None) -> SecretKey:
        """The wrapping key this secret gives, under the parameters recorded for the persona."""
        if kdf_text == "key-file":
            if self.key_file is None:
                raise WrongKeyError("this persona is sealed with a key file, not a passphrase")
            return SecretKey(read_key_file(Path(self.key_file).expanduser()), store_id)
        if self.passphrase is None or kdf_text is None:
            raise WrongKeyError("this persona is sealed with a passphrase, not a key file")
        return SecretKey(
            derive_passphrase_key(self.passphrase, KdfParams.from_text(kdf_text)), store_id
        )


class SecretKey:
    """The wrapping key of a sealed persona: derived from its own passphrase or key file."""

    def __init__(self, key: bytes, store_id: str) -> None:
        self.store_id = store_id
        self._wrap = Sealer(_hkdf(key, "severance persona seal"))

    def wrap(self, persona_id: str, data_key: bytes) -> bytes:
        return self._wrap.seal(data_key, aad(self.store_id, persona_id, "sealed-data-key"))

    def unwrap(self, persona_id: str, wrapped: bytes) -> bytes:
        try:
            return self._wrap.open(wrapped, aad(self.store_id, persona_id, "sealed-data-key"))
        except Exception:
            raise WrongKeyError("this secret does not unlock the persona") from None


def key_bytes(key: KeyInput) -> bytes:
    if isinstance(key, bytes):
        if len(key) != 32:
            raise InvalidInputError("a raw key has 32 bytes")
        return key
    return decode_key(key, what="the key")


def find_master_key(
    meta: Mapping[str, str],
    passphrase: str | None,
    key: KeyInput | None,
    key_file: str | os.PathLike[str] | None,
) -> bytes:
    if key is not None:
        return key_bytes(key)
    if key_file is not None:
        return read_key_file(Path(key_file).expanduser())
    if passphrase is not None:
        if not meta.get("kdf"):
            raise WrongKeyError("this key does not unlock the store")
        return derive_passphrase_key(passphrase, KdfParams.from_text(meta["kdf"]))
    if os.environ.get(ENV_KEY):
        return decode_key(os.environ[ENV_KEY], what=ENV_KEY)
    if os.environ.get(ENV_KEY_FILE):
        return read_key_file(Path(os.environ[ENV_KEY_FILE]).expanduser())
    if meta.get("key_mode") == "passphrase":
        if os.environ.get(ENV_PASSPHRASE):
            return derive_passphrase_key(
                os.environ[ENV_PASSPHRASE], KdfParams.from_text(meta["kdf"])
            )
        raise MissingKeyError(_NO_KEY)
    if meta.get("key_mode") == "key-file":
        path = Path(meta.get("key_file") or default_key_file(meta["store_id"]))
        pending = path.with_name(path.name + ".new")
        # A rotation writes the new key to ``pending``, commits, then renames it over
        # ``path``; in another process any step may happen between two of ours. So try the
        # pending key first and keep it only if it is the one the store now expects (a partly
        # written or not-yet-committed one is not); never delete it — a rotation still in
        # flight would lose the key it is about to commit, and it cleans up after itself.
        try:
            candidate = read_key_file(pending)
            MasterKey(candidate, meta["store_id"]).verify(base64.b64decode(meta["key_check"]))
        except (UnlockError, InvalidInputError):
            pass  # absent, unreadable, half-written or not (yet) the store's key
        else:
            # Finish a rotation that died before its rename (or the rotating process did first).
            with contextlib.suppress(FileNotFoundError):
                os.replace(pending, path)
            return candidate
        if not path.exists():
            raise MissingKeyError(_NO_KEY)
        return read_key_file(path)
    raise MissingKeyError(_NO_KEY)


# -- the keyring: the key lifecycle of one store ---------------------------------------------
#: How many rotations by other processes one unlock follows before it gives up (each needs a
#: committed transaction, so more than a few in one unlock means someone rotates in a loop).
_ROTATION_RETRIES = 8
_ROTATING = "the store's master key kept being rotated by another process; try again"
#: The id the audit key is wrapped under (like a persona's data key).
AUDIT_KEY_ID = "audit"
Audit = Callable[..., object]


class LockedKey(Protocol):
    """A persona's wrapped data key as its record holds it (a ``PersonaRow`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def wrapped_key(self) -> bytes: ...
    @property
    def sealed(self) -> bool: ...
    @property
    def seal_kdf(self) -> str | None: ...


class KeyStorage(Protocol):
    """What a keyring reads and writes: the store's settings and persona key wraps, through
    the record checks (:class:`severance.records.AuthenticatedBackend` is one)."""

    @property
    def url(self) -> str: ...
    def get_meta(self) -> Mapping[str, str]: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def personas(self) -> Sequence[LockedKey]: ...
    def rewrap_personas(self, wraps: Mapping[str, tuple[bytes, str | None]]) -> None: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def lock(self) -> None: ...


@dataclass(frozen=True)
class Unlock:
    """What a process opened a store with (kept to follow a rotation made elsewhere)."""

    # repr=False: a secret must never reach a log line or a traceback through its repr.
    passphrase: str | None = field(default=None, repr=False)
    key: KeyInput | None = field(default=None, repr=False)
    key_file: str | os.PathLike[str] | None = None


@dataclass(frozen=True)
class NewMaster:
    """A new store's master key, and the settings that record how it is unlocked."""

    master: MasterKey
    settings: dict[str, str]
    key_file: Path | None = None

    def discard(self) -> None:
        """The store was not created after all: remove the key file written for it."""
        if self.key_file is not None:
            self.key_file.unlink(missing_ok=True)


def open_master(meta: Mapping[str, str], unlock: Unlock, store_id: str) -> MasterKey:
    """The master key ``unlock`` (or the environment, or the recorded key file) gives,
    checked against the store's key check value."""
    raw = find_master_key(meta, unlock.passphrase, unlock.key, unlock.key_file)
    master = MasterKey(raw, store_id)
    master.verify(base64.b64decode(meta["key_check"]))
    return master


def _check_new_passphrase(passphrase: str | None) -> None:
    if passphrase is not None:
        validate.new_passphrase(passphrase)
        check_new_passphrase(passphrase)


class Keyring:
    """The keys of one open store: its master key, and the wrapping of every persona's data
    key by the master key or by the persona's own secret.

    Built by the store once the records are authenticated (which needs the audit key, which
    needs the master key): see :meth:`unlock_master` and :meth:`audit_key` for the steps
    before.
    """

    def __init__(
        self, storage: KeyStorage, audit: Audit, master: MasterKey, unlock: Unlock = Unlock()
    ) -> None:
        self._storage = storage
        self._audit = audit
        self._master = master
        self._unlock = unlock
        # The check value of the key in hand: another one in the settings means a rotation.
        self._key_check = storage.get_meta()["key_check"]

    # -- before a keyring exists --------------------------------------------------------------
    @staticmethod
    def create_master(
        store_id: str,
        location: str,
        *,
        passphrase: str | None = None,
        key: KeyInput | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> NewMaster:
        """A master key for a new store: derived from ``passphrase``, taken from ``key``, or
        random and written to ``key_file`` (default: the store's default key file)."""
        if sum(x is not None for x in (passphrase, key, key_file)) > 1:
            raise InvalidInputError("give at most one of passphrase, key and key_file")
        _check_new_passphrase(passphrase)
        settings: dict[str, str] = {}
        written: Path | None = None
        if passphrase is not None:
            params = KdfParams.fresh()
            master = MasterKey(derive_passphrase_key(passphrase, params), store_id)
            settings.update(key_mode="passphrase", kdf=params.to_text())
        elif key is not None:
            master = MasterKey(key_bytes(key), store_id)
            settings.update(key_mode="key")
        else:
            master = MasterKey.generate(store_id)
            path = (
                Path(key_file).expanduser().absolute() if key_file else default_key_file(store_id)
            )
            check_key_file_place(path, location)
            try:
                write_key_file(path, master.raw)
            except FileExistsError:
                raise StoreExistsError(f"key file {str(path)!r} already exists") from None
            except OSError as e:
                raise InvalidInputError(
                    f"cannot write key file {str(path)!r}: {e.strerror}"
                ) from None
            written = path
            settings.update(key_mode="key-file", key_file=str(path))
        settings["key_check"] = base64.b64encode(master.check_value()).decode()
        settings["audit_key"] = base64.b64encode(master.wrap(AUDIT_KEY_ID, new_key())).decode()
        return NewMaster(master, settings, written)

    @staticmethod
    def unlock_master(meta: Mapping[str, str], unlock: Unlock) -> MasterKey:
        """Open an existing store's master key. Tried in order: ``unlock``'s passphrase, key
        or key file; the environment (``SEVERANCE_KEY``, ``SEVERANCE_KEY_FILE``,
        ``SEVERANCE_PASSPHRASE``); the key file recorded when the store was created."""
        return open_master(meta, unlock, meta["store_id"])

    @staticmethod
    def audit_key(master: MasterKey, meta: Mapping[str, str]) -> bytes:
        """The store's audit key (it signs the audit chain and, derived, the records)."""
        return master.unwrap(AUDIT_KEY_ID, base64.b64decode(meta["audit_key"]))

    # -- facts --------------------------------------------------------------------------------
    @property
    def store_id(self) -> str:
        return self._master.store_id

    # -- persona data keys --------------------------------------------------------------------
    def wrap(
        self, persona_id: str, data_key: bytes, secret: Secret | None = None
    ) -> tuple[bytes, str | None]:
        """``data_key`` wrapped by the master key, or by ``secret`` alone (then with the
        key-derivation parameters to record beside it)."""
        if secret is None:
            return self._master.wrap(persona_id, data_key), None
        if secret.key_file is not None and not Path(secret.key_file).expanduser().exists():
            # A new sealing key file, e.g. one an employer will keep.
            write_key_file(Path(secret.key_file).expanduser(), new_key())
        kdf = secret.kdf_text()
        return secret.derive(self.store_id, kdf).wrap(persona_id, data_key), kdf

    def unlock(self, row: LockedKey, secret: Secret | None = None) -> bytes:
        """A persona's data key: a sealed one needs its ``secret`` (:class:`UnlockError`
        without it, :class:`WrongKeyError` for the wrong one)."""
        if row.sealed:
            if secret is None:
                raise UnlockError(f"persona {row.name!r} is sealed; it needs its own secret")
            return secret.derive(self.store_id, row.seal_kdf).unwrap(row.id, row.wrapped_key)
        wrapped = row.wrapped_key
        for _ in range(_ROTATION_RETRIES):
            try:
                return self._master.unwrap(row.id, wrapped)
            except IntegrityError:
                # Another process may have rotated the master key since we opened the store
                # (and again after the row we were given, or between two of our reads).
                if not self.refresh():
                    raise
            fresh = next((p for p in self._storage.personas() if p.id == row.id), None)
            if fresh is None:
                raise PersonaNotFoundError(f"no persona named {row.name!r}")
            wrapped = fresh.wrapped_key
        raise UnlockError(_ROTATING)

    def seal(self, row: LockedKey, secret: Secret) -> None:
        """Re-wrap a persona's data key with its own secret instead of the master key."""
        wrapped = self.wrap(row.id, self.unlock(row), secret)
        with self._storage.transaction():
            self._storage.rewrap_personas({row.id: wrapped})
            self._audit("persona_sealed", row.id, row.name)

    def unseal(self, row: LockedKey, secret: Secret) -> None:
        """Wrap a sealed persona's data key with the master key again (needs its secret)."""
        wrapped = self.wrap(row.id, self.unlock(row, secret))
        with self._storage.transaction():
            self._storage.rewrap_personas({row.id: wrapped})
            self._audit("persona_unsealed", row.id, row.name)

    # -- the master key -----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Pick up a key rotation made by another process: True if the master key changed.

        A key-file store re-reads its (replaced) key file; a store opened with an explicit key
        or passphrase that the rotation retired gets a typed error, not "tampered"."""
        meta = self._storage.get_meta()
        if meta.get("key_check") == self._key_check:
            return False
        for _ in range(_ROTATION_RETRIES):
            try:
                master = open_master(meta, self._unlock, self.store_id)
            except (UnlockError, InvalidInputError):
                # A further rotation may have committed and renamed its key file between our
                # read of the settings and our read of the file: the file then holds a newer
                # key than the check we read. Only settings that did not move mean "retired".
                again = self._storage.get_meta()
                if again.get("key_check") == meta.get("key_check"):
                    raise UnlockError(
                        "the store's master key was rotated by another process; the key this"
                        " process was opened with no longer opens it: open the store again"
                        " with the new key"
                    ) from None
                meta = again
                continue
            self._master, self._key_check = master, meta["key_check"]
            return True
        raise UnlockError(_ROTATING)

    def _holds_key_check(self, check: str | None) -> bool | None:
        """Whether the store's settings expect the master key with this check value (None:
        they cannot be read now)."""
        if check is None:
            return False  # failed before it wrote its settings: nothing was committed
        try:
            return self._storage.get_meta().get("key_check") == check
        except SeveranceError:
            return None

    def rotate(
        self,
        *,
        passphrase: str | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> Path | None:
        """Re-wrap every data key (and the audit key) under a new master key, in one
        transaction under the writer lock, so the personas it reads are all there are until
        it commits; a rotation made by another process just before is picked up first.

        The new key comes from ``passphrase``, or is random and written to ``key_file``
        (default: the store's key file; see :mod:`severance.rotation`). Sealed personas keep
        their own secret. Returns the new key file, if any."""
        if passphrase is not None and key_file is not None:
            raise InvalidInputError("give a passphrase or a key file, not both")
        _check_new_passphrase(passphrase)
        meta = self._storage.get_meta()
        current = Path(meta["key_file"]) if meta.get("key_file") else None
        settings: dict[str, str] = {}
        new_file: NewKeyFile | None = None
        if passphrase is not None:
            params = KdfParams.fresh()
            master = MasterKey(derive_passphrase_key(passphrase, params), self.store_id)
            settings.update(key_mode="passphrase", kdf=params.to_text(), key_file="")
        else:
            master = MasterKey.generate(self.store_id)
            new_file = NewKeyFile.prepare(
                master.raw,
                location=self._storage.url,
                store_id=self.store_id,
                key_file=key_file,
                current=current,
            )
            settings.update(key_mode="key-file", key_file=str(new_file.target), kdf="")
        try:
            with self._storage.transaction():
                self._storage.lock()
                self.refresh()  # under the writer lock: a rotation made elsewhere counts
                old = self._master
                audit_key = self.audit_key(old, self._storage.get_meta())
                wraps: dict[str, tuple[bytes, str | None]] = {
                    row.id: (master.wrap(row.id, old.unwrap(row.id, row.wrapped_key)), None)
                    for row in self._storage.personas()
                    if not row.sealed  # wrapped by its own secret, not by the master key
                }
                self._storage.rewrap_personas(wraps)
                settings["key_check"] = base64.b64encode(master.check_value()).decode()
                settings["audit_key"] = base64.b64encode(
                    master.wrap(AUDIT_KEY_ID, audit_key)
                ).decode()
                for name, value in settings.items():
                    self._storage.set_meta(name, value)
                self._audit("key_rotated", personas=len(wraps), key_mode=settings["key_mode"])
        except BaseException:
            landed = self._holds_key_check(settings.get("key_check"))
            if landed is not True:
                if new_file is not None and landed is False:
                    new_file.discard()
                # Unknown (the database cannot be read): the pending key stays, and whoever
                # opens the store next keeps it only if the store turns out to expect it.
                raise
            # The COMMIT reached the database but its answer was lost (a dropped connection):
            # the rotation took effect, and destroying its key would leave none that opens
            # the store. Carry on as committed.
        if new_file is not None:
            new_file.commit()
        target = new_file.target if new_file is not None else None
        retire_key_file(current, target)
        self._master, self._key_check = master, settings["key_check"]
        self._unlock = Unlock(passphrase=passphrase)
        return target
