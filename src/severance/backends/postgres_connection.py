"""The connection to one store in PostgreSQL, shared by the back-end, its rows and vectors.

It holds what every statement of the store needs: the psycopg connection (one per back-end,
shared by threads behind a re-entrant lock held for the whole of a transaction), the store's
numeric id, whether the login bypasses row-level security, and the transaction that sets the
persona. The scoping itself is described in the ``postgres`` module docstring: every
transaction opens with ``SET LOCAL severance.store`` (and ``severance.persona`` when it
touches a persona's rows), as ``severance_app`` for a privileged login; a statement on its
own goes out as one pipeline (BEGIN, the settings, the statement, COMMIT).

Sequence numbers are taken with :meth:`PostgresConnection.reserve`, which bumps the store's
counter row: its lock, held to the end of the transaction, makes seq order commit order.
Every psycopg error is translated by :func:`map_postgres_errors`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import ExecStatus, TransactionStatus

from ..errors import (
    AlreadyExistsError,
    StorageError,
    StorageTimeoutError,
    StoreExistsError,
    StoreNotFoundError,
)
from . import postgres_migrations as migrations
from .postgres_vector_type import register_vector

__all__ = ["PostgresConnection", "map_postgres_errors", "set_local"]

# Unique constraints whose violation means "already in use".
_IN_USE = {
    "personas_name_key": "a persona with that name already exists",
    "personas_pkey": "a persona with that id already exists",
    "floors_pkey": "a floor with that name already exists",
    "memories_pkey": "a memory with that id already exists",
    "passes_pkey": "a pass with that id already exists",
    "passes_token_hash_key": "a pass with that token already exists",
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
    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as e:
        # Subclasses of OperationalError, but the connection is fine: a time limit was hit.
        raise StorageTimeoutError(
            f"PostgreSQL cancelled the statement (a time limit was reached): {_primary(e)}"
        ) from None
    except psycopg.OperationalError as e:
        raise StorageError(f"PostgreSQL connection failed: {_primary(e)}") from None
    except psycopg.Error as e:
        raise StorageError(f"PostgreSQL error {e.sqlstate or ''}: {_primary(e)}") from None


def set_local(name: str, value: str) -> sql.Composed:
    """``SET LOCAL name = 'value'``. SET takes no bind parameters: the value goes in as a
    properly quoted literal."""
    return sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value))


def _rows(cursor: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    # The result's status, not cursor.description (which builds column objects for nothing).
    result = cursor.pgresult
    return cursor.fetchall() if result and result.status == ExecStatus.TUPLES_OK else []


Params = Sequence[Any] | dict[str, Any]


class PostgresConnection:
    """The store ``store_name`` in the database at ``conninfo`` (``url``: the same, masked),
    connected on first use (and again after the connection was lost between transactions)."""

    def __init__(self, conninfo: str, store_name: str, url: str) -> None:
        self.conninfo = conninfo
        self.store_name = store_name
        self.url = url
        #: Held by a thread for the whole of a transaction.
        self.mutex = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._depth = 0
        self._tx_persona: str | None = None
        self._store_id: int | None = None
        self._privileged = False  # the login bypasses row-level security: use the app role
        self._vector_type = False
        self._begin_cache: dict[str | None, list[bytes]] = {}

    # -- the connection -----------------------------------------------------------------------
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection (autocommit: transactions are begun explicitly by
        :meth:`tx`, and VACUUM can run)."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._depth:
            raise StorageError("the connection to PostgreSQL was lost inside a transaction")
        with map_postgres_errors():
            conn = psycopg.connect(self.conninfo, autocommit=True)
            try:
                conn.execute("SET synchronous_commit = on")
                row = conn.execute(
                    "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
                self._privileged = bool(row and row[0])
                self._vector_type = register_vector(conn)
            except BaseException:
                conn.close()
                raise
        self._conn = conn
        return conn

    @property
    def privileged(self) -> bool:
        """Whether the login bypasses row-level security (so transactions run as the
        application role); known once connected."""
        return self._privileged

    def ensure_vector_type(self, conn: psycopg.Connection[Any]) -> None:
        """Register pgvector's type on the connection if it was installed after connecting."""
        if not self._vector_type:
            self._vector_type = register_vector(conn)

    @property
    def in_transaction(self) -> bool:
        """Whether this thread has a transaction open (call with :attr:`mutex` held)."""
        return self._depth > 0

    def close(self) -> None:
        with self.mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __del__(self) -> None:
        # A back-end dropped unclosed (say, by a Store.init that found a store already there)
        # closes its connection itself, as a file object would.
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            with suppress(Exception):
                conn.close()

    # -- the store ----------------------------------------------------------------------------
    @property
    def store_id(self) -> int:
        """The store's numeric id (looked up once); StoreNotFoundError if there is none."""
        if self._store_id is None:
            self._store_id = self.lookup_store()
            if self._store_id is None:
                raise StoreNotFoundError(f"no store named {self.store_name!r} at {self.url}")
        return self._store_id

    @store_id.setter
    def store_id(self, value: int) -> None:
        self._store_id = value

    def lookup_store(self) -> int | None:
        """The id of the store row named :attr:`store_name`, if the schema and row exist."""
        with self.mutex, map_postgres_errors():
            conn = self.raw()
            if migrations.schema_version(conn) == 0:
                return None
            row = conn.execute(
                "SELECT store_id FROM severance.stores WHERE name = %s", (self.store_name,)
            ).fetchone()
        return int(row[0]) if row else None

    def params(self, persona_id: str | None, **params: Any) -> dict[str, Any]:
        """Named parameters with ``s`` (the store id) and ``p`` (the persona id) added."""
        return {"s": self.store_id, "p": persona_id, **params}

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def tx(self, persona_id: str | None) -> Iterator[psycopg.Connection[Any]]:
        """A transaction (joined if one is open) scoped to the store and, if given, a persona."""
        with self.mutex:
            if self._depth:
                conn = self.raw()
                if persona_id is not None and persona_id != self._tx_persona:
                    with map_postgres_errors():
                        conn.execute(set_local("severance.persona", persona_id))
                    self._tx_persona = persona_id
                self._depth += 1
                try:
                    with map_postgres_errors():
                        yield conn
                finally:
                    self._depth -= 1
                return
            conn = self.raw()
            begin = self._begin(conn, persona_id)
            try:
                with map_postgres_errors():
                    conn.execute(b"; ".join(begin))  # one round trip
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

    def _begin(self, conn: psycopg.Connection[Any], persona_id: str | None) -> list[bytes]:
        """The statements that open a transaction of this store (and persona), rendered once
        per persona: composing and quoting them cost more than the round trip they share."""
        if (begin := self._begin_cache.get(persona_id)) is not None:
            return begin
        parts: list[sql.SQL | sql.Composed] = [sql.SQL("BEGIN")]
        if self._privileged:
            parts.append(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(migrations.APP_ROLE)))
        parts.append(set_local("severance.store", str(self.store_id)))
        if persona_id is not None:
            parts.append(set_local("severance.persona", persona_id))
        if len(self._begin_cache) > 1000:
            self._begin_cache.clear()
        begin = self._begin_cache[persona_id] = [part.as_bytes(conn) for part in parts]
        return begin

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        self._depth, self._tx_persona = 0, None
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()  # broken: the next call reconnects

    @contextmanager
    def as_owner(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Run DDL as the login (the schema's owner) inside the current transaction."""
        if not self._privileged:
            yield
            return
        conn.execute("SET LOCAL ROLE NONE")
        yield
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(migrations.APP_ROLE)))

    def fetch(
        self,
        query: str | sql.Composed,
        params: Params | None = None,
        persona_id: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement in its own (or the open) transaction; its rows, if any.

        Named parameters get ``s`` (the store id) and ``p`` (the persona id) added.
        """
        with self.mutex:
            if params is None or isinstance(params, dict):
                params = self.params(persona_id, **(params or {}))
            if self._depth:
                with self.tx(persona_id) as conn:
                    cursor = conn.execute(query, params, binary=True)
                    return _rows(cursor)
            # A statement on its own: BEGIN, the settings, the statement and COMMIT go out
            # as one pipeline, so the scoping costs no extra round trip.
            conn = self.raw()
            begin = self._begin(conn, persona_id)
            try:
                with map_postgres_errors():
                    with conn.pipeline():
                        for statement in begin:
                            conn.execute(statement)
                        cursor = conn.execute(query, params, binary=True)
                        conn.execute("COMMIT")
                    return _rows(cursor)
            except BaseException:
                self._rollback(conn)
                raise

    def reserve(self, conn: psycopg.Connection[Any], n: int) -> int:
        """Inside a transaction: take ``n`` seqs (0: only lock the counter, the store's
        writer lock); returns the last one taken."""
        row = conn.execute(
            "UPDATE severance.seq_counters SET last_seq = last_seq + %s"
            " WHERE store_id = %s RETURNING last_seq",
            (n, self._store_id),
        ).fetchone()
        if row is None:
            raise StorageError("the store's sequence counter is missing")
        return int(row[0])
