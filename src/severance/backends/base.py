"""The storage protocol every back-end implements, and the rows it moves.

A back-end stores ciphertext and the few plaintext fields needed for ordering (ids, sequence
numbers, timestamps). It never sees a key and never decrypts. Everything a persona owns is
reached through :meth:`Backend.rows`, which returns a :class:`PersonaRows` handle bound to
one persona id: there is no call that reads memories across personas.

Sequence numbers (``seq``) are store-wide, strictly increasing *in commit order*: a reader
that has seen every change up to ``seq`` S can later ask for "changes after S" and miss
nothing. Every insert, replacement and deletion of a memory takes a new ``seq``.

Writes made inside ``with backend.transaction():`` commit together or not at all; a call made
outside a transaction is its own transaction. A committed transaction is durable (fsync).
Driver errors never escape: back-ends translate them to :class:`severance.errors.StorageError`
(or a more precise :class:`~severance.errors.SeveranceError`) at their boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "COMPACTED_THROUGH",
    "AuditRow",
    "Backend",
    "Changes",
    "FloorRow",
    "HistoryRow",
    "MemoryRow",
    "PassRow",
    "PayloadRow",
    "PersonaRow",
    "PersonaRows",
    "Snapshot",
    "SnapshotOut",
    "SnapshotStream",
    "VectorRows",
    "changes",
]


@dataclass(frozen=True, slots=True)
class PayloadRow:
    """A stored memory without its vector: what reading memories needs (a recall's hits are
    ranked already, a page is ordered by ``learned_at`` and ``seq``). The payload is sealed
    exactly as in the :class:`MemoryRow`, bound to the same id and version."""

    id: str
    seq: int
    version: int
    learned_at: float
    occurred_at: float
    updated_at: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class MemoryRow(PayloadRow):
    """A stored memory. ``payload`` and ``vector`` are sealed with the persona's data key.

    ``seq`` is assigned by the back-end on write; the value passed in is ignored.
    """

    vector: bytes


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """A superseded version of a memory (sealed payload only; vectors are not kept)."""

    memory_id: str
    version: int
    occurred_at: float
    updated_at: float
    replaced_at: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class PersonaRow:
    id: str
    name: str
    created_at: float
    wrapped_key: bytes
    sealed: bool
    seal_kdf: str | None
    embedder: str
    dimension: int
    #: HMAC of the row under the store's record key (see severance.records); b"" if unsigned.
    mac: bytes = b""


@dataclass(frozen=True, slots=True)
class FloorRow:
    name: str
    position: int
    persona_id: str
    rule: str  # JSON of the floor's conditions
    is_default: bool
    #: Stable id: a floor removed and added again under the same name is another floor.
    id: str = ""
    mac: bytes = b""


@dataclass(frozen=True, slots=True)
class PassRow:
    """A pass (an HTTP bearer token) for one floor, and so one persona.

    Only ``token_hash`` (SHA-256 hex of the token) is stored, never the token. Times are epoch
    seconds; ``expires_at`` and ``revoked_at`` are None while they do not apply.
    """

    id: str
    token_hash: str
    floor: str
    persona_id: str
    created_at: float
    expires_at: float | None
    read_only: bool
    revoked_at: float | None
    label: str | None
    #: The id of the floor the pass was issued for (its name is kept for display).
    floor_id: str = ""
    mac: bytes = b""


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: float
    event: str
    persona_id: str | None
    persona: str | None
    detail: str  # canonical JSON
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An encrypted index snapshot: the index as of every change up to ``watermark``."""

    watermark: int
    #: Sealed chunks; a back-end may hand out views (of a mapped file) instead of bytes.
    chunks: tuple[bytes | memoryview, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Each sealed chunk's length (as :attr:`SnapshotStream.sizes`)."""
        return tuple(len(chunk) for chunk in self.chunks)

    def each(self) -> Iterator[bytes | memoryview]:
        """The sealed chunks in order (as :meth:`SnapshotStream.each`)."""
        return iter(self.chunks)


@dataclass(frozen=True, slots=True)
class SnapshotStream:
    """A snapshot to write, sealed chunk by chunk while it is written.

    ``sizes`` are the sealed chunks' lengths (known before any is sealed, so a file's header
    can come first); ``seal(i, out)`` seals chunk ``i`` into ``out`` (``sizes[i]`` bytes).
    :meth:`each` seals them one after the other into one reused buffer: a snapshot of a
    million memories (well over a gigabyte) is never held sealed in memory, and no buffer
    of its size is allocated (faulting one in cost as much as sealing into it)."""

    watermark: int
    sizes: tuple[int, ...]
    seal: Callable[[int, memoryview], None]

    def each(self) -> Iterator[memoryview]:
        """The sealed chunks in order, each valid only until the next one is asked for."""
        scratch = memoryview(bytearray(max(self.sizes, default=0)))
        for i, size in enumerate(self.sizes):
            out = scratch[:size]
            self.seal(i, out)
            yield out


#: What :meth:`PersonaRows.write_snapshot` writes: sealed chunks in hand, or sealed as written.
SnapshotOut = Snapshot | SnapshotStream


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in one persona after a given ``seq``.

    ``changed`` maps memory id to its current ``seq``; ``deleted`` lists ids deleted since;
    ``high_water`` is the largest ``seq`` reported (or the one asked about, if none).

    ``compacted`` is nonzero when tombstones after the ``seq`` asked about were dropped (by
    a snapshot whose watermark is that value, see :meth:`PersonaRows.write_snapshot`): then
    ``deleted`` may miss memories deleted up to it, and only the memories still there (say,
    ``changes_since(0).changed``) tell what is gone. It is not counted in ``high_water``.
    """

    changed: dict[str, int]
    deleted: tuple[str, ...]
    high_water: int
    compacted: int = 0


#: The tombstone id that records how far a persona's tombstones were dropped: its ``seq`` is
#: the highest watermark they were dropped up to. Never a memory id (those start with "m_").
COMPACTED_THROUGH = ""


def changes(seq: int, found: Iterable[tuple[str, int, bool]]) -> Changes:
    """The :class:`Changes` after ``seq`` from the (memory id, seq, deleted) rows a back-end
    read of memories and tombstones (the :data:`COMPACTED_THROUGH` tombstone among them)."""
    changed: dict[str, int] = {}
    deleted: list[str] = []
    high, compacted = seq, 0
    for memory_id, at, gone in found:
        if not gone:
            changed[memory_id] = at
        elif memory_id == COMPACTED_THROUGH:
            compacted = at
            continue
        else:
            deleted.append(memory_id)
        high = max(high, at)
    return Changes(changed, tuple(deleted), high, compacted)


class PersonaRows(Protocol):
    """Storage of one persona's rows. Every method is scoped to :attr:`persona_id`.

    Every write checks, inside its transaction, that the persona still exists, and raises
    :class:`~severance.errors.PersonaNotFoundError` (writing nothing) if it was erased — so a
    process still holding an erased persona's key can never leave rows behind it.
    """

    persona_id: str

    def lock(self) -> None:
        """Inside a transaction: wait for, then keep out, every other writer of the store until
        the transaction ends (so what is read next cannot change before the commit);
        PersonaNotFoundError if the persona is gone."""
        ...

    def alive(self) -> bool:
        """Whether the persona still exists (it is gone after a clean slate)."""
        ...

    def insert(self, rows: Sequence[MemoryRow]) -> list[int]:
        """Insert new memories; returns their assigned ``seq`` values in order."""
        ...

    def replace(self, row: MemoryRow, previous: HistoryRow) -> int:
        """Replace a memory with a new version, keeping ``previous`` in its history.

        Only if the stored version is still ``previous.version``: otherwise
        :class:`~severance.errors.ConflictError` (another writer came first), or
        :class:`~severance.errors.MemoryNotFoundError` if the memory is gone.
        """
        ...

    def delete(self, memory_id: str) -> bool:
        """Delete a memory and its whole history; False if there was none."""
        ...

    def update_vectors(self, vectors: Mapping[str, tuple[int, bytes]]) -> int:
        """Replace the sealed vectors of existing memories (a re-embed); each takes a new seq.

        ``vectors`` maps a memory id to (the version the vector was sealed for, the vector);
        rows at another version are left alone. Returns how many were replaced."""
        ...

    def delete_many(self, memory_ids: Sequence[str]) -> int: ...

    def get(self, memory_id: str) -> MemoryRow | None: ...

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRow]: ...

    def get_payloads(self, memory_ids: Sequence[str]) -> dict[str, PayloadRow]:
        """The rows of ``memory_ids`` that exist, without their vectors (not read at all)."""
        ...

    def payloads_and_high_water(
        self, memory_ids: Sequence[str]
    ) -> tuple[dict[str, PayloadRow], int]:
        """:meth:`get_payloads` and :meth:`high_water` in one read, the high water read no
        later than the rows: when it is what a reader last saw, nothing of this persona had
        changed since when the rows were read (a recall checks its index so, in the round
        trip that fetches its hits)."""
        ...

    def history(self, memory_id: str) -> list[HistoryRow]:
        """Superseded versions, oldest first."""
        ...

    def page(self, offset: int, limit: int, newest_first: bool) -> list[MemoryRow]:
        """Memories ordered by learned time (then id)."""
        ...

    def count(self) -> int: ...

    def scan(self, batch_size: int) -> Iterator[list[MemoryRow]]:
        """Every memory, in batches (used to rebuild an index with no snapshot)."""
        ...

    def changes_since(self, seq: int) -> Changes: ...

    def high_water(self) -> int:
        """The store-wide ``seq`` as of now: nothing of this persona changed after it."""
        ...

    def write_snapshot(self, snapshot: SnapshotOut) -> None:
        """Replace the persona's snapshot; tombstones up to its watermark may be dropped,
        and if they are, the :data:`COMPACTED_THROUGH` tombstone keeps the watermark (so a
        reader of :meth:`changes_since` from before it learns that deletions may be missing).
        Reads ``snapshot.sizes`` and then ``snapshot.each()`` once, in order."""
        ...

    def read_snapshot(self) -> Snapshot | None: ...

    def drop_snapshot(self) -> None: ...


class VectorRows(PersonaRows, Protocol):
    """Persona rows that can also keep *plain* vectors indexed in the database (the
    ``indexed`` vector mode; PostgreSQL + pgvector). The database's administrators can read
    such vectors: a persona opts in explicitly.

    Reached through :meth:`Backend.vector_rows`, on a back-end whose
    :attr:`Backend.indexed_vectors` is true: that flag is the one way to ask for the mode."""

    def enable_vectors(self, dimension: int) -> None: ...

    def disable_vectors(self) -> None: ...

    def vector_dimension(self) -> int | None:
        """The indexed dimension, or None if the persona keeps its vectors sealed."""
        ...

    def set_vectors(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None: ...

    def nearest(self, query: npt.NDArray[np.float32], k: int) -> list[tuple[str, float]]:
        """Memory ids and cosine similarities of the ``k`` nearest vectors, best first."""
        ...


class Backend(Protocol):
    """A store's storage: one SQLite database or one store inside a PostgreSQL database."""

    #: Whether the back-end offers the ``indexed`` vector mode (:meth:`vector_rows`). The one
    #: way to ask for it: a declared capability, never a probe of the rows' methods.
    indexed_vectors: ClassVar[bool]
    url: str

    def exists(self) -> bool:
        """Whether a store has been created here."""
        ...

    def create(self, meta: Mapping[str, str]) -> None:
        """Create the schema and the store's meta entries; StoreExistsError if present."""
        ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def lock(self) -> None:
        """Inside a transaction: wait for, then keep out, every other writer of the store until
        it ends (SQLite's ``BEGIN IMMEDIATE`` already does; PostgreSQL takes the counter row)."""
        ...

    def close(self) -> None: ...

    # -- store-wide settings ------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # -- personas -----------------------------------------------------------------------------
    def personas(self) -> list[PersonaRow]: ...

    def insert_persona(self, row: PersonaRow) -> None: ...

    def update_persona(self, row: PersonaRow) -> None:
        """Rewrite a persona's key material, embedder and MAC (matched by id)."""
        ...

    def delete_persona(self, persona_id: str) -> None:
        """Delete a persona with its wrapped key, memories, history, snapshots, floors and
        passes."""
        ...

    def reclaim(self) -> None:
        """Return freed pages to the file system and truncate logs so that deleted data is
        no longer present in any file of the live store (outside a transaction)."""
        ...

    # -- floors -------------------------------------------------------------------------------
    def floors(self) -> list[FloorRow]: ...

    def insert_floor(self, row: FloorRow) -> None: ...

    def update_floor(self, row: FloorRow) -> None:
        """Rewrite a floor (matched by name): position, persona, rule, default, id, MAC."""
        ...

    def delete_floor(self, name: str) -> bool: ...

    # -- passes -------------------------------------------------------------------------------
    def insert_pass(self, row: PassRow) -> None:
        """Store a new pass; AlreadyExistsError if its id or token hash is taken."""
        ...

    def passes(self) -> list[PassRow]:
        """Every pass, revoked and expired ones included, oldest first."""
        ...

    def pass_by_hash(self, token_hash: str) -> PassRow | None:
        """The pass whose token hashes to ``token_hash`` (exact match on the stored hash)."""
        ...

    def revoke_pass(self, pass_id: str, at: float) -> bool:
        """Set ``revoked_at`` on a pass not yet revoked; False if no such unrevoked pass."""
        ...

    def update_pass(self, row: PassRow) -> None:
        """Rewrite a pass (matched by id): every field but the id and token hash."""
        ...

    # -- audit --------------------------------------------------------------------------------
    def append_audit(self, row: AuditRow) -> None: ...

    def audit_rows(self, persona_id: str | None = None) -> list[AuditRow]:
        """The chain in order; with ``persona_id``, only the entries about that persona."""
        ...

    def last_audit(self) -> AuditRow | None: ...

    def audit_page(self, persona_id: str, before: int | None, limit: int) -> list[AuditRow]:
        """Up to ``limit`` entries about one persona with ``seq`` below ``before`` (None: the
        newest), newest first — to read back from the end only as far as needed."""
        ...

    # -- memories -----------------------------------------------------------------------------
    def rows(self, persona_id: str) -> PersonaRows: ...

    def vector_rows(self, persona_id: str) -> VectorRows:
        """The persona's rows with the indexed-vector methods; only where
        :attr:`indexed_vectors` is true (elsewhere InvalidInputError)."""
        ...
