"""The connection to one store's SQLite database, shared by the back-end and its rows.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` means a committed transaction has
been fsynced to the WAL before ``commit`` returns, so a ``remember`` that returned survives
kill -9 and power loss. ``secure_delete`` zeroes freed content in place and ``temp_store=MEMORY``
keeps sorts and temporary tables out of temp files.

One connection is shared by the threads of a process behind a re-entrant lock (:attr:`mutex`);
other processes use their own connections and SQLite's file locking (``BEGIN IMMEDIATE`` +
busy timeout). Sequence numbers come from a counter row bumped inside the writing transaction
(:meth:`SQLiteConnection.next_seqs`), so they are commit-ordered by construction: writers are
serialised by the database lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import StoreNotFoundError, StorePathError
from . import sqlite_migrations as migrations
from .sqlite_errors import map_sqlite_errors

__all__ = ["SQLiteConnection"]

Params = Sequence[Any] | Mapping[str, Any]


class SQLiteConnection:
    """The database file ``db_path`` of the store at ``url``, opened on first use.

    Opening an existing database brings its schema up to date (see sqlite_migrations). Every
    method translates driver errors (see sqlite_errors).
    """

    def __init__(self, db_path: Path, url: str) -> None:
        self.db_path = db_path
        self.url = url
        #: Held by a thread for the whole of a transaction, or of a read that must see one
        #: state across several statements.
        self.mutex = threading.RLock()
        self._depth = 0
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        with map_sqlite_errors():
            db = sqlite3.connect(
                self.db_path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=ON")
            db.execute("PRAGMA temp_store=MEMORY")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
        return db

    def open_new(self) -> None:
        """Open (creating) the database file for a new store, without looking for a schema."""
        with self.mutex:
            self.close()
            self._db = self._connect()

    @property
    def db(self) -> sqlite3.Connection:
        """The driver's connection, opened (and the schema migrated) on first use."""
        with self.mutex:
            if self._db is None:
                if not self.db_path.is_file():
                    raise StoreNotFoundError(f"no store at {self.url!r}")
                if self.db_path.stat().st_size == 0:
                    # SQLite would take an empty file as a new database and build tables in it.
                    raise StorePathError(
                        f"{str(self.db_path)!r} is empty (0 bytes): it holds no store; restore"
                        " it from a backup, or delete it to start afresh"
                    )
                self._db = self._connect()
                try:
                    # A store made by an older version gains the newer tables on first use.
                    if self.schema_version() < len(migrations.MIGRATIONS):
                        self.migrate()
                except BaseException:
                    self.close()  # not half-open: the next use tries the migration again
                    raise
            return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``: the database's write lock is held from
        the start), or the one this thread already has open."""
        with self.mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            db = self.db
            with map_sqlite_errors():
                db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                with map_sqlite_errors():
                    db.execute("COMMIT")
            except BaseException:
                # A COMMIT refused (a deferred constraint, SQLITE_BUSY, a full disk) leaves
                # the transaction open: this connection would go on holding the write lock,
                # reading its own uncommitted rows, and commit them with its next write.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement (in the open transaction, or as its own)."""
        with self.mutex, map_sqlite_errors():
            return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
        with self.mutex, map_sqlite_errors():
            self.db.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row one statement returns."""
        with self.mutex, map_sqlite_errors():
            return self.db.execute(sql, params).fetchall()

    def next_seqs(self, n: int) -> int:
        """Reserve ``n`` sequence numbers inside the current transaction; returns the last."""
        row = self.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value", (n,)
        ).fetchone()
        return int(row[0])

    def schema_version(self) -> int:
        with self.mutex, map_sqlite_errors():
            return migrations.schema_version(self.db)

    def migrate(self, upto: int | None = None) -> None:
        """Bring the schema up to date (or up to version ``upto``), in one transaction."""
        with self.transaction(), map_sqlite_errors():
            migrations.migrate(self.db, upto)

    def close(self) -> None:
        with self.mutex:
            if self._db is not None:
                self._db.close()
                self._db = None
