"""The embedded back-end: one SQLite database per store, in WAL mode.

The store-wide tables (settings, personas, floors, passes, audit) are read and written here;
one persona's rows are :class:`~severance.backends.sqlite_rows.SQLitePersonaRows`. Both hold
the same :class:`~severance.backends.sqlite_connection.SQLiteConnection` (transactions,
statements, sequence numbers; durability is described there). The schema is built by the
numbered steps of :mod:`~severance.backends.sqlite_migrations`; driver errors are translated
by :func:`~severance.backends.sqlite_errors.map_sqlite_errors`. Only ciphertext reaches this
module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ..errors import InvalidInputError, StoreExistsError, StorePathError
from .base import AuditRow, FloorRow, PassRow, PersonaRow, VectorRows
from .snapshot_files import SnapshotFiles
from .sqlite_connection import SQLiteConnection
from .sqlite_errors import map_sqlite_errors  # re-exported: the boundary of this back-end
from .sqlite_migrations import MIGRATIONS
from .sqlite_rows import SQLitePersonaRows

__all__ = ["DB_FILENAME", "MIGRATIONS", "SQLiteBackend", "SQLitePersonaRows", "map_sqlite_errors"]

DB_FILENAME = "store.db"
_PASS_COLUMNS = (
    "id, token_hash, floor, persona_id, created_at, expires_at, read_only, revoked_at, label,"
    " floor_id, mac"
)
_PERSONA_COLUMNS = "id, name, created_at, wrapped_key, sealed, seal_kdf, embedder, dimension, mac"
_FLOOR_COLUMNS = "name, position, persona_id, rule, is_default, floor_id, mac"


class SQLiteBackend:
    """A store in one directory: ``<path>/store.db`` (+ ``-wal`` and ``-shm`` while open)."""

    indexed_vectors: ClassVar[bool] = False  # vectors are always sealed here

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        if text.startswith("sqlite://"):
            text = text[len("sqlite://") :]
        self.path = Path(text).expanduser()
        self.url = str(self.path)
        self.db_path = self.path / DB_FILENAME
        self.snapshot_files = SnapshotFiles(self.path)
        self._c = SQLiteConnection(self.db_path, self.url)
        if self.path.exists() and not self.path.is_dir():
            raise StorePathError(f"{self.url!r} is a file, not a store directory")

    # -- transactions -------------------------------------------------------------------------
    @property
    def connection(self) -> SQLiteConnection:
        """The connection this back-end and its persona rows share."""
        return self._c

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._c.transaction():
            yield

    def lock(self) -> None:
        """Nothing to do: every transaction begins IMMEDIATE, holding the write lock."""

    def close(self) -> None:
        self._c.close()

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
        self._c.open_new()
        try:
            with self._c.transaction():
                self._c.migrate()
                self._c.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        except BaseException:
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
            raise

    def schema_version(self) -> int:
        return self._c.schema_version()

    def migrate(self) -> None:
        """Bring an older store's schema up to date."""
        self._c.migrate()

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]:
        return dict(self._c.query("SELECT key, value FROM meta"))

    def set_meta(self, key: str, value: str) -> None:
        self._c.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- personas -----------------------------------------------------------------------------
    def personas(self) -> list[PersonaRow]:
        rows = self._c.query(f"SELECT {_PERSONA_COLUMNS} FROM personas ORDER BY created_at, name")
        return [
            PersonaRow(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5], r[6], r[7], bytes(r[8]))
            for r in rows
        ]

    def insert_persona(self, row: PersonaRow) -> None:
        self._c.execute(
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
        self._c.execute(
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
                self._c.execute(f"DELETE FROM {table} WHERE persona_id = ?", (persona_id,))
            self._c.execute("DELETE FROM personas WHERE id = ?", (persona_id,))
            self.snapshot_files.remove(persona_id)

    def reclaim(self) -> None:
        # Checkpoint first so the WAL's copies of deleted pages reach the main file (where
        # secure_delete has zeroed them), then VACUUM rebuilds the file without free pages,
        # then truncate the WAL that VACUUM itself wrote.
        with self._c.mutex:
            self._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._c.execute("VACUUM")
            self._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- floors -------------------------------------------------------------------------------
    def floors(self) -> list[FloorRow]:
        rows = self._c.query(f"SELECT {_FLOOR_COLUMNS} FROM floors ORDER BY position, name")
        return [FloorRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], bytes(r[6])) for r in rows]

    def insert_floor(self, row: FloorRow) -> None:
        self._c.execute(
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
        self._c.execute(
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
        return self._c.execute("DELETE FROM floors WHERE name = ?", (name,)).rowcount > 0

    # -- passes -------------------------------------------------------------------------------
    def insert_pass(self, row: PassRow) -> None:
        self._c.execute(
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
        rows = self._c.query(f"SELECT {_PASS_COLUMNS} FROM passes ORDER BY created_at, id")
        return [_pass(r) for r in rows]

    def pass_by_hash(self, token_hash: str) -> PassRow | None:
        rows = self._c.query(
            f"SELECT {_PASS_COLUMNS} FROM passes WHERE token_hash = ?", (token_hash,)
        )
        return _pass(rows[0]) if rows else None

    def revoke_pass(self, pass_id: str, at: float) -> bool:
        cur = self._c.execute(
            "UPDATE passes SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, pass_id)
        )
        return cur.rowcount > 0

    def update_pass(self, row: PassRow) -> None:
        self._c.execute(
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
        self._c.execute(
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
            rows = self._c.query(sql + " ORDER BY seq")
        else:
            rows = self._c.query(sql + " WHERE persona_id = ? ORDER BY seq", (persona_id,))
        return [AuditRow(*r) for r in rows]

    def audit_page(self, persona_id: str, before: int | None, limit: int) -> list[AuditRow]:
        rows = self._c.query(
            "SELECT seq, at, event, persona_id, persona, detail, prev_hash, hash FROM audit"
            " WHERE persona_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (persona_id, 2**62 if before is None else before, limit),
        )
        return [AuditRow(*r) for r in rows]

    def last_audit(self) -> AuditRow | None:
        rows = self._c.query(
            "SELECT seq, at, event, persona_id, persona, detail, prev_hash, hash"
            " FROM audit ORDER BY seq DESC LIMIT 1"
        )
        return AuditRow(*rows[0]) if rows else None

    # -- memories -----------------------------------------------------------------------------
    def rows(self, persona_id: str) -> SQLitePersonaRows:
        return SQLitePersonaRows(self._c, self.snapshot_files, persona_id)

    def vector_rows(self, persona_id: str) -> VectorRows:
        """Never: vectors are always sealed here (:attr:`indexed_vectors` is false)."""
        raise InvalidInputError("this back-end keeps vectors sealed only (use PostgreSQL)")


def _pass(r: Sequence[Any]) -> PassRow:
    return PassRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9], bytes(r[10]))
