"""The PostgreSQL back-end: stores inside one database, row-level security per persona.

URL: ``postgresql://[user[:password]@][host][:port]/dbname[?param=value…][&store=NAME]``
(``postgres://`` too). libpq parameters pass through untouched (``host=/run/postgresql`` for
a Unix socket, ``sslmode=…``); ``store`` (default ``default``) names the store inside the
database, so one database holds many people's stores. The name maps to a numeric
``store_id`` (``severance.stores``) that leads every other table's key: the schema shards by
store with Citus (see postgres_migrations). Connect as the role that owns the schema (the
one that created the first store): it runs the migrations, ``reclaim`` and index DDL.

Isolation. Every transaction opens with ``SET LOCAL severance.store`` and, when it touches a
persona's rows, ``SET LOCAL severance.persona``; row-level security then shows each statement
only that persona's rows, beneath the ``WHERE store_id = … AND persona_id = …`` every query
carries anyway. Policies do not bind superusers or BYPASSRLS roles, so for such a login each
transaction also runs ``SET LOCAL ROLE severance_app``. Transaction-local settings vanish at
COMMIT or ROLLBACK (no connection ever keeps a persona awake) and travel with the
transaction (Citus forwards ``SET LOCAL`` with ``citus.propagate_set_commands = 'local'``).

Sequence numbers. PostgreSQL sequences are handed out in *call* order, not commit order: T1
takes 5, T2 takes 6 and commits first, a reader sees 6, later asks for "after 6" and misses 5
forever. Instead a writer bumps its store's row of ``seq_counters`` with ``UPDATE …
RETURNING`` inside its transaction. The row lock is held to the end of the transaction, so
the next writer of the store gets its numbers only after the previous one committed (or
rolled back, undoing its bump): seq order is commit order, without gaps. The cost is that
writers of one store take turns, which one person's store can afford (stores don't contend).
Every writer takes the counter *first*, so writers lock rows in one order and cannot deadlock.

Durability. Sessions run with ``synchronous_commit = on``: COMMIT returns once the WAL is
flushed (with the server's ``fsync = on``, which is the administrator's to keep).

Indexed vectors (an addition to the protocol, ``indexed_vectors = True``). The ``vector``
column of a memory is sealed ciphertext, searched client-side. A persona may also keep plain
vectors in ``memory_vectors`` (pgvector), searched by :meth:`PostgresPersonaRows.nearest`
through an HNSW index (cosine) of its own: a *partial* index over
``embedding::vector(dim)`` limited to that persona's rows, so every persona may have its own
dimension and no persona's graph holds another's points. Trade-off, to be documented for
users: such vectors are plaintext to the database's administrators and in its backups, and
embeddings can be partly inverted into text. Each indexed persona adds one index that every
insert into the table checks the predicate of, so the mode suits tens of indexed personas per
database, not thousands.

Erasure. :meth:`PostgresBackend.reclaim` runs ``VACUUM FULL``, which rewrites the tables so
deleted rows leave the table files, then asks for a CHECKPOINT (when the role may) so the old
files are unlinked. The WAL, WAL archive, replicas and backups still hold old ciphertext;
there erasure rests on the destroyed persona key (crypto-shredding). ``wal_recycle = off``
makes the server delete, not reuse, old WAL segments.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import astuple
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format, TransactionStatus
from psycopg.types import TypeInfo

from ..errors import (
    AlreadyExistsError,
    EmbedderMismatchError,
    InvalidInputError,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
    StorePathError,
)
from . import postgres_migrations as migrations
from .base import AuditRow, Changes, FloorRow, HistoryRow, MemoryRow, PersonaRow, Snapshot

__all__ = [
    "DEFAULT_STORE",
    "PostgresBackend",
    "PostgresPersonaRows",
    "map_postgres_errors",
    "nearest_sql",
    "parse_url",
]

DEFAULT_STORE = "default"
_MEMORY_COLUMNS = "memory_id, seq, version, learned_at, occurred_at, updated_at, payload, vector"
_AUDIT_COLUMNS = "seq, at, event, persona_id, persona, detail, prev_hash, hash"
_PERSONA_COLUMNS = (
    "persona_id, name, created_at, wrapped_key, sealed, seal_kdf, embedder, dimension"
)
_INSERT_BATCH = 5_000  # rows per INSERT … SELECT FROM unnest(…): bounds one message's size
# Tables whose dead rows may hold ciphertext or keys; the audit log is append-only.
_RECLAIMED = (*migrations.PERSONA_TABLES, "personas", "floors", "meta", "seq_counters")

# Unique constraints whose violation means "already in use".
_IN_USE = {
    "personas_name_key": "a persona with that name already exists",
    "personas_pkey": "a persona with that id already exists",
    "floors_pkey": "a floor with that name already exists",
    "memories_pkey": "a memory with that id already exists",
}


def _primary(e: psycopg.Error) -> str:
    # Only the primary message: DETAIL lines quote key values, which must not reach logs.
    return e.diag.message_primary or str(e).split("\n", 1)[0]


@contextmanager
def map_postgres_errors() -> Iterator[None]:
    """Translate every psycopg error into a Severance error at the back-end boundary."""
    try:
        yield
    except psycopg.errors.UniqueViolation as e:
        if e.diag.constraint_name == "stores_name_key":
            raise StoreExistsError("a store with that name already exists") from None
        message = _IN_USE.get(e.diag.constraint_name or "", "that name or id is already in use")
        raise AlreadyExistsError(message) from None
    except psycopg.errors.ForeignKeyViolation:
        raise StorageError("the row refers to a persona or memory that does not exist") from None
    except psycopg.errors.InsufficientPrivilege as e:
        raise StorageError(f"PostgreSQL refused the operation: {_primary(e)}") from None
    except psycopg.OperationalError as e:
        raise StorageError(f"PostgreSQL connection failed: {_primary(e)}") from None
    except psycopg.Error as e:
        raise StorageError(f"PostgreSQL error {e.sqlstate or ''}: {_primary(e)}") from None


def parse_url(url: str) -> tuple[str, str, str]:
    """Split a store URL into (libpq URL, store name, URL with the password masked)."""
    parts = urlsplit(url)
    if parts.scheme not in PostgresBackend.schemes:
        raise StorePathError(f"not a PostgreSQL URL: {parts.scheme!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in query if key == "store"]
    store = names[-1] if names else DEFAULT_STORE
    if len(names) > 1 or not store or len(store) > 200 or not store.isprintable():
        raise StorePathError("the store name must be 1 to 200 printable characters")
    rest = urlencode([(k, v) for k, v in query if k != "store"], quote_via=quote, safe="/")
    conninfo = urlunsplit(parts._replace(query=rest))
    shown = url
    if parts.password:
        shown = urlunsplit(
            parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
        )
    return conninfo, store, shown


def _set_local(name: str, value: str) -> sql.Composed:
    # SET takes no bind parameters: the value goes in as a properly quoted literal.
    return sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value))


class _Vector:
    """A float32 array bound for a pgvector parameter (wrapped, so that other numpy arrays
    keep psycopg's default adaptation)."""

    __slots__ = ("array",)

    def __init__(self, array: NDArray[np.float32]) -> None:
        self.array = array


def _register_vector(conn: psycopg.Connection[Any]) -> bool:
    """Teach this connection to send :class:`_Vector` as pgvector's binary ``vector``."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        return False
    vector_oid = info.oid

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = vector_oid

        def dump(self, obj: Any) -> bytes:
            # pgvector's binary form: int16 dimension, int16 unused, big-endian float4s.
            array = np.ascontiguousarray(obj.array, dtype=">f4")
            return struct.pack(">HH", array.size, 0) + array.tobytes()

    conn.adapters.register_dumper(_Vector, VectorDumper)
    return True


def _index_name(store_id: int, persona_id: str) -> str:
    digest = hashlib.sha256(persona_id.encode()).hexdigest()[:24]
    return f"memory_vectors_{store_id}_{digest}"


def nearest_sql(store_id: int, persona_id: str, dimension: int) -> sql.Composed:
    """The k-nearest query of one persona (parameters ``q``: the vector, ``k``: the limit).

    Store and persona are inlined as literals, not bound: the planner can only use a partial
    index whose predicate it can prove from constants in the query.
    """
    return sql.SQL(
        "SELECT memory_id, 1 - (embedding::vector({d}) <=> %(q)b::vector({d}))"
        " FROM severance.memory_vectors WHERE store_id = {s} AND persona_id = {p}"
        " ORDER BY embedding::vector({d}) <=> %(q)b::vector({d}) LIMIT %(k)s"
    ).format(d=sql.Literal(int(dimension)), s=sql.Literal(store_id), p=sql.Literal(persona_id))


def _memory(r: Sequence[Any]) -> MemoryRow:
    return MemoryRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), bytes(r[7]))


class PostgresBackend:
    """A store inside a PostgreSQL database, named by the URL's ``store`` parameter.

    One connection per back-end, shared by threads behind a re-entrant lock (held for the
    whole of a transaction); other processes use their own connections.
    """

    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")
    #: Personas may keep plain vectors in a pgvector HNSW index (see the module docstring).
    indexed_vectors: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        self._conninfo, self.store_name, self.url = parse_url(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._depth = 0
        self._tx_persona: str | None = None
        self._store_id: int | None = None
        self._privileged = False  # the login bypasses row-level security: use the app role
        self._vector_type = False

    # -- connection and transactions ----------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._depth:
            raise StorageError("the connection to PostgreSQL was lost inside a transaction")
        with map_postgres_errors():
            # autocommit: transactions are begun explicitly (see _tx), and VACUUM can run.
            conn = psycopg.connect(self._conninfo, autocommit=True)
            try:
                conn.execute("SET synchronous_commit = on")
                row = conn.execute(
                    "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
                self._privileged = bool(row and row[0])
                self._vector_type = _register_vector(conn)
            except BaseException:
                conn.close()
                raise
        self._conn = conn
        return conn

    @property
    def _sid(self) -> int:
        if self._store_id is None:
            self._store_id = self._lookup_store()
            if self._store_id is None:
                raise StoreNotFoundError(f"no store named {self.store_name!r} at {self.url}")
        return self._store_id

    def _lookup_store(self) -> int | None:
        with self._lock, map_postgres_errors():
            conn = self._connection()
            if migrations.schema_version(conn) == 0:
                return None
            row = conn.execute(
                "SELECT store_id FROM severance.stores WHERE name = %s", (self.store_name,)
            ).fetchone()
        return int(row[0]) if row else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._tx(None):
            yield

    @contextmanager
    def _tx(self, persona_id: str | None) -> Iterator[psycopg.Connection[Any]]:
        """A transaction (joined if one is open) scoped to the store and, if given, a persona."""
        with self._lock:
            if self._depth:
                conn = self._connection()
                if persona_id is not None and persona_id != self._tx_persona:
                    with map_postgres_errors():
                        conn.execute(_set_local("severance.persona", persona_id))
                    self._tx_persona = persona_id
                self._depth += 1
                try:
                    with map_postgres_errors():
                        yield conn
                finally:
                    self._depth -= 1
                return
            store_id = self._sid
            conn = self._connection()
            begin: list[sql.Composable] = [sql.SQL("BEGIN")]
            if self._privileged:
                begin.append(
                    sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(migrations.APP_ROLE))
                )
            begin.append(_set_local("severance.store", str(store_id)))
            if persona_id is not None:
                begin.append(_set_local("severance.persona", persona_id))
            try:
                with map_postgres_errors():
                    conn.execute(sql.SQL("; ").join(begin))  # one round trip
            except BaseException:
                self._rollback(conn)
                raise
            self._depth, self._tx_persona = 1, persona_id
            try:
                with map_postgres_errors():
                    yield conn
            except BaseException:
                self._rollback(conn)
                raise
            if conn.info.transaction_status == TransactionStatus.INERROR:
                # A statement failed and the caller carried on: COMMIT would silently roll back.
                self._rollback(conn)
                raise StorageError("a statement failed, so the transaction was rolled back")
            self._depth, self._tx_persona = 0, None
            with map_postgres_errors():
                conn.execute("COMMIT")

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        self._depth, self._tx_persona = 0, None
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()  # broken: the next call reconnects

    @contextmanager
    def _as_owner(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Run DDL as the login (the schema's owner) inside the current transaction."""
        if not self._privileged:
            yield
            return
        conn.execute("SET LOCAL ROLE NONE")
        yield
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(migrations.APP_ROLE)))

    def _fetch(
        self,
        query: str | sql.Composed,
        params: Sequence[Any] | dict[str, Any] | None = None,
        persona_id: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement in its own (or the open) transaction; its rows, if any.

        Named parameters get ``s`` (the store id) and ``p`` (the persona id) added.
        """
        with self._tx(persona_id) as conn:
            if params is None or isinstance(params, dict):
                params = {"s": self._store_id, "p": persona_id, **(params or {})}
            cursor = conn.execute(query, params, binary=True)
            return cursor.fetchall() if cursor.description else []

    def _reserve(self, conn: psycopg.Connection[Any], n: int) -> int:
        """Take ``n`` seqs (0: only lock the counter); returns the last one taken."""
        row = conn.execute(
            "UPDATE severance.seq_counters SET last_seq = last_seq + %s"
            " WHERE store_id = %s RETURNING last_seq",
            (n, self._store_id),
        ).fetchone()
        if row is None:
            raise StorageError("the store's sequence counter is missing")
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- lifecycle ----------------------------------------------------------------------------
    def exists(self) -> bool:
        store_id = self._lookup_store()
        if store_id is not None:
            self._store_id = store_id
        return store_id is not None

    def schema_version(self) -> int:
        """Migrations applied to the database (shared by all its stores)."""
        with self._lock, map_postgres_errors():
            return migrations.schema_version(self._connection())

    def migrate(self) -> None:
        """Bring the database's schema up to date (as the owning login)."""
        with self._lock, map_postgres_errors():
            if self._depth:
                raise StorageError("cannot migrate inside a transaction")
            conn = self._connection()
            try:
                migrations.migrate(conn)
            except RuntimeError as e:
                raise StorageError(str(e)) from None
            self._vector_type = self._vector_type or _register_vector(conn)

    def create(self, meta: Mapping[str, str]) -> None:
        with self._lock:
            self.migrate()
            conn = self._connection()
            with map_postgres_errors(), conn.transaction():
                row = conn.execute(
                    "INSERT INTO severance.stores (name, created_at) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO NOTHING RETURNING store_id",
                    (self.store_name, time.time()),
                ).fetchone()
                if row is None:
                    raise StoreExistsError(
                        f"a store named {self.store_name!r} exists at {self.url}"
                    )
                store_id = int(row[0])
                conn.execute(_set_local("severance.store", str(store_id)))
                conn.execute("INSERT INTO severance.seq_counters VALUES (%s, 0)", (store_id,))
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO severance.meta VALUES (%s, %s, %s)",
                        [(store_id, k, v) for k, v in meta.items()],
                    )
            self._store_id = store_id

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]:
        return dict(self._fetch("SELECT key, value FROM severance.meta WHERE store_id = %(s)s"))

    def set_meta(self, key: str, value: str) -> None:
        self._fetch(
            "INSERT INTO severance.meta VALUES (%s, %s, %s)"
            " ON CONFLICT (store_id, key) DO UPDATE SET value = excluded.value",
            (self._sid, key, value),
        )

    # -- personas -----------------------------------------------------------------------------
    def personas(self) -> list[PersonaRow]:
        rows = self._fetch(
            f"SELECT {_PERSONA_COLUMNS} FROM severance.personas WHERE store_id = %(s)s"
            " ORDER BY created_at, name"
        )
        return [PersonaRow(r[0], r[1], r[2], bytes(r[3]), *r[4:]) for r in rows]

    def insert_persona(self, row: PersonaRow) -> None:
        self._fetch(
            f"INSERT INTO severance.personas (store_id, {_PERSONA_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self._sid, *astuple(row)),
        )

    def update_persona(self, row: PersonaRow) -> None:
        self._fetch(
            "UPDATE severance.personas SET wrapped_key = %s, sealed = %s, seal_kdf = %s,"
            " embedder = %s, dimension = %s WHERE store_id = %s AND persona_id = %s",
            (*astuple(row)[3:], self._sid, row.id),
        )

    def delete_persona(self, persona_id: str) -> None:
        # Row-level security only lets the persona's own transaction delete its rows.
        with self._tx(persona_id) as conn:
            self._reserve(conn, 0)  # the lock order every memory writer follows
            where = {"s": self._store_id, "p": persona_id}
            tables: tuple[str, ...] = migrations.PERSONA_TABLES
            has_vectors = migrations.has_vector_tables(conn)
            if has_vectors:
                tables = (*migrations.VECTOR_TABLES, *tables)
            for table in (*tables, "floors", "personas"):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE store_id = %(s)s AND persona_id = %(p)s").format(
                        sql.Identifier(migrations.SCHEMA, table)
                    ),
                    where,
                )
            if has_vectors:
                with self._as_owner(conn):
                    name = _index_name(self._sid, persona_id)
                    conn.execute(
                        sql.SQL("DROP INDEX IF EXISTS {}").format(
                            sql.Identifier(migrations.SCHEMA, name)
                        )
                    )

    def reclaim(self) -> None:
        with self._lock, map_postgres_errors():
            if self._depth:
                raise StorageError("reclaim cannot run inside a transaction")
            conn = self._connection()
            tables: tuple[str, ...] = _RECLAIMED
            if migrations.has_vector_tables(conn):
                tables = (*tables, *migrations.VECTOR_TABLES)
            # FULL rewrites each table (and its TOAST table and indexes) into new files, so
            # dead rows leave the files; plain VACUUM would only mark their space reusable.
            # It locks the tables, for every store of the database, while it runs.
            conn.execute(
                sql.SQL("VACUUM (FULL, ANALYZE) {}").format(
                    sql.SQL(", ").join(sql.Identifier(migrations.SCHEMA, t) for t in tables)
                )
            )
            # The old files are truncated at commit and unlinked at the next checkpoint. It
            # needs superuser or pg_checkpoint; without, the server's own checkpoint follows.
            with suppress(psycopg.errors.InsufficientPrivilege):
                conn.execute("CHECKPOINT")

    # -- floors -------------------------------------------------------------------------------
    def floors(self) -> list[FloorRow]:
        rows = self._fetch(
            "SELECT name, position, persona_id, rule, is_default FROM severance.floors"
            " WHERE store_id = %(s)s ORDER BY position, name"
        )
        return [FloorRow(*r) for r in rows]

    def insert_floor(self, row: FloorRow) -> None:
        self._fetch(
            "INSERT INTO severance.floors VALUES (%s, %s, %s, %s, %s, %s)",
            (self._sid, *astuple(row)),
        )

    def delete_floor(self, name: str) -> bool:
        rows = self._fetch(
            "DELETE FROM severance.floors WHERE store_id = %s AND name = %s RETURNING 1",
            (self._sid, name),
        )
        return bool(rows)

    # -- audit --------------------------------------------------------------------------------
    def append_audit(self, row: AuditRow) -> None:
        self._fetch(
            f"INSERT INTO severance.audit (store_id, {_AUDIT_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self._sid, *astuple(row)),
        )

    def audit_rows(self, persona_id: str | None = None) -> list[AuditRow]:
        query = f"SELECT {_AUDIT_COLUMNS} FROM severance.audit WHERE store_id = %(s)s"
        if persona_id is None:
            rows = self._fetch(query + " ORDER BY seq")
        else:
            rows = self._fetch(
                query + " AND persona_id = %(about)s ORDER BY seq", {"about": persona_id}
            )
        return [AuditRow(*r) for r in rows]

    def last_audit(self) -> AuditRow | None:
        rows = self._fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM severance.audit WHERE store_id = %(s)s"
            " ORDER BY seq DESC LIMIT 1"
        )
        return AuditRow(*rows[0]) if rows else None

    # -- memories -----------------------------------------------------------------------------
    def rows(self, persona_id: str) -> PostgresPersonaRows:
        return PostgresPersonaRows(self, persona_id)


_INSERT_MEMORIES = f"""
    WITH revived AS (
        DELETE FROM severance.tombstones
        WHERE store_id = %(s)s AND persona_id = %(p)s AND memory_id = ANY(%(id)s::text[])
    )
    INSERT INTO severance.memories (store_id, persona_id, {_MEMORY_COLUMNS})
    SELECT %(s)s, %(p)s, u.* FROM unnest(
        %(id)s::text[], %(seq)s::bigint[], %(version)s::integer[], %(learned)s::float8[],
        %(occurred)s::float8[], %(updated)s::float8[], %(payload)s::bytea[], %(vector)s::bytea[]
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
    ``severance.persona`` setting makes row-level security hide every other persona's rows."""

    def __init__(self, backend: PostgresBackend, persona_id: str) -> None:
        self._b = backend
        self.persona_id = persona_id

    def _fetch(self, query: str | sql.Composed, **params: Any) -> list[tuple[Any, ...]]:
        return self._b._fetch(query, params, self.persona_id)

    def _params(self, **params: Any) -> dict[str, Any]:
        return {"s": self._b._store_id, "p": self.persona_id, **params}

    def insert(self, rows: Sequence[MemoryRow]) -> list[int]:
        if not rows:
            return []
        with self._b._tx(self.persona_id) as conn:
            first = self._b._reserve(conn, len(rows)) - len(rows) + 1
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
        with self._b._tx(self.persona_id) as conn:
            seq = self._b._reserve(conn, 1)
            updated = conn.execute(
                "UPDATE severance.memories SET seq = %(seq)s, version = %(version)s,"
                " occurred_at = %(occurred)s, updated_at = %(updated)s, payload = %(payload)s,"
                f" vector = %(vector)s {_WHERE_PERSONA} AND memory_id = %(id)s",
                self._params(
                    seq=seq,
                    version=row.version,
                    occurred=row.occurred_at,
                    updated=row.updated_at,
                    payload=row.payload,
                    vector=row.vector,
                    id=row.id,
                ),
            )
            if updated.rowcount != 1:
                raise StorageError("the memory to replace vanished")
            conn.execute(
                "INSERT INTO severance.history VALUES"
                " (%(s)s, %(p)s, %(id)s, %(version)s, %(occurred)s, %(updated)s, %(replaced)s,"
                " %(payload)s)",
                self._params(
                    id=previous.memory_id,
                    version=previous.version,
                    occurred=previous.occurred_at,
                    updated=previous.updated_at,
                    replaced=previous.replaced_at,
                    payload=previous.payload,
                ),
            )
        return seq

    def delete(self, memory_id: str) -> bool:
        return self.delete_many([memory_id]) == 1

    def delete_many(self, memory_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return 0
        with self._b._tx(self.persona_id) as conn:
            base = self._b._reserve(conn, 0)
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
            f" ORDER BY learned_at {order}, memory_id {order} LIMIT %(limit)s OFFSET %(offset)s",
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
        changed = {m: s for m, s, gone in rows if not gone}
        deleted = tuple(m for m, _, gone in rows if gone)
        return Changes(changed, deleted, max([seq, *(s for _, s, _ in rows)]))

    def high_water(self) -> int:
        rows = self._fetch("SELECT last_seq FROM severance.seq_counters WHERE store_id = %(s)s")
        return int(rows[0][0])

    def write_snapshot(self, snapshot: Snapshot) -> None:
        with self._b._tx(self.persona_id) as conn:
            conn.execute(f"DELETE FROM severance.snapshots {_WHERE_PERSONA}", self._params())
            with conn.cursor() as cur:  # one chunk per row: no single huge parameter
                cur.executemany(
                    "INSERT INTO severance.snapshots VALUES"
                    " (%(s)s, %(p)s, %(part)s, %(watermark)s, %(chunk)s)",
                    [
                        self._params(part=part, watermark=snapshot.watermark, chunk=chunk)
                        for part, chunk in enumerate(snapshot.chunks)
                    ],
                )
            conn.execute(
                f"DELETE FROM severance.tombstones {_WHERE_PERSONA} AND seq <= %(watermark)s",
                self._params(watermark=snapshot.watermark),
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

    # -- indexed vectors (PostgreSQL only: see the module docstring) ----------------------------
    def enable_vectors(self, dimension: int) -> None:
        """Keep this persona's plain vectors in pgvector, under an HNSW index of its own."""
        if not 1 <= dimension <= migrations.MAX_INDEXED_DIMENSION:
            raise InvalidInputError(
                f"indexed vectors take 1 to {migrations.MAX_INDEXED_DIMENSION} dimensions"
            )
        b = self._b
        with b._tx(self.persona_id) as conn:
            with b._as_owner(conn):
                if not migrations.ensure_vector_tables(conn):
                    raise StorageError("pgvector is not available in this database")
            if not b._vector_type:
                b._vector_type = _register_vector(conn)
            current = self.vector_dimension()
            if current == dimension:
                return
            if current is not None:
                raise EmbedderMismatchError(
                    f"this persona's indexed vectors have {current} dimensions, not {dimension}"
                )
            conn.execute(
                "INSERT INTO severance.vector_indexes VALUES (%(s)s, %(p)s, %(d)s)",
                self._params(d=dimension),
            )
            with b._as_owner(conn):
                conn.execute(
                    sql.SQL(
                        "CREATE INDEX IF NOT EXISTS {i} ON severance.memory_vectors USING hnsw"
                        " ((embedding::vector({d})) vector_cosine_ops)"
                        " WHERE store_id = {s} AND persona_id = {p}"
                    ).format(
                        i=sql.Identifier(_index_name(b._sid, self.persona_id)),
                        d=sql.Literal(dimension),
                        s=sql.Literal(b._sid),
                        p=sql.Literal(self.persona_id),
                    )
                )

    def disable_vectors(self) -> None:
        """Drop this persona's plain vectors and their index (back to sealed vectors only)."""
        b = self._b
        with b._tx(self.persona_id) as conn:
            if not migrations.has_vector_tables(conn):
                return
            for table in migrations.VECTOR_TABLES:
                conn.execute(
                    sql.SQL("DELETE FROM {} " + _WHERE_PERSONA).format(
                        sql.Identifier(migrations.SCHEMA, table)
                    ),
                    self._params(),
                )
            with b._as_owner(conn):
                conn.execute(
                    sql.SQL("DROP INDEX IF EXISTS {}").format(
                        sql.Identifier(migrations.SCHEMA, _index_name(b._sid, self.persona_id))
                    )
                )

    def vector_dimension(self) -> int | None:
        """The dimension of this persona's indexed vectors; None if it keeps none."""
        with self._b._tx(self.persona_id) as conn:
            if not migrations.has_vector_tables(conn):
                return None
            row = conn.execute(
                f"SELECT dimension FROM severance.vector_indexes {_WHERE_PERSONA}", self._params()
            ).fetchone()
        return int(row[0]) if row else None

    def set_vectors(self, vectors: Mapping[str, NDArray[np.float32]]) -> None:
        """Store (or replace) the plain vectors of existing memories of this persona."""
        if not vectors:
            return
        with self._b._tx(self.persona_id) as conn:
            dimension = self.vector_dimension()
            if dimension is None:
                raise StorageError("this persona does not keep indexed vectors")
            params = []
            for memory_id, vector in vectors.items():
                array = np.asarray(vector, dtype=np.float32)
                if array.shape != (dimension,):
                    raise EmbedderMismatchError(
                        f"expected vectors of {dimension} dimensions, got shape {array.shape}"
                    )
                if not np.isfinite(array).all():
                    raise InvalidInputError("vectors must be finite")
                params.append(self._params(id=memory_id, v=_Vector(array)))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO severance.memory_vectors VALUES (%(s)s, %(p)s, %(id)s, %(v)b)"
                    " ON CONFLICT (store_id, persona_id, memory_id)"
                    " DO UPDATE SET embedding = excluded.embedding",
                    params,
                )

    def nearest(self, query: NDArray[np.float32], k: int) -> list[tuple[str, float]]:
        """The ``k`` memories whose indexed vectors are nearest ``query``, with their cosine
        similarity, most similar first ([] if this persona keeps no indexed vectors)."""
        array = np.asarray(query, dtype=np.float32)
        if array.ndim != 1 or not np.isfinite(array).all():
            raise InvalidInputError("the query must be one finite vector")
        if k <= 0:
            return []
        with self._b._tx(self.persona_id) as conn:
            dimension = self.vector_dimension()
            if dimension is None:
                return []
            if array.shape[0] != dimension:
                raise EmbedderMismatchError(
                    f"this persona's indexed vectors have {dimension} dimensions,"
                    f" the query {array.shape[0]}"
                )
            # HNSW returns at most ef_search candidates (at most 1000); past that, let it
            # keep scanning the graph in exact distance order.
            conn.execute(_set_local("hnsw.ef_search", str(min(max(k, 40), 1000))))
            if k > 1000:
                conn.execute(_set_local("hnsw.iterative_scan", "strict_order"))
            rows = conn.execute(
                nearest_sql(self._b._sid, self.persona_id, dimension), {"q": _Vector(array), "k": k}
            ).fetchall()
        return [(str(m), float(similarity)) for m, similarity in rows]
