"""The PostgreSQL back-end: stores inside one database, row-level security per persona.

URL: ``postgresql://[user[:password]@][host][:port]/dbname[?param=value…][&store=NAME]``
(``postgres://`` too). libpq parameters pass through untouched (``host=/run/postgresql`` for
a Unix socket, ``sslmode=…``); ``store`` (default ``default``) names the store inside the
database, so one database holds many people's stores. The name maps to a numeric
``store_id`` (``severance.stores``) that leads every other table's key: the schema shards by
store with Citus (see postgres_migrations). Connect as the role that owns the schema (the
one that created the first store): it runs the migrations, ``reclaim`` and index DDL.

Layout. This module holds the store-wide tables (settings, personas, floors, passes, audit)
and the store's lifecycle; one persona's rows are postgres_rows, its indexed vectors
postgres_vectors. All three hold the same
:class:`~severance.backends.postgres_connection.PostgresConnection`, which implements the
isolation and sequence numbers described next (and translates psycopg's errors).

Isolation. Every transaction opens with ``SET LOCAL severance.store`` and, when it touches a
persona's rows, ``SET LOCAL severance.persona``; row-level security then shows each statement
only that persona's rows, beneath the ``WHERE store_id = … AND persona_id = …`` every query
carries anyway. Policies do not bind superusers or BYPASSRLS roles, so for such a login each
transaction also runs ``SET LOCAL ROLE severance_app``. Transaction-local settings vanish at
COMMIT or ROLLBACK (no connection ever keeps a persona awake). They are ``SET LOCAL``
commands rather than ``set_config()`` calls because Citus can forward those to the workers
that evaluate the policies (``citus.propagate_set_commands = 'local'``; not yet tried).
A statement run on its own is sent as one pipeline (BEGIN, the settings, the statement,
COMMIT): the scoping costs no extra round trip to a remote server.

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

Indexed vectors: ``indexed_vectors = True``, and :meth:`PostgresBackend.vector_rows` gives a
persona's rows with ``enable_vectors``, ``set_vectors`` and ``nearest`` (pgvector HNSW search
in the database); the design and its trade-off (plain vectors visible to the database's
administrators) are in postgres_vectors.

Erasure. :meth:`PostgresBackend.reclaim` runs ``VACUUM FULL``, which rewrites the tables so
deleted rows leave the table files, then asks for a CHECKPOINT (when the role may) so the old
files are unlinked. The WAL, WAL archive, replicas and backups still hold old ciphertext;
there erasure rests on the destroyed persona key (crypto-shredding). ``wal_recycle = off``
makes the server delete, not reuse, old WAL segments.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import astuple
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
from psycopg import sql

from ..errors import StorageError, StoreExistsError, StorePathError
from . import postgres_migrations as migrations
from .base import AuditRow, FloorRow, PassRow, PersonaRow
from .postgres_connection import PostgresConnection, map_postgres_errors, set_local
from .postgres_rows import PostgresPersonaRows
from .postgres_vectors import index_name

__all__ = [
    "DEFAULT_STORE",
    "SCHEMES",
    "PostgresBackend",
    "PostgresPersonaRows",
    "map_postgres_errors",
    "mask_url",
    "parse_url",
]

DEFAULT_STORE = "default"
#: The URL schemes of a PostgreSQL store.
SCHEMES = ("postgresql", "postgres")
_AUDIT_COLUMNS = "seq, at, event, persona_id, persona, detail, prev_hash, hash"
_PASS_COLUMNS = (
    "pass_id, token_hash, floor, persona_id, created_at, expires_at, read_only, revoked_at, label,"
    " floor_id, mac"
)
_PERSONA_COLUMNS = (
    "persona_id, name, created_at, wrapped_key, sealed, seal_kdf, embedder, dimension, mac"
)
_FLOOR_COLUMNS = "name, position, persona_id, rule, is_default, floor_id, mac"
# Tables whose dead rows may hold ciphertext or keys; the audit log is append-only.
_RECLAIMED = (*migrations.PERSONA_TABLES, "personas", "floors", "passes", "meta", "seq_counters")


def parse_url(url: str) -> tuple[str, str, str]:
    """Split a store URL into (libpq URL, store name, URL with the password masked)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise StorePathError(f"not a PostgreSQL URL: {parts.scheme!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in query if key == "store"]
    store = names[-1] if names else DEFAULT_STORE
    if len(names) > 1 or not store or len(store) > 200 or not store.isprintable():
        raise StorePathError("the store name must be 1 to 200 printable characters")
    rest = urlencode([(k, v) for k, v in query if k != "store"], quote_via=quote, safe="/")
    # Rebuilt by hand: urlunsplit would turn "postgresql:///db" (no host) into "postgresql:/db".
    base = url.split("?", 1)[0]
    conninfo = f"{base}?{rest}" if rest else base
    return conninfo, store, mask_url(url)


#: libpq parameters whose values are secrets, whether in the user-info or the query.
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def mask_url(url: str) -> str:
    """The URL as it may be printed: every password (user-info or query) shown as ``***``."""
    parts = urlsplit(url)
    shown = url.replace(f":{parts.password}@", ":***@", 1) if parts.password else url
    if "?" not in shown:
        return shown
    base, query = shown.split("?", 1)
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
        return shown
    masked = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
    return f"{base}?{urlencode(masked, quote_via=quote, safe='/*')}"


class PostgresBackend:
    """A store inside a PostgreSQL database, named by the URL's ``store`` parameter.

    One connection per back-end (:class:`PostgresConnection`, shared with the persona rows),
    shared by threads behind a re-entrant lock held for the whole of a transaction; other
    processes use their own connections.
    """

    #: Personas may keep plain vectors in a pgvector HNSW index (see the module docstring).
    indexed_vectors: ClassVar[bool] = True

    def __init__(self, url: str) -> None:
        conninfo, self.store_name, self.url = parse_url(url)
        self._c = PostgresConnection(conninfo, self.store_name, self.url)

    # -- connection and transactions ----------------------------------------------------------
    @property
    def connection(self) -> PostgresConnection:
        """The connection this back-end, its rows and vectors share."""
        return self._c

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._c.tx(None):
            yield

    def lock(self) -> None:
        with self._c.tx(None) as conn:
            self._c.reserve(conn, 0)

    def close(self) -> None:
        self._c.close()

    @property
    def conninfo(self) -> str:
        """The libpq URL (with its password, if any: never print it; :attr:`url` is masked)."""
        return self._c.conninfo

    def shared_login(self) -> bool:
        """Whether this login can reach other people's stores: a superuser, a role that
        bypasses row-level security, or the schema's owner. Per-store logins (``severance pg
        provision``) are none of these."""
        with self._c.mutex, map_postgres_errors():
            row = (
                self._c.raw()
                .execute(
                    "SELECT r.rolsuper OR r.rolbypassrls OR EXISTS (SELECT 1 FROM pg_namespace n"
                    " WHERE n.nspname = 'severance' AND pg_has_role(session_user, n.nspowner,"
                    " 'MEMBER')) FROM pg_roles r WHERE r.rolname = session_user"
                )
                .fetchone()
            )
        return bool(row and row[0])

    # -- lifecycle ----------------------------------------------------------------------------
    def exists(self) -> bool:
        store_id = self._c.lookup_store()
        if store_id is None:
            return False
        self._c.store_id = store_id
        # A row provisioned for a login (`severance pg provision`) is not a store until made.
        return bool(self._c.fetch("SELECT 1 FROM severance.seq_counters WHERE store_id = %(s)s"))

    def schema_version(self) -> int:
        """Migrations applied to the database (shared by all its stores)."""
        with self._c.mutex, map_postgres_errors():
            return migrations.schema_version(self._c.raw())

    def migrate(self) -> None:
        """Bring the database's schema up to date (as the owning login)."""
        with self._c.mutex, map_postgres_errors():
            if self._c.in_transaction:
                raise StorageError("cannot migrate inside a transaction")
            conn = self._c.raw()
            if migrations.schema_version(conn) == len(migrations.MIGRATIONS):
                return  # up to date: a store's own login may not (and need not) run DDL
            try:
                migrations.migrate(conn)
            except RuntimeError as e:
                raise StorageError(str(e)) from None
            self._c.ensure_vector_type(conn)

    def create(self, meta: Mapping[str, str]) -> None:
        with self._c.mutex:
            self.migrate()
            conn = self._c.raw()
            with map_postgres_errors(), conn.transaction():
                row = conn.execute(
                    "INSERT INTO severance.stores (name, created_at) VALUES (%s, %s)"
                    " ON CONFLICT (name) DO NOTHING RETURNING store_id",
                    (self.store_name, time.time()),
                ).fetchone()
                if row is None:
                    # A store row provisioned for this login (`severance pg provision`) and
                    # still empty is this store's to create; row-level security hides others'.
                    row = conn.execute(
                        "SELECT store_id FROM severance.stores WHERE name = %s",
                        (self.store_name,),
                    ).fetchone()
                    if row is not None:
                        conn.execute(set_local("severance.store", str(row[0])))
                        if conn.execute(
                            "SELECT 1 FROM severance.seq_counters WHERE store_id = %s", (row[0],)
                        ).fetchone():
                            row = None
                if row is None:
                    raise StoreExistsError(
                        f"a store named {self.store_name!r} exists at {self.url}"
                    )
                store_id = int(row[0])
                conn.execute(set_local("severance.store", str(store_id)))
                conn.execute("INSERT INTO severance.seq_counters VALUES (%s, 0)", (store_id,))
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO severance.meta VALUES (%s, %s, %s)",
                        [(store_id, k, v) for k, v in meta.items()],
                    )
            self._c.store_id = store_id

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]:
        return dict(self._c.fetch("SELECT key, value FROM severance.meta WHERE store_id = %(s)s"))

    def set_meta(self, key: str, value: str) -> None:
        self._c.fetch(
            "INSERT INTO severance.meta VALUES (%s, %s, %s)"
            " ON CONFLICT (store_id, key) DO UPDATE SET value = excluded.value",
            (self._c.store_id, key, value),
        )

    # -- personas -----------------------------------------------------------------------------
    def personas(self) -> list[PersonaRow]:
        rows = self._c.fetch(
            f"SELECT {_PERSONA_COLUMNS} FROM severance.personas WHERE store_id = %(s)s"
            " ORDER BY created_at, name"
        )
        return [
            PersonaRow(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7], bytes(r[8]))
            for r in rows
        ]

    def insert_persona(self, row: PersonaRow) -> None:
        self._c.fetch(
            f"INSERT INTO severance.personas (store_id, {_PERSONA_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self._c.store_id, *astuple(row)),
        )

    def update_persona(self, row: PersonaRow) -> None:
        self._c.fetch(
            "UPDATE severance.personas SET wrapped_key = %s, sealed = %s, seal_kdf = %s,"
            " embedder = %s, dimension = %s, mac = %s WHERE store_id = %s AND persona_id = %s",
            (*astuple(row)[3:], self._c.store_id, row.id),
        )

    def delete_persona(self, persona_id: str) -> None:
        # Row-level security only lets the persona's own transaction delete its rows.
        with self._c.tx(persona_id) as conn:
            self._c.reserve(conn, 0)  # the lock order every memory writer follows
            where = self._c.params(persona_id)
            tables: tuple[str, ...] = migrations.PERSONA_TABLES
            has_vectors = migrations.has_vector_tables(conn)
            if has_vectors:
                tables = (*migrations.VECTOR_TABLES, *tables)
            for table in (*tables, "floors", "passes", "personas"):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE store_id = %(s)s AND persona_id = %(p)s").format(
                        sql.Identifier(migrations.SCHEMA, table)
                    ),
                    where,
                )
            if has_vectors and migrations.has_index_function(conn):
                conn.execute("SELECT severance.persona_index(NULL)")
            elif has_vectors:
                with self._c.as_owner(conn):
                    name = index_name(self._c.store_id, persona_id)
                    conn.execute(
                        sql.SQL("DROP INDEX IF EXISTS {}").format(
                            sql.Identifier(migrations.SCHEMA, name)
                        )
                    )

    def reclaim(self) -> None:
        with self._c.mutex, map_postgres_errors():
            if self._c.in_transaction:
                raise StorageError("reclaim cannot run inside a transaction")
            conn = self._c.raw()
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
        rows = self._c.fetch(
            f"SELECT {_FLOOR_COLUMNS} FROM severance.floors"
            " WHERE store_id = %(s)s ORDER BY position, name"
        )
        return [FloorRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in rows]

    def insert_floor(self, row: FloorRow) -> None:
        self._c.fetch(
            f"INSERT INTO severance.floors (store_id, {_FLOOR_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (self._c.store_id, *astuple(row)),
        )

    def update_floor(self, row: FloorRow) -> None:
        self._c.fetch(
            "UPDATE severance.floors SET position = %s, persona_id = %s, rule = %s,"
            " is_default = %s, floor_id = %s, mac = %s WHERE store_id = %s AND name = %s",
            (*astuple(row)[1:], self._c.store_id, row.name),
        )

    def delete_floor(self, name: str) -> bool:
        rows = self._c.fetch(
            "DELETE FROM severance.floors WHERE store_id = %s AND name = %s RETURNING 1",
            (self._c.store_id, name),
        )
        return bool(rows)

    # -- passes -------------------------------------------------------------------------------
    def insert_pass(self, row: PassRow) -> None:
        self._c.fetch(
            f"INSERT INTO severance.passes (store_id, {_PASS_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self._c.store_id, *astuple(row)),
        )

    def passes(self) -> list[PassRow]:
        rows = self._c.fetch(
            f"SELECT {_PASS_COLUMNS} FROM severance.passes WHERE store_id = %(s)s"
            " ORDER BY created_at, pass_id"
        )
        return [_pass(r) for r in rows]

    def pass_by_hash(self, token_hash: str) -> PassRow | None:
        rows = self._c.fetch(
            f"SELECT {_PASS_COLUMNS} FROM severance.passes"
            " WHERE store_id = %(s)s AND token_hash = %(hash)s",
            {"hash": token_hash},
        )
        return _pass(rows[0]) if rows else None

    def revoke_pass(self, pass_id: str, at: float) -> bool:
        rows = self._c.fetch(
            "UPDATE severance.passes SET revoked_at = %s WHERE store_id = %s AND pass_id = %s"
            " AND revoked_at IS NULL RETURNING 1",
            (at, self._c.store_id, pass_id),
        )
        return bool(rows)

    def update_pass(self, row: PassRow) -> None:
        self._c.fetch(
            "UPDATE severance.passes SET floor = %s, persona_id = %s, created_at = %s,"
            " expires_at = %s, read_only = %s, revoked_at = %s, label = %s, floor_id = %s,"
            " mac = %s WHERE store_id = %s AND pass_id = %s",
            (*astuple(row)[2:], self._c.store_id, row.id),
        )

    # -- audit --------------------------------------------------------------------------------
    def append_audit(self, row: AuditRow) -> None:
        self._c.fetch(
            f"INSERT INTO severance.audit (store_id, {_AUDIT_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self._c.store_id, *astuple(row)),
        )

    def audit_rows(self, persona_id: str | None = None) -> list[AuditRow]:
        query = f"SELECT {_AUDIT_COLUMNS} FROM severance.audit WHERE store_id = %(s)s"
        if persona_id is None:
            rows = self._c.fetch(query + " ORDER BY seq")
        else:
            rows = self._c.fetch(
                query + " AND persona_id = %(about)s ORDER BY seq", {"about": persona_id}
            )
        return [AuditRow(*r) for r in rows]

    def audit_page(self, persona_id: str, before: int | None, limit: int) -> list[AuditRow]:
        rows = self._c.fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM severance.audit WHERE store_id = %(s)s"
            " AND persona_id = %(about)s AND seq < %(before)s ORDER BY seq DESC LIMIT %(n)s",
            {"about": persona_id, "before": 2**62 if before is None else before, "n": limit},
        )
        return [AuditRow(*r) for r in rows]

    def last_audit(self) -> AuditRow | None:
        rows = self._c.fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM severance.audit WHERE store_id = %(s)s"
            " ORDER BY seq DESC LIMIT 1"
        )
        return AuditRow(*rows[0]) if rows else None

    # -- memories -----------------------------------------------------------------------------
    def rows(self, persona_id: str) -> PostgresPersonaRows:
        return PostgresPersonaRows(self._c, persona_id)

    def vector_rows(self, persona_id: str) -> PostgresPersonaRows:
        return PostgresPersonaRows(self._c, persona_id)


def _pass(r: Sequence[Any]) -> PassRow:
    return PassRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bytes(r[10]))
