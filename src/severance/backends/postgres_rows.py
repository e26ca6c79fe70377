"""One persona's rows in PostgreSQL: memories, their history, tombstones and snapshots.

Every statement names the store and the persona, and runs in a transaction that the shared
:class:`~severance.backends.postgres_connection.PostgresConnection` opened with ``SET LOCAL
severance.persona``, so row-level security hides every other persona's rows from it as well.
Every writer takes its sequence numbers from the store's counter row *first* (see the
``postgres`` module docstring): seq order is commit order and writers cannot deadlock.
Batches travel as arrays (``INSERT … SELECT FROM unnest(…)``, ``= ANY(…)``): one statement,
one round trip, whatever the batch size. (``COPY`` would be quicker still, but PostgreSQL
refuses ``COPY FROM`` into a table under row-level security.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import astuple
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import sql

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
from .postgres_connection import PostgresConnection
from .postgres_vectors import IndexedVectors

__all__ = ["PostgresPersonaRows"]

_MEMORY_COLUMNS = "memory_id, seq, version, learned_at, occurred_at, updated_at, payload, vector"
_PAYLOAD_COLUMNS = "memory_id, seq, version, learned_at, occurred_at, updated_at, payload"
_PAYLOAD_COLUMNS_OF_M = ", ".join(f"m.{c}" for c in _PAYLOAD_COLUMNS.split(", "))
_INSERT_BATCH = 5_000  # rows per INSERT … SELECT FROM unnest(…): bounds one message's size


def _memory(r: Sequence[Any]) -> MemoryRow:
    return MemoryRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), bytes(r[7]))


_INSERT_MEMORIES = f"""
    WITH revived AS (
        DELETE FROM severance.tombstones
        WHERE store_id = %(s)s AND persona_id = %(p)s AND memory_id = ANY(%(id)s::text[])
    )
    INSERT INTO severance.memories (store_id, persona_id, {_MEMORY_COLUMNS})
    SELECT %(s)s, %(p)s, u.* FROM unnest(
        %(id)s::text[], %(seq)s::bigint[], %(version)s::integer[], %(learned)s::float8[],
        %(occurred)s::float8[], %(updated)s::float8[], %(payload)b::bytea[], %(vector)b::bytea[]
    ) AS u
"""

# One statement deletes the memories and their history, numbers a tombstone per deleted id
# (after ``base``, the counter value locked at the start of the transaction) and moves the
# counter past them.
_DELETE_MEMORIES = """
    WITH gone AS (
        DELETE FROM severance.memories
        WHERE store_id = %(s)s AND persona_id = %(p)s AND memory_id = ANY(%(ids)s::text[])
        RETURNING memory_id
    ), numbered AS (
        SELECT memory_id, row_number() OVER (ORDER BY memory_id) AS n FROM gone
    ), old_versions AS (
        DELETE FROM severance.history
        WHERE store_id = %(s)s AND persona_id = %(p)s AND memory_id IN (SELECT memory_id FROM gone)
    ), counter AS (
        UPDATE severance.seq_counters SET last_seq = %(base)s + (SELECT count(*) FROM gone)
        WHERE store_id = %(s)s
    )
    INSERT INTO severance.tombstones (store_id, persona_id, memory_id, seq)
    SELECT %(s)s, %(p)s, memory_id, %(base)s + n FROM numbered
    ON CONFLICT (store_id, persona_id, memory_id) DO UPDATE SET seq = excluded.seq
"""

_WHERE_PERSONA = "WHERE store_id = %(s)s AND persona_id = %(p)s"


class PostgresPersonaRows:
    """One persona's rows. Every statement names the persona, and runs in a transaction whose
    ``severance.persona`` setting makes row-level security hide every other persona's rows.

    The indexed-vector methods (:class:`~severance.backends.base.VectorRows`) are those of an
    :class:`~severance.backends.postgres_vectors.IndexedVectors` on the same connection.
    """

    def __init__(self, connection: PostgresConnection, persona_id: str) -> None:
        self._c = connection
        self.persona_id = persona_id
        self._vectors = IndexedVectors(connection, persona_id)

    def _fetch(self, query: str | sql.Composed, **params: Any) -> list[tuple[Any, ...]]:
        return self._c.fetch(query, params, self.persona_id)

    def _params(self, **params: Any) -> dict[str, Any]:
        return self._c.params(self.persona_id, **params)

    def _locked(self, conn: Any, n: int = 0) -> int:
        """Take ``n`` seqs (the store's writer lock), then check the persona still exists."""
        last = self._c.reserve(conn, n)
        found = conn.execute(
            "SELECT 1 FROM severance.personas WHERE store_id = %s AND persona_id = %s",
            (self._c.store_id, self.persona_id),
        ).fetchone()
        if found is None:
            raise PersonaNotFoundError("this persona was erased")
        return last

    def lock(self) -> None:
        with self._c.tx(self.persona_id) as conn:
            self._locked(conn)

    def alive(self) -> bool:
        return bool(
            self._fetch(
                "SELECT 1 FROM severance.personas WHERE store_id = %(s)s AND persona_id = %(p)s"
            )
        )

    def insert(self, rows: Sequence[MemoryRow]) -> list[int]:
        if not rows:
            return []
        with self._c.tx(self.persona_id) as conn:
            first = self._locked(conn, len(rows)) - len(rows) + 1
            for start in range(0, len(rows), _INSERT_BATCH):
                part = rows[start : start + _INSERT_BATCH]
                conn.execute(
                    _INSERT_MEMORIES,
                    self._params(
                        id=[r.id for r in part],
                        seq=list(range(first + start, first + start + len(part))),
                        version=[r.version for r in part],
                        learned=[r.learned_at for r in part],
                        occurred=[r.occurred_at for r in part],
                        updated=[r.updated_at for r in part],
                        payload=[r.payload for r in part],
                        vector=[r.vector for r in part],
                    ),
                )
        return list(range(first, first + len(rows)))

    def replace(self, row: MemoryRow, previous: HistoryRow) -> int:
        with self._c.tx(self.persona_id) as conn:
            seq = self._locked(conn, 1)
            sid, pid = self._c.store_id, self.persona_id
            new = (row.version, row.occurred_at, row.updated_at, row.payload, row.vector)
            updated = conn.execute(
                "UPDATE severance.memories SET seq = %s, version = %s, occurred_at = %s,"
                " updated_at = %s, payload = %s, vector = %s WHERE store_id = %s"
                " AND persona_id = %s AND memory_id = %s AND version = %s",
                (seq, *new, sid, pid, row.id, previous.version),
            )
            if updated.rowcount != 1:
                if self.get(row.id) is None:
                    raise MemoryNotFoundError(row.id)
                raise ConflictError(f"memory {row.id!r} was changed by another writer")
            conn.execute(  # HistoryRow's fields are the table's columns, in order
                "INSERT INTO severance.history VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (sid, pid, *astuple(previous)),
            )
        return seq

    def delete(self, memory_id: str) -> bool:
        return self.delete_many([memory_id]) == 1

    def update_vectors(self, vectors: Mapping[str, tuple[int, bytes]]) -> int:
        if not vectors:
            return 0
        ids = list(vectors)
        done = 0
        with self._c.tx(self.persona_id) as conn:
            first = self._locked(conn, len(ids)) - len(ids) + 1
            for start in range(0, len(ids), _INSERT_BATCH):
                part = ids[start : start + _INSERT_BATCH]
                done += conn.execute(
                    "UPDATE severance.memories AS m SET vector = u.vector, seq = u.seq"
                    " FROM unnest(%(id)s::text[], %(vector)b::bytea[], %(seq)s::bigint[],"
                    " %(version)s::integer[]) AS u(memory_id, vector, seq, version)"
                    " WHERE m.store_id = %(s)s AND m.persona_id = %(p)s"
                    " AND m.memory_id = u.memory_id AND m.version = u.version",
                    self._params(
                        id=part,
                        vector=[vectors[m][1] for m in part],
                        version=[vectors[m][0] for m in part],
                        seq=list(range(first + start, first + start + len(part))),
                    ),
                ).rowcount
        return done

    def delete_many(self, memory_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return 0
        with self._c.tx(self.persona_id) as conn:
            base = self._locked(conn)
            return conn.execute(_DELETE_MEMORIES, self._params(ids=ids, base=base)).rowcount

    def get(self, memory_id: str) -> MemoryRow | None:
        rows = self._fetch(
            f"SELECT {_MEMORY_COLUMNS} FROM severance.memories {_WHERE_PERSONA}"
            " AND memory_id = %(id)s",
            id=memory_id,
        )
        return _memory(rows[0]) if rows else None

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRow]:
        if not memory_ids:
            return {}
        rows = self._fetch(
            f"SELECT {_MEMORY_COLUMNS} FROM severance.memories {_WHERE_PERSONA}"
            " AND memory_id = ANY(%(ids)s::text[])",
            ids=list(dict.fromkeys(memory_ids)),
        )
        return {r[0]: _memory(r) for r in rows}

    def get_payloads(self, memory_ids: Sequence[str]) -> dict[str, PayloadRow]:
        if not memory_ids:
            return {}
        # The vector is the larger half of a row: left out, it never crosses the connection.
        rows = self._fetch(
            f"SELECT {_PAYLOAD_COLUMNS} FROM severance.memories {_WHERE_PERSONA}"
            " AND memory_id = ANY(%(ids)s::text[])",
            ids=list(dict.fromkeys(memory_ids)),
        )
        return {r[0]: PayloadRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows}

    def payloads_and_high_water(
        self, memory_ids: Sequence[str]
    ) -> tuple[dict[str, PayloadRow], int]:
        # One statement, so one snapshot and one round trip: the counter's row, joined with
        # the memories asked for (none: one row of NULLs).
        rows = self._fetch(
            f"SELECT c.last_seq, {_PAYLOAD_COLUMNS_OF_M} FROM severance.seq_counters c"
            " LEFT JOIN severance.memories m ON m.store_id = c.store_id"
            " AND m.persona_id = %(p)s AND m.memory_id = ANY(%(ids)s::text[])"
            " WHERE c.store_id = %(s)s",
            ids=list(dict.fromkeys(memory_ids)),
        )
        found = {
            r[1]: PayloadRow(r[1], r[2], r[3], r[4], r[5], r[6], bytes(r[7]))
            for r in rows
            if r[1] is not None
        }
        return found, int(rows[0][0])

    def history(self, memory_id: str) -> list[HistoryRow]:
        rows = self._fetch(
            "SELECT memory_id, version, occurred_at, updated_at, replaced_at, payload"
            f" FROM severance.history {_WHERE_PERSONA} AND memory_id = %(id)s ORDER BY version",
            id=memory_id,
        )
        return [HistoryRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def page(self, offset: int, limit: int, newest_first: bool) -> list[MemoryRow]:
        order = "DESC" if newest_first else "ASC"
        rows = self._fetch(
            f"SELECT {_MEMORY_COLUMNS} FROM severance.memories {_WHERE_PERSONA}"
            f" ORDER BY learned_at {order}, seq {order}, memory_id {order}"
            " LIMIT %(limit)s OFFSET %(offset)s",
            limit=limit,
            offset=offset,
        )
        return [_memory(r) for r in rows]

    def count(self) -> int:
        rows = self._fetch(f"SELECT count(*) FROM severance.memories {_WHERE_PERSONA}")
        return int(rows[0][0])

    def scan(self, batch_size: int) -> Iterator[list[MemoryRow]]:
        # Keyset pages, one short transaction each: the lock is never held across a yield.
        last_seq = -1
        while True:
            rows = self._fetch(
                f"SELECT {_MEMORY_COLUMNS} FROM severance.memories {_WHERE_PERSONA}"
                " AND seq > %(after)s ORDER BY seq LIMIT %(n)s",
                after=last_seq,
                n=batch_size,
            )
            if not rows:
                return
            batch = [_memory(r) for r in rows]
            last_seq = batch[-1].seq
            yield batch

    def changes_since(self, seq: int) -> Changes:
        rows = self._fetch(
            f"SELECT memory_id, seq, false FROM severance.memories {_WHERE_PERSONA}"
            " AND seq > %(after)s UNION ALL"
            f" SELECT memory_id, seq, true FROM severance.tombstones {_WHERE_PERSONA}"
            " AND seq > %(after)s",
            after=seq,
        )
        return changes(seq, rows)

    def high_water(self) -> int:
        rows = self._fetch("SELECT last_seq FROM severance.seq_counters WHERE store_id = %(s)s")
        return int(rows[0][0])

    def write_snapshot(self, snapshot: SnapshotOut) -> None:
        with self._c.tx(self.persona_id) as conn:
            self._locked(conn)
            newest = conn.execute(
                f"SELECT max(watermark) FROM severance.snapshots {_WHERE_PERSONA}",
                self._params(),
            ).fetchone()
            if newest is not None and newest[0] is not None and newest[0] > snapshot.watermark:
                # Another session already saved a newer one and dropped the tombstones it
                # covers: this older snapshot would bring those deleted memories back.
                return
            conn.execute(f"DELETE FROM severance.snapshots {_WHERE_PERSONA}", self._params())
            with conn.cursor() as cur:  # one chunk per row: no single huge parameter
                # One statement per chunk, the chunk copied as it is sent: a streamed
                # snapshot's chunks are views of one buffer, valid until the next is sealed.
                for part, chunk in enumerate(snapshot.each()):
                    cur.execute(
                        "INSERT INTO severance.snapshots VALUES"
                        " (%(s)s, %(p)s, %(part)s, %(watermark)s, %(chunk)s)",
                        self._params(part=part, watermark=snapshot.watermark, chunk=bytes(chunk)),
                    )
            conn.execute(
                f"DELETE FROM severance.tombstones {_WHERE_PERSONA} AND seq <= %(watermark)s"
                " AND memory_id != %(mark)s",
                self._params(watermark=snapshot.watermark, mark=COMPACTED_THROUGH),
            )
            conn.execute(
                "INSERT INTO severance.tombstones (store_id, persona_id, memory_id, seq)"
                " VALUES (%(s)s, %(p)s, %(mark)s, %(watermark)s)"
                " ON CONFLICT (store_id, persona_id, memory_id)"
                " DO UPDATE SET seq = GREATEST(severance.tombstones.seq, excluded.seq)",
                self._params(watermark=snapshot.watermark, mark=COMPACTED_THROUGH),
            )

    def read_snapshot(self) -> Snapshot | None:
        rows = self._fetch(
            f"SELECT watermark, chunk FROM severance.snapshots {_WHERE_PERSONA} ORDER BY part"
        )
        if not rows:
            return None
        return Snapshot(int(rows[0][0]), tuple(bytes(r[1]) for r in rows))

    def drop_snapshot(self) -> None:
        self._fetch(f"DELETE FROM severance.snapshots {_WHERE_PERSONA}")

    # -- indexed vectors (VectorRows) ---------------------------------------------------------
    def enable_vectors(self, dimension: int) -> None:
        self._vectors.enable_vectors(dimension)

    def disable_vectors(self) -> None:
        self._vectors.disable_vectors()

    def vector_dimension(self) -> int | None:
        return self._vectors.vector_dimension()

    def set_vectors(self, vectors: Mapping[str, NDArray[np.float32]]) -> None:
        self._vectors.set_vectors(vectors)

    def nearest(self, query: NDArray[np.float32], k: int) -> list[tuple[str, float]]:
        return self._vectors.nearest(query, k)
