"""One persona's rows in SQLite: memories, their history, tombstones and snapshots.

Every statement carries ``persona_id = ?`` bound to the handle, and every write runs in a
transaction of the shared :class:`~severance.backends.sqlite_connection.SQLiteConnection`
(whose ``BEGIN IMMEDIATE`` holds the database's write lock from the start) after checking
that the persona still exists. Index snapshots are files beside the database
(:class:`~severance.backends.snapshot_files.SnapshotFiles`); the ``snapshots`` table only
still holds ones written by older versions, read until the next write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import ConflictError, MemoryNotFoundError, PersonaNotFoundError
from .base import (
    COMPACTED_THROUGH,
    Changes,
    HistoryRow,
    MemoryRow,
    PayloadRow,
    Snapshot,
    SnapshotOut,
    changes,
)
from .snapshot_files import SnapshotFiles
from .sqlite_connection import SQLiteConnection

__all__ = ["SQLitePersonaRows"]

_MEMORY_COLUMNS = "id, seq, version, learned_at, occurred_at, updated_at, payload, vector"
_PAYLOAD_COLUMNS = "id, seq, version, learned_at, occurred_at, updated_at, payload"
#: Ids per ``IN (…)`` list: below SQLite's default limit of bound parameters.
_IDS_PER_QUERY = 500


def _memory(r: Sequence[Any]) -> MemoryRow:
    return MemoryRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), bytes(r[7]))


class SQLitePersonaRows:
    """One persona's rows. Every statement carries ``persona_id = ?`` bound to this handle."""

    def __init__(
        self, connection: SQLiteConnection, snapshot_files: SnapshotFiles, persona_id: str
    ) -> None:
        self._c = connection
        self._files = snapshot_files
        self.persona_id = persona_id

    def lock(self) -> None:
        # BEGIN IMMEDIATE already holds the database's write lock; only check the persona.
        if not self.alive():
            raise PersonaNotFoundError("this persona was erased")

    def alive(self) -> bool:
        return bool(self._c.query("SELECT 1 FROM personas WHERE id = ?", (self.persona_id,)))

    def insert(self, rows: Sequence[MemoryRow]) -> list[int]:
        if not rows:
            return []
        with self._c.transaction():
            self.lock()
            last = self._c.next_seqs(len(rows))
            seqs = list(range(last - len(rows) + 1, last + 1))
            self._c.executemany(
                f"INSERT INTO memories (persona_id, {_MEMORY_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self.persona_id,
                        r.id,
                        seq,
                        r.version,
                        r.learned_at,
                        r.occurred_at,
                        r.updated_at,
                        r.payload,
                        r.vector,
                    )
                    for r, seq in zip(rows, seqs, strict=True)
                ],
            )
        return seqs

    def replace(self, row: MemoryRow, previous: HistoryRow) -> int:
        with self._c.transaction():
            self.lock()
            seq = self._c.next_seqs(1)
            cur = self._c.execute(
                "UPDATE memories SET seq = ?, version = ?, occurred_at = ?, updated_at = ?,"
                " payload = ?, vector = ? WHERE persona_id = ? AND id = ? AND version = ?",
                (
                    seq,
                    row.version,
                    row.occurred_at,
                    row.updated_at,
                    row.payload,
                    row.vector,
                    self.persona_id,
                    row.id,
                    previous.version,
                ),
            )
            if cur.rowcount != 1:
                if self.get(row.id) is None:
                    raise MemoryNotFoundError(row.id)
                raise ConflictError(f"memory {row.id!r} was changed by another writer")
            self._c.execute(
                "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self.persona_id,
                    previous.memory_id,
                    previous.version,
                    previous.occurred_at,
                    previous.updated_at,
                    previous.replaced_at,
                    previous.payload,
                ),
            )
        return seq

    def delete(self, memory_id: str) -> bool:
        return self.delete_many([memory_id]) == 1

    def update_vectors(self, vectors: Mapping[str, tuple[int, bytes]]) -> int:
        done = 0
        with self._c.transaction():
            self.lock()
            for memory_id, (version, vector) in vectors.items():
                cur = self._c.execute(
                    "UPDATE memories SET vector = ?, seq = ? WHERE persona_id = ? AND id = ?"
                    " AND version = ?",
                    (vector, self._c.next_seqs(1), self.persona_id, memory_id, version),
                )
                done += cur.rowcount
        return done

    def delete_many(self, memory_ids: Sequence[str]) -> int:
        deleted = 0
        with self._c.transaction():
            self.lock()
            for memory_id in memory_ids:
                cur = self._c.execute(
                    "DELETE FROM memories WHERE persona_id = ? AND id = ?",
                    (self.persona_id, memory_id),
                )
                if cur.rowcount:
                    deleted += 1
                    self._c.execute(
                        "DELETE FROM history WHERE persona_id = ? AND memory_id = ?",
                        (self.persona_id, memory_id),
                    )
                    self._c.execute(
                        "INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)",
                        (self.persona_id, memory_id, self._c.next_seqs(1)),
                    )
        return deleted

    def get(self, memory_id: str) -> MemoryRow | None:
        rows = self._c.query(
            f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE persona_id = ? AND id = ?",
            (self.persona_id, memory_id),
        )
        return _memory(rows[0]) if rows else None

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRow]:
        return {r[0]: _memory(r) for r in self._select(_MEMORY_COLUMNS, memory_ids)}

    def get_payloads(self, memory_ids: Sequence[str]) -> dict[str, PayloadRow]:
        # The vector is the larger half of a row: left out of the SELECT, it is never copied.
        return {
            r[0]: PayloadRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
            for r in self._select(_PAYLOAD_COLUMNS, memory_ids)
        }

    def payloads_and_high_water(
        self, memory_ids: Sequence[str]
    ) -> tuple[dict[str, PayloadRow], int]:
        with self._c.mutex:  # no write of this connection in between; the counter first
            high = self.high_water()
            return self.get_payloads(memory_ids), high

    def _select(self, columns: str, memory_ids: Sequence[str]) -> Iterator[Any]:
        ids = list(dict.fromkeys(memory_ids))
        for start in range(0, len(ids), _IDS_PER_QUERY):
            part = ids[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(part))
            yield from self._c.query(
                f"SELECT {columns} FROM memories WHERE persona_id = ? AND id IN ({marks})",
                (self.persona_id, *part),
            )

    def history(self, memory_id: str) -> list[HistoryRow]:
        rows = self._c.query(
            "SELECT memory_id, version, occurred_at, updated_at, replaced_at, payload"
            " FROM history WHERE persona_id = ? AND memory_id = ? ORDER BY version",
            (self.persona_id, memory_id),
        )
        return [HistoryRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def page(self, offset: int, limit: int, newest_first: bool) -> list[MemoryRow]:
        order = "DESC" if newest_first else "ASC"
        rows = self._c.query(
            f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE persona_id = ?"
            f" ORDER BY learned_at {order}, seq {order}, id {order} LIMIT ? OFFSET ?",
            (self.persona_id, limit, offset),
        )
        return [_memory(r) for r in rows]

    def count(self) -> int:
        return int(
            self._c.query("SELECT count(*) FROM memories WHERE persona_id = ?", (self.persona_id,))[
                0
            ][0]
        )

    def scan(self, batch_size: int) -> Iterator[list[MemoryRow]]:
        last_seq = -1
        while True:
            rows = self._c.query(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE persona_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (self.persona_id, last_seq, batch_size),
            )
            if not rows:
                return
            batch = [_memory(r) for r in rows]
            last_seq = batch[-1].seq
            yield batch

    def changes_since(self, seq: int) -> Changes:
        # One statement, so one read transaction: two SELECTs in autocommit are two, and a
        # memory written and another forgotten by another process between them would be
        # missed while the forget's larger seq moved the caller's mark past it for good.
        with self._c.mutex:
            found = self._c.query(
                "SELECT 0, id, seq FROM memories WHERE persona_id = ? AND seq > ? "
                "UNION ALL "
                "SELECT 1, memory_id, seq FROM tombstones WHERE persona_id = ? AND seq > ?",
                (self.persona_id, seq, self.persona_id, seq),
            )
        return changes(seq, ((memory_id, s, bool(gone)) for gone, memory_id, s in found))

    def high_water(self) -> int:
        return int(self._c.query("SELECT value FROM counters WHERE name = 'seq'")[0][0])

    def write_snapshot(self, snapshot: SnapshotOut) -> None:
        # The snapshot is a file beside the database (see snapshot_files); the table only
        # still holds snapshots written by older versions, read until the next write.
        files = self._files
        prepared = files.prepare(self.persona_id, snapshot)
        installed = False
        try:
            with self._c.transaction():
                self.lock()  # the persona still exists: no snapshot of an erased one
                current = files.watermark(self.persona_id)
                if current is not None and current > snapshot.watermark:
                    # Another session already saved a newer one and dropped the tombstones it
                    # covers: this older snapshot would bring those deleted memories back.
                    return
                files.install(self.persona_id, prepared)
                installed = True
                self._c.execute("DELETE FROM snapshots WHERE persona_id = ?", (self.persona_id,))
                self._c.execute(
                    "DELETE FROM tombstones WHERE persona_id = ? AND seq <= ? AND memory_id != ?",
                    (self.persona_id, snapshot.watermark, COMPACTED_THROUGH),
                )
                self._c.execute(
                    "INSERT INTO tombstones VALUES (?, ?, ?) ON CONFLICT (persona_id, memory_id)"
                    " DO UPDATE SET seq = max(seq, excluded.seq)",
                    (self.persona_id, COMPACTED_THROUGH, snapshot.watermark),
                )
        finally:
            if not installed:
                files.discard(prepared)

    def read_snapshot(self) -> Snapshot | None:
        in_file = self._files.read(self.persona_id)
        if in_file is not None:
            return in_file
        rows = self._c.query(
            "SELECT watermark, chunk FROM snapshots WHERE persona_id = ? ORDER BY part",
            (self.persona_id,),
        )
        if not rows:
            return None
        return Snapshot(int(rows[0][0]), tuple(bytes(r[1]) for r in rows))

    def drop_snapshot(self) -> None:
        self._c.execute("DELETE FROM snapshots WHERE persona_id = ?", (self.persona_id,))
        self._files.remove(self.persona_id)
