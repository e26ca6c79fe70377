"""The embedded back-end: one SQLite database per store, in WAL mode.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` means a committed transaction has
been fsynced to the WAL before ``commit`` returns, so a ``remember`` that returned survives
kill -9 and power loss. ``secure_delete`` zeroes freed content in place and ``temp_store=MEMORY``
keeps sorts and temporary tables out of temp files. Only ciphertext reaches this module.

One connection is shared by the threads of a process behind a re-entrant lock; other processes
use their own connections and SQLite's file locking (``BEGIN IMMEDIATE`` + busy timeout).
Sequence numbers come from a counter row bumped inside the writing transaction, so they are
commit-ordered by construction (writers are serialised by the database lock).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    AlreadyExistsError,
    ConflictError,
    MemoryNotFoundError,
    PersonaNotFoundError,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
    StorePathError,
)
from .base import (
    AuditRow,
    Changes,
    FloorRow,
    HistoryRow,
    MemoryRow,
    PassRow,
    PersonaRow,
    Snapshot,
)

__all__ = ["DB_FILENAME", "SQLiteBackend", "map_sqlite_errors"]

DB_FILENAME = "store.db"
_MEMORY_COLUMNS = "id, seq, version, learned_at, occurred_at, updated_at, payload, vector"
_PASS_COLUMNS = (
    "id, token_hash, floor, persona_id, created_at, expires_at, read_only, revoked_at, label,"
    " floor_id, mac"
)
_PERSONA_COLUMNS = "id, name, created_at, wrapped_key, sealed, seal_kdf, embedder, dimension, mac"
_FLOOR_COLUMNS = "name, position, persona_id, rule, is_default, floor_id, mac"


@contextmanager
def map_sqlite_errors() -> Iterator[None]:
    """Translate driver errors into Severance errors at the back-end boundary."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        if "UNIQUE" in str(e) or "PRIMARY KEY" in str(e):
            raise AlreadyExistsError("that name is already in use") from None
        raise StorageError(f"database constraint failed: {e}") from None
    except sqlite3.DatabaseError as e:
        raise StorageError(f"database error: {e}") from None


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would break the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters VALUES ('seq', 0);
        CREATE TABLE personas (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            wrapped_key BLOB NOT NULL,
            sealed INTEGER NOT NULL,
            seal_kdf TEXT,
            embedder TEXT NOT NULL,
            dimension INTEGER NOT NULL
        );
        CREATE TABLE floors (
            name TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            persona_id TEXT NOT NULL REFERENCES personas(id),
            rule TEXT NOT NULL,
            is_default INTEGER NOT NULL
        );
        CREATE TABLE memories (
            persona_id TEXT NOT NULL,
            id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            version INTEGER NOT NULL,
            learned_at REAL NOT NULL,
            occurred_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            payload BLOB NOT NULL,
            vector BLOB NOT NULL,
            UNIQUE (persona_id, id)
        );
        CREATE INDEX memories_by_seq ON memories (persona_id, seq);
        CREATE INDEX memories_by_learned ON memories (persona_id, learned_at, id);
        CREATE TABLE history (
            persona_id TEXT NOT NULL,
            memory_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            occurred_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            replaced_at REAL NOT NULL,
            payload BLOB NOT NULL,
            PRIMARY KEY (persona_id, memory_id, version)
        );
        CREATE TABLE tombstones (
            persona_id TEXT NOT NULL,
            memory_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (persona_id, memory_id)
        );
        CREATE TABLE snapshots (
            persona_id TEXT NOT NULL,
            part INTEGER NOT NULL,
            watermark INTEGER NOT NULL,
            chunk BLOB NOT NULL,
            PRIMARY KEY (persona_id, part)
        );
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            event TEXT NOT NULL,
            persona_id TEXT,
            persona TEXT,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_by_persona ON audit (persona_id, seq);
        """,
    )


def _v2(db: sqlite3.Connection) -> None:
    # Passes for the HTTP server: only a hash of each token is kept.
    _run_script(
        db,
        """
        CREATE TABLE passes (
            id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            floor TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL,
            read_only INTEGER NOT NULL,
            revoked_at REAL,
            label TEXT
        );
        CREATE INDEX passes_by_persona ON passes (persona_id);
        """,
    )


def _v3(db: sqlite3.Connection) -> None:
    # Authenticated configuration (severance.records): a MAC on every row that grants access
    # or routes memories, and floors with a stable id that passes follow. Rows of an older
    # store are signed by the key holder on first open (and that adoption is audited).
    _run_script(
        db,
        """
        ALTER TABLE personas ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
        ALTER TABLE floors ADD COLUMN floor_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE floors ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
        ALTER TABLE passes ADD COLUMN floor_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE passes ADD COLUMN mac BLOB NOT NULL DEFAULT x''
        """,
    )


#: Numbered migrations; ``MIGRATIONS[i]`` takes the schema from version i to i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]


class SQLiteBackend:
    """A store in one directory: ``<path>/store.db`` (+ ``-wal`` and ``-shm`` while open)."""

    schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    indexed_vectors: ClassVar[bool] = False  # vectors are always sealed here

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        if text.startswith("sqlite://"):
            text = text[len("sqlite://") :]
        self.path = Path(text).expanduser()
        self.url = str(self.path)
        self.db_path = self.path / DB_FILENAME
        self._lock = threading.RLock()
        self._depth = 0
        self._db: sqlite3.Connection | None = None
        if self.path.exists() and not self.path.is_dir():
            raise StorePathError(f"{self.url!r} is a file, not a store directory")

    # -- connection and transactions ----------------------------------------------------------
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

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            if not self.db_path.is_file():
                raise StoreNotFoundError(f"no store at {self.url!r}")
            if self.db_path.stat().st_size == 0:
                # SQLite would take an empty file as a new database and build tables in it.
                raise StorePathError(
                    f"{str(self.db_path)!r} is empty (0 bytes): it holds no store; restore it"
                    " from a backup, or delete it to start afresh"
                )
            self._db = self._connect()
            # A store made by an older version gains the newer tables on first use.
            if self.schema_version() < len(MIGRATIONS):
                self.migrate()
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
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
            with map_sqlite_errors():
                db.execute("COMMIT")

    def lock(self) -> None:
        """Nothing to do: every transaction begins IMMEDIATE, holding the write lock."""

    def _execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        with self._lock, map_sqlite_errors():
            return self.db.execute(sql, params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock, map_sqlite_errors():
            return self.db.execute(sql, params).fetchall()

    def _next_seqs(self, n: int) -> int:
        """Reserve ``n`` sequence numbers inside the current transaction; returns the last."""
        row = self._execute(
            "UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value", (n,)
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- lifecycle ----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.db_path.is_file()

    def create(self, meta: Mapping[str, str]) -> None:
        if self.exists():
            raise StoreExistsError(f"a store already exists at {self.url!r}")
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except (FileExistsError, NotADirectoryError):
            raise StorePathError(f"{self.url!r} is not a usable directory") from None
        except OSError as e:
            raise StorePathError(f"cannot create {self.url!r}: {e.strerror}") from None
        self._db = self._connect()
        try:
            with self.transaction():
                for migrate in MIGRATIONS:
                    migrate(self.db)
                self.db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        except BaseException:
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
            raise

    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def migrate(self) -> None:
        """Bring an older store's schema up to date."""
        with self.transaction():
            for version in range(self.schema_version(), len(MIGRATIONS)):
                MIGRATIONS[version](self.db)
                self.db.execute(f"PRAGMA user_version = {version + 1}")

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def set_meta(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- personas -----------------------------------------------------------------------------
    def personas(self) -> list[PersonaRow]:
        rows = self._query(f"SELECT {_PERSONA_COLUMNS} FROM personas ORDER BY created_at, name")
        return [
            PersonaRow(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5], r[6], r[7], bytes(r[8]))
            for r in rows
        ]

    def insert_persona(self, row: PersonaRow) -> None:
        self._execute(
            f"INSERT INTO personas ({_PERSONA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.name,
                row.created_at,
                row.wrapped_key,
                int(row.sealed),
                row.seal_kdf,
                row.embedder,
                row.dimension,
                row.mac,
            ),
        )

    def update_persona(self, row: PersonaRow) -> None:
        self._execute(
            "UPDATE personas SET wrapped_key = ?, sealed = ?, seal_kdf = ?, embedder = ?,"
            " dimension = ?, mac = ? WHERE id = ?",
            (
                row.wrapped_key,
                int(row.sealed),
                row.seal_kdf,
                row.embedder,
                row.dimension,
                row.mac,
                row.id,
            ),
        )

    def delete_persona(self, persona_id: str) -> None:
        with self.transaction():
            for table in ("memories", "history", "tombstones", "snapshots", "floors", "passes"):
                self._execute(f"DELETE FROM {table} WHERE persona_id = ?", (persona_id,))
            self._execute("DELETE FROM personas WHERE id = ?", (persona_id,))

    def reclaim(self) -> None:
        with self._lock, map_sqlite_errors():
            # Checkpoint first so the WAL's copies of deleted pages reach the main file (where
            # secure_delete has zeroed them), then VACUUM rebuilds the file without free pages,
            # then truncate the WAL that VACUUM itself wrote.
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- floors -------------------------------------------------------------------------------
    def floors(self) -> list[FloorRow]:
        rows = self._query(f"SELECT {_FLOOR_COLUMNS} FROM floors ORDER BY position, name")
        return [FloorRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], bytes(r[6])) for r in rows]

    def insert_floor(self, row: FloorRow) -> None:
        self._execute(
            f"INSERT INTO floors ({_FLOOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.name,
                row.position,
                row.persona_id,
                row.rule,
                int(row.is_default),
                row.id,
                row.mac,
            ),
        )

    def update_floor(self, row: FloorRow) -> None:
        self._execute(
            "UPDATE floors SET position = ?, persona_id = ?, rule = ?, is_default = ?,"
            " floor_id = ?, mac = ? WHERE name = ?",
            (
                row.position,
                row.persona_id,
                row.rule,
                int(row.is_default),
                row.id,
                row.mac,
                row.name,
            ),
        )

    def delete_floor(self, name: str) -> bool:
        return self._execute("DELETE FROM floors WHERE name = ?", (name,)).rowcount > 0

    # -- passes -------------------------------------------------------------------------------
    def insert_pass(self, row: PassRow) -> None:
        self._execute(
            f"INSERT INTO passes ({_PASS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.token_hash,
                row.floor,
                row.persona_id,
                row.created_at,
                row.expires_at,
                int(row.read_only),
                row.revoked_at,
                row.label,
                row.floor_id,
                row.mac,
            ),
        )

    def passes(self) -> list[PassRow]:
        rows = self._query(f"SELECT {_PASS_COLUMNS} FROM passes ORDER BY created_at, id")
        return [_pass(r) for r in rows]

    def pass_by_hash(self, token_hash: str) -> PassRow | None:
        rows = self._query(
            f"SELECT {_PASS_COLUMNS} FROM passes WHERE token_hash = ?", (token_hash,)
        )
        return _pass(rows[0]) if rows else None

    def revoke_pass(self, pass_id: str, at: float) -> bool:
        cur = self._execute(
            "UPDATE passes SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, pass_id)
        )
        return cur.rowcount > 0

    def update_pass(self, row: PassRow) -> None:
        self._execute(
            "UPDATE passes SET floor = ?, persona_id = ?, created_at = ?, expires_at = ?,"
            " read_only = ?, revoked_at = ?, label = ?, floor_id = ?, mac = ? WHERE id = ?",
            (
                row.floor,
                row.persona_id,
                row.created_at,
                row.expires_at,
                int(row.read_only),
                row.revoked_at,
                row.label,
                row.floor_id,
                row.mac,
                row.id,
            ),
        )

    # -- audit --------------------------------------------------------------------------------
    def append_audit(self, row: AuditRow) -> None:
        self._execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.seq,
                row.at,
                row.event,
                row.persona_id,
                row.persona,
                row.detail,
                row.prev_hash,
                row.hash,
            ),
        )

    def audit_rows(self, persona_id: str | None = None) -> list[AuditRow]:
        sql = "SELECT seq, at, event, persona_id, persona, detail, prev_hash, hash FROM audit"
        if persona_id is None:
            rows = self._query(sql + " ORDER BY seq")
        else:
            rows = self._query(sql + " WHERE persona_id = ? ORDER BY seq", (persona_id,))
        return [AuditRow(*r) for r in rows]

    def audit_page(self, persona_id: str, before: int | None, limit: int) -> list[AuditRow]:
        rows = self._query(
            "SELECT seq, at, event, persona_id, persona, detail, prev_hash, hash FROM audit"
            " WHERE persona_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (persona_id, 2**62 if before is None else before, limit),
        )
        return [AuditRow(*r) for r in rows]

    def last_audit(self) -> AuditRow | None:
        rows = self._query(
            "SELECT seq, at, event, persona_id, persona, detail, prev_hash, hash"
            " FROM audit ORDER BY seq DESC LIMIT 1"
        )
        return AuditRow(*rows[0]) if rows else None

    # -- memories -----------------------------------------------------------------------------
    def rows(self, persona_id: str) -> SQLitePersonaRows:
        return SQLitePersonaRows(self, persona_id)


def _pass(r: Sequence[Any]) -> PassRow:
    return PassRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9], bytes(r[10]))


def _memory(r: Sequence[Any]) -> MemoryRow:
    return MemoryRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), bytes(r[7]))


class SQLitePersonaRows:
    """One persona's rows. Every statement carries ``persona_id = ?`` bound to this handle."""

    def __init__(self, backend: SQLiteBackend, persona_id: str) -> None:
        self._b = backend
        self.persona_id = persona_id

    def lock(self) -> None:
        # BEGIN IMMEDIATE already holds the database's write lock; only check the persona.
        if not self.alive():
            raise PersonaNotFoundError("this persona was erased")

    def alive(self) -> bool:
        return bool(self._b._query("SELECT 1 FROM personas WHERE id = ?", (self.persona_id,)))

    def insert(self, rows: Sequence[MemoryRow]) -> list[int]:
        if not rows:
            return []
        with self._b.transaction():
            self.lock()
            last = self._b._next_seqs(len(rows))
            seqs = list(range(last - len(rows) + 1, last + 1))
            with map_sqlite_errors():
                self._b.db.executemany(
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
        with self._b.transaction():
            self.lock()
            seq = self._b._next_seqs(1)
            cur = self._b._execute(
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
            self._b._execute(
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
        with self._b.transaction():
            self.lock()
            for memory_id, (version, vector) in vectors.items():
                cur = self._b._execute(
                    "UPDATE memories SET vector = ?, seq = ? WHERE persona_id = ? AND id = ?"
                    " AND version = ?",
                    (vector, self._b._next_seqs(1), self.persona_id, memory_id, version),
                )
                done += cur.rowcount
        return done

    def delete_many(self, memory_ids: Sequence[str]) -> int:
        deleted = 0
        with self._b.transaction():
            self.lock()
            for memory_id in memory_ids:
                cur = self._b._execute(
                    "DELETE FROM memories WHERE persona_id = ? AND id = ?",
                    (self.persona_id, memory_id),
                )
                if cur.rowcount:
                    deleted += 1
                    self._b._execute(
                        "DELETE FROM history WHERE persona_id = ? AND memory_id = ?",
                        (self.persona_id, memory_id),
                    )
                    self._b._execute(
                        "INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)",
                        (self.persona_id, memory_id, self._b._next_seqs(1)),
                    )
        return deleted

    def get(self, memory_id: str) -> MemoryRow | None:
        rows = self._b._query(
            f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE persona_id = ? AND id = ?",
            (self.persona_id, memory_id),
        )
        return _memory(rows[0]) if rows else None

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRow]:
        found: dict[str, MemoryRow] = {}
        ids = list(dict.fromkeys(memory_ids))
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for r in self._b._query(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE persona_id = ? AND id IN ({marks})",
                (self.persona_id, *part),
            ):
                found[r[0]] = _memory(r)
        return found

    def history(self, memory_id: str) -> list[HistoryRow]:
        rows = self._b._query(
            "SELECT memory_id, version, occurred_at, updated_at, replaced_at, payload"
            " FROM history WHERE persona_id = ? AND memory_id = ? ORDER BY version",
            (self.persona_id, memory_id),
        )
        return [HistoryRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows]

    def page(self, offset: int, limit: int, newest_first: bool) -> list[MemoryRow]:
        order = "DESC" if newest_first else "ASC"
        rows = self._b._query(
            f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE persona_id = ?"
            f" ORDER BY learned_at {order}, seq {order}, id {order} LIMIT ? OFFSET ?",
            (self.persona_id, limit, offset),
        )
        return [_memory(r) for r in rows]

    def count(self) -> int:
        return int(
            self._b._query(
                "SELECT count(*) FROM memories WHERE persona_id = ?", (self.persona_id,)
            )[0][0]
        )

    def scan(self, batch_size: int) -> Iterator[list[MemoryRow]]:
        last_seq = -1
        while True:
            rows = self._b._query(
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
        with self._b._lock:
            changed = dict(
                self._b._query(
                    "SELECT id, seq FROM memories WHERE persona_id = ? AND seq > ?",
                    (self.persona_id, seq),
                )
            )
            deleted = self._b._query(
                "SELECT memory_id, seq FROM tombstones WHERE persona_id = ? AND seq > ?",
                (self.persona_id, seq),
            )
        high = max([seq, *changed.values(), *(s for _, s in deleted)])
        return Changes(changed, tuple(m for m, _ in deleted), high)

    def high_water(self) -> int:
        return int(self._b._query("SELECT value FROM counters WHERE name = 'seq'")[0][0])

    def write_snapshot(self, snapshot: Snapshot) -> None:
        with self._b.transaction():
            self.lock()
            self._b._execute("DELETE FROM snapshots WHERE persona_id = ?", (self.persona_id,))
            with map_sqlite_errors():
                self._b.db.executemany(
                    "INSERT INTO snapshots VALUES (?, ?, ?, ?)",
                    [
                        (self.persona_id, part, snapshot.watermark, chunk)
                        for part, chunk in enumerate(snapshot.chunks)
                    ],
                )
            self._b._execute(
                "DELETE FROM tombstones WHERE persona_id = ? AND seq <= ?",
                (self.persona_id, snapshot.watermark),
            )

    def read_snapshot(self) -> Snapshot | None:
        rows = self._b._query(
            "SELECT watermark, chunk FROM snapshots WHERE persona_id = ? ORDER BY part",
            (self.persona_id,),
        )
        if not rows:
            return None
        return Snapshot(int(rows[0][0]), tuple(bytes(r[1]) for r in rows))

    def drop_snapshot(self) -> None:
        self._b._execute("DELETE FROM snapshots WHERE persona_id = ?", (self.persona_id,))
