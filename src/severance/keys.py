"""The key hierarchy: one master key per store, one data key per persona.

    passphrase ──scrypt──┐
    key file ────────────┼──> master key ──HKDF──> wrapping key ──wraps──> persona data keys
    SEVERANCE_KEY ───────┘                                         └─wraps──> audit key (HMAC)
    persona secret (sealed persona) ──scrypt/key file──> that persona's own wrapping key

The audit key is random and wrapped like a data key, so rotating the master key re-wraps it
and the existing chain still verifies.

Data keys seal memory text, metadata and vectors. A *sealed* persona's data key is wrapped
only by its own secret, so the person's master key cannot open it. Destroying a persona's
wrapped data key (clean slate) makes every ciphertext of that persona unrecoverable.

Key files hold the key as URL-safe base64 on one line and live outside the data directory
(by default ``$XDG_CONFIG_HOME/severance/keys/<store id>.key``, mode 0600), so a copy of the
data directory alone opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import InvalidInputError, MissingKeyError, UnlockError, WrongKeyError
from .seal import KEY_BYTES, Sealer, aad, new_key

__all__ = [
    "KdfParams",
    "MasterKey",
    "Secret",
    "SecretKey",
    "check_key_file_place",
    "default_key_file",
    "derive_passphrase_key",
    "destroy_key_file",
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


@dataclass(frozen=True)
class KdfParams:
    """scrypt parameters, stored beside the salt so they can be raised later."""

    salt: bytes
    n: int = 2**15
    r: int = 8
    p: int = 1

    def to_text(self) -> str:
        return f"scrypt:{self.n}:{self.r}:{self.p}:{base64.urlsafe_b64encode(self.salt).decode()}"

    @classmethod
    def from_text(cls, text: str) -> KdfParams:
        try:
            name, n, r, p, salt = text.split(":")
            if name != "scrypt":
                raise ValueError(name)
            return cls(base64.urlsafe_b64decode(salt), int(n), int(r), int(p))
        except (ValueError, binascii.Error):
            raise UnlockError("the store's key-derivation parameters are unreadable") from None

    @classmethod
    def fresh(cls) -> KdfParams:
        return cls(os.urandom(16))


def derive_passphrase_key(passphrase: str, params: KdfParams) -> bytes:
    if not passphrase:
        raise InvalidInputError("a passphrase may not be empty")
    return hashlib.scrypt(
        passphrase.encode(),
        salt=params.salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=256 * 1024 * 1024,
        dklen=KEY_BYTES,
    )


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str, *, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be 32 bytes or their base64 text")
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise WrongKeyError(f"{what} is not a base64-encoded 256-bit key") from None
    if len(key) != KEY_BYTES:
        raise WrongKeyError(f"{what} is not a base64-encoded 256-bit key")
    return key


def default_key_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "severance" / "keys"


def default_key_file(store_id: str) -> Path:
    return default_key_dir() / f"{store_id}.key"


def write_key_file(path: Path, key: bytes) -> None:
    """Write a key file with mode 0600, refusing to overwrite one that exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(encode_key(key) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise MissingKeyError(f"key file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UnlockError(f"key file {str(path)!r} cannot be read: {e}") from None
    if not stat.S_ISREG(mode):
        raise UnlockError(f"key file {str(path)!r} is not a regular file")
    return decode_key(text, what=f"key file {str(path)!r}")


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

    passphrase: str | None = None
    key_file: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if (self.passphrase is None) == (self.key_file is None):
            raise InvalidInputError("a secret is either a passphrase or a key file")
        if self.passphrase is not None and not self.passphrase:
            raise InvalidInputError("a passphrase may not be empty")

    def kdf_text(self) -> str:
        """What to record beside the wrapped key (never the secret itself)."""
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


def check_key_file_place(path: Path, location: str) -> None:
    """A key file must live outside the store directory, or a copy of the data opens it all."""
    if "://" in location:
        return
    store_dir = Path(location).expanduser().absolute()
    if path == store_dir or store_dir in path.parents:
        raise InvalidInputError("the key file must live outside the store directory")


def destroy_key_file(path: Path) -> None:
    """Overwrite a retired key file before unlinking it (best effort on copy-on-write disks)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
    except FileNotFoundError:
        pass


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
        if "kdf" not in meta:
            raise UnlockError("this store is not locked with a passphrase")
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
        raise MissingKeyError(
            f"this store is locked with a passphrase: pass it or set {ENV_PASSPHRASE}"
        )
    if meta.get("key_mode") == "key-file":
        path = Path(meta.get("key_file") or default_key_file(meta["store_id"]))
        pending = path.with_name(path.name + ".new")
        if pending.exists():
            # A rotation committed but died before replacing the key file: finish it if the
            # pending key is the one the store now expects.
            candidate = read_key_file(pending)
            try:
                MasterKey(candidate, meta["store_id"]).verify(base64.b64decode(meta["key_check"]))
            except WrongKeyError:
                # Not (yet) the store's key: a rotation still in flight in another process, or
                # one that died before committing. Never delete it — the first case would lose
                # the key that rotation is about to commit; the rotation cleans up after itself.
                pass
            else:
                os.replace(pending, path)
                return candidate
        return read_key_file(path)
    raise MissingKeyError(f"this store needs its key: pass it or set {ENV_KEY}")
