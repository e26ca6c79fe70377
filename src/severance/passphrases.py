"""Passphrases: judging a new one, and deriving a 256-bit key from one (Argon2id; scrypt for
stores made before Argon2id).

The parameters are recorded beside the salt (:class:`KdfParams`), so the cost can be raised
for new keys without locking anyone out of an older store. Used for a store's master key and
for a sealed persona's own secret (see :mod:`severance.keys`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from .errors import InvalidInputError, UnlockError, WeakPassphraseError
from .seal import KEY_BYTES

__all__ = [
    "ARGON2_LANES",
    "ARGON2_MEMORY_KIB",
    "ARGON2_TIME_COST",
    "MIN_PASSPHRASE_SCORE",
    "KdfParams",
    "check_new_passphrase",
    "derive_passphrase_key",
]

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
