"""The identity of a memory, as the duplicate check compares it, and a stable key of it.

The rules (what makes two memories the same) are :mod:`severance.duplicates`'s; they live
here, below the index, because the index keeps one :func:`identity_key` per slot: the
duplicate check then finds its leads in the awake index instead of decrypting every memory
of the persona. The key is 64 bits of BLAKE2b over the identity, the same in every process
(unlike Python's salted ``hash``), so it can be saved in the (encrypted) index snapshot. It is
plaintext-derived: it lives only in the index and its encrypted snapshot, never in a database
column (equal keys would tell a reader which memories are equal).

A key is a lead, never proof: the duplicate check compares the live memory itself.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "IDENTITY_VERSION",
    "NO_KEY",
    "Identity",
    "IdentityLookup",
    "identity",
    "identity_key",
    "is_turn",
    "normalise",
]

#: Version of the rules of :func:`identity` and of :func:`identity_key`'s encoding. Index
#: snapshots record it; a snapshot from other rules has its keys derived again from the rows
#: on wake. Bump it whenever either changes what it gives for some memory.
IDENTITY_VERSION = 1
#: The key of a slot whose identity is not known (never a lead).
NO_KEY = 0

Identity = tuple[str, str, frozenset[str], str | None]


def normalise(text: str) -> str:
    """Text as compared for duplicates: NFC, case-folded, white space collapsed."""
    # Case folding can decompose ("ǰ" folds to "ǰ"); compose again so both spellings meet.
    return " ".join(
        unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold()).split()
    )


def is_turn(metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` names a conversation turn (its ``session`` and ``turn``)."""
    return "session" in metadata and "turn" in metadata


def identity(text: str, kind: str, tags: Sequence[str], metadata: Mapping[str, Any]) -> Identity:
    """What two memories share exactly when one may be a duplicate of the other."""
    turn = (
        json.dumps([metadata.get("session"), metadata.get("turn")], sort_keys=True, default=str)
        if is_turn(metadata)
        else None
    )
    return (normalise(text), kind, frozenset(tags), turn)


def identity_key(text: str, kind: str, tags: Sequence[str], metadata: Mapping[str, Any]) -> int:
    """A stable 64-bit key of :func:`identity` (never :data:`NO_KEY`)."""
    norm, kind, tag_set, turn = identity(text, kind, tags, metadata)
    # Each field prefixed by its length: unambiguous, and cheaper than JSON (a turn's field
    # is JSON, never empty, so "" stands for none).
    fields = [norm, kind, turn or "", *sorted(tag_set)]
    encoded = "".join([f"{len(field)}:{field}" for field in fields])
    digest = hashlib.blake2b(encoded.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class IdentityLookup:
    """Slots by identity key, over an index's per-slot ``keys`` (slots only ever appended).

    The slots known at the last sort are found by binary search in a sorted copy; slots
    appended since, in a small table, until they are many enough to sort again. No Python
    object per memory: at a million memories a dict of them would be about 100 MB.
    """

    def __init__(self) -> None:
        self._sorted = np.zeros(0, dtype=np.uint64)
        self._slots = np.zeros(0, dtype=np.int64)
        self._upto = 0  # slots below this are in the sorted copy
        self._tail: dict[int, list[int]] = {}
        self._tail_upto = 0

    def _update(self, keys: npt.NDArray[np.uint64], n: int) -> None:
        if n - self._upto > max(4096, self._upto // 8):
            order = np.argsort(keys[:n], kind="stable")
            self._sorted, self._slots = keys[order], order.astype(np.int64)
            self._upto = self._tail_upto = n
            self._tail = {}
            return
        for slot, key in enumerate(keys[self._tail_upto : n].tolist(), start=self._tail_upto):
            self._tail.setdefault(key, []).append(slot)
        self._tail_upto = n

    def find(
        self,
        keys: npt.NDArray[np.uint64],
        alive: npt.NDArray[np.bool_],
        n: int,
        wanted: Sequence[int],
        limit: int,
    ) -> list[list[int]]:
        """For each key in ``wanted``, up to ``limit`` live slots with it, newest first."""
        self._update(keys, n)
        asked = np.asarray(wanted, dtype=np.uint64)
        lows = np.searchsorted(self._sorted, asked, side="left").tolist()
        highs = np.searchsorted(self._sorted, asked, side="right").tolist()
        out: list[list[int]] = []
        for key, low, high in zip(wanted, lows, highs, strict=True):
            found = [s for s in reversed(self._tail.get(key, ())) if alive[s]][:limit]
            if low < high and len(found) < limit:
                slots = self._slots[low:high]
                live = slots[alive[slots]][::-1]  # sorted stably: newest last
                found.extend(live[: limit - len(found)].tolist())
            out.append(found if key != NO_KEY else [])
        return out
