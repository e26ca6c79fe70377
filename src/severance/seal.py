"""AES-256-GCM sealing with associated data, and key wrapping.

A sealed blob is ``VERSION (1 byte) || nonce (12 bytes) || ciphertext+tag``. The associated
data binds a blob to where it belongs (store id, persona id, memory id, field): a blob copied
into another row, persona or store fails authentication and raises :class:`IntegrityError`
instead of yielding garbage. Nonces are random; 96 bits leave ample margin for the number of
seals one data key will ever see.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError, TamperedRecordError

__all__ = ["KEY_BYTES", "OVERHEAD", "QUARANTINED", "Sealer", "aad", "new_key"]

KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12
_OVERHEAD = 1 + _NONCE_BYTES + 16
#: Bytes a sealed blob has beyond its plaintext.
OVERHEAD = _OVERHEAD
#: Stands in for a wrapped key whose record failed authentication (severance.records): opening
#: it says so, instead of trying a key someone else may have written.
QUARANTINED = b"\x00quarantined"


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def aad(*parts: str) -> bytes:
    """Associated data from labelled parts; the separator cannot occur inside ids."""
    return "\x1f".join(("severance/1", *parts)).encode()


class Sealer:
    """Seals and opens blobs under one 256-bit key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a sealing key has 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes | bytearray | memoryview, associated: bytes) -> bytes:
        """``plaintext`` sealed under a fresh nonce. Any buffer is accepted: a slice of a
        large value (a snapshot chunk) is sealed from a ``memoryview``, not copied first."""
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def seal_into(
        self, plaintext: bytes | bytearray | memoryview, associated: bytes, out: memoryview
    ) -> None:
        """Like :meth:`seal`, writing the sealed blob into ``out`` (exactly
        ``len(plaintext) + OVERHEAD`` bytes) instead of a new object: a large value is sealed
        into one buffer, chunk by chunk, with no per-chunk allocation."""
        size = len(memoryview(plaintext))
        if len(out) != size + _OVERHEAD:
            raise ValueError("the output buffer must be the plaintext's size plus OVERHEAD")
        nonce = os.urandom(_NONCE_BYTES)
        out[:1] = _VERSION
        out[1 : 1 + _NONCE_BYTES] = nonce
        self._aead.encrypt_into(nonce, plaintext, associated, out[1 + _NONCE_BYTES :])

    def open(self, blob: bytes, associated: bytes) -> bytes:
        if blob.startswith(QUARANTINED):
            raise TamperedRecordError(
                "this persona's record was changed outside Severance and is not trusted;"
                " run `severance doctor`",
                "persona",
                blob[len(QUARANTINED) :].decode(errors="replace"),
            )
        if len(blob) < _OVERHEAD or blob[:1] != _VERSION:
            raise IntegrityError("a sealed value is malformed")
        try:
            return self._aead.decrypt(
                blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :], associated
            )
        except InvalidTag:
            raise IntegrityError(
                "a sealed value failed authentication (tampered, moved, or wrong key)"
            ) from None

    def open_into(self, blob: bytes | memoryview, associated: bytes, out: memoryview) -> None:
        """Like :meth:`open`, decrypting into ``out`` (exactly ``len(blob) - OVERHEAD``
        bytes) instead of a new object: large values (index snapshots) are opened into one
        buffer without intermediate copies."""
        view = memoryview(blob)
        if len(view) < _OVERHEAD or view[:1] != _VERSION or len(out) != len(view) - _OVERHEAD:
            raise IntegrityError("a sealed value is malformed")
        try:
            self._aead.decrypt_into(
                view[1 : 1 + _NONCE_BYTES], view[1 + _NONCE_BYTES :], associated, out
            )
        except InvalidTag:
            raise IntegrityError(
                "a sealed value failed authentication (tampered, moved, or wrong key)"
            ) from None
