"""The key hierarchy: one master key per store, one data key per persona.

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
data directory alone opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import (
    InvalidInputError,
    MissingKeyError,
    UnlockError,
    WeakPassphraseError,
    WrongKeyError,
)
from .seal import KEY_BYTES, Sealer, aad, new_key

__all__ = [
    "KdfParams",
    "MasterKey",
    "Secret",
    "SecretKey",
    "check_key_file_place",
    "check_new_passphrase",
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
# One message whatever the store's key mode: opening someone else's store by name must not
# tell whether a passphrase or a key file locks it.
_NO_KEY = (
    f"this store needs its key: give its passphrase (or set {ENV_PASSPHRASE}), its key file"
    f" (--key-file, {ENV_KEY_FILE}), or set {ENV_KEY}"
)


#: Argon2id cost for new passphrases: RFC 9106's second recommended option (3 passes over
#: 64 MiB, 4 lanes). Recorded beside the salt, so it can be raised for new keys later.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_LANES = 4
#: zxcvbn score a new passphrase must reach (0-4; 3 = about 10^8 guesses or more). With the
#: Argon2id cost above, that is years of one core per passphrase found.
MIN_PASSPHRASE_SCORE = 3


@dataclass(frozen=True)
class KdfParams:
    """Passphrase KDF parameters, stored beside the salt so they can be raised later.

    New passphrases use Argon2id (memory-hard); stores made before keep their scrypt
    parameters and still open (``severance keys rotate --passphrase`` moves them to Argon2id).
    For Argon2id ``n`` is the memory in KiB, ``r`` the number of passes, ``p`` the lanes; for
    scrypt they are scrypt's own N, r and p.
    """

    salt: bytes
    n: int = 2**15
    r: int = 8
    p: int = 1
    algorithm: str = "scrypt"

    def to_text(self) -> str:
        salt = base64.urlsafe_b64encode(self.salt).decode()
        return f"{self.algorithm}:{self.n}:{self.r}:{self.p}:{salt}"

    @classmethod
    def from_text(cls, text: str) -> KdfParams:
        try:
            name, n, r, p, salt = text.split(":")
            if name not in ("scrypt", "argon2id"):
                raise ValueError(name)
            return cls(base64.urlsafe_b64decode(salt), int(n), int(r), int(p), name)
        except (ValueError, binascii.Error):
            raise UnlockError("the store's key-derivation parameters are unreadable") from None

    @classmethod
    def fresh(cls) -> KdfParams:
        """Parameters for a new passphrase: Argon2id at the stated cost, a new salt."""
        return cls(os.urandom(16), ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_LANES, "argon2id")


def check_new_passphrase(passphrase: str) -> None:
    """Refuse a new passphrase that is easy to guess (zxcvbn's estimate, not its length)."""
    if not isinstance(passphrase, str) or not passphrase:
        raise InvalidInputError("a passphrase may not be empty")
    from zxcvbn import zxcvbn  # imported here: a 1 MB dictionary, needed only when creating

    # zxcvbn's matching is quadratic-ish in length; its first 100 characters decide anyway.
    result = zxcvbn(passphrase[:100])
    if int(result["score"]) < MIN_PASSPHRASE_SCORE:
        hint = result.get("feedback", {}).get("warning") or "add words nobody would guess"
        raise WeakPassphraseError(
            f"that passphrase is too easy to guess ({hint.rstrip('.')}); use four or more"
            " unrelated words, or a key file"
        )


def derive_passphrase_key(passphrase: str, params: KdfParams) -> bytes:
    if not passphrase:
        raise InvalidInputError("a passphrase may not be empty")
    if params.algorithm == "argon2id":
        if not (8 <= params.n <= 4 * 1024 * 1024 and 1 <= params.r <= 64 and 1 <= params.p <= 64):
            raise UnlockError("the store's key-derivation parameters are out of range")
        return hash_secret_raw(
            passphrase.encode("utf-8", "surrogatepass"),
            params.salt,
            time_cost=params.r,
            memory_cost=params.n,
            parallelism=params.p,
            hash_len=KEY_BYTES,
            type=Type.ID,
        )
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
