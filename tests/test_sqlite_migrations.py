"""The SQLite schema after migrating: a new store and a store made at every older version end
with the same schema, and that schema is the one recorded here (as llm's test_migrate does)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from severance.backends.sqlite import DB_FILENAME, SQLiteBackend
from severance.backends.sqlite_connection import SQLiteConnection
from severance.backends.sqlite_migrations import MIGRATIONS
from severance.errors import StorageError

#: ``sqlite_master`` of a current store, normalised (see ``_schema``).
EXPECTED = (
    "index audit_by_persona ON audit: CREATE INDEX audit_by_persona ON audit(persona_id,seq)",
    "index memories_by_learned ON memories:"
    " CREATE INDEX memories_by_learned ON memories(persona_id,learned_at,id)",
    "index memories_by_seq ON memories: CREATE INDEX memories_by_seq ON memories(persona_id,seq)",
    "index passes_by_persona ON passes: CREATE INDEX passes_by_persona ON passes(persona_id)",
    "index sqlite_autoindex_counters_1 ON counters: -",
    "index sqlite_autoindex_floors_1 ON floors: -",
    "index sqlite_autoindex_history_1 ON history: -",
    "index sqlite_autoindex_memories_1 ON memories: -",
    "index sqlite_autoindex_meta_1 ON meta: -",
    "index sqlite_autoindex_passes_1 ON passes: -",
    "index sqlite_autoindex_passes_2 ON passes: -",
    "index sqlite_autoindex_personas_1 ON personas: -",
    "index sqlite_autoindex_personas_2 ON personas: -",
    "index sqlite_autoindex_snapshots_1 ON snapshots: -",
    "index sqlite_autoindex_tombstones_1 ON tombstones: -",
    "table audit ON audit: CREATE TABLE audit(seq INTEGER PRIMARY KEY,at REAL NOT NULL,event TEXT"
    " NOT NULL,persona_id TEXT,persona TEXT,detail TEXT NOT NULL,prev_hash TEXT NOT NULL,hash"
    " TEXT NOT NULL)",
    "table counters ON counters: CREATE TABLE counters(name TEXT PRIMARY KEY,value INTEGER NOT"
    " NULL)",
    "table floors ON floors: CREATE TABLE floors(name TEXT PRIMARY KEY,position INTEGER NOT NULL,"
    "persona_id TEXT NOT NULL REFERENCES personas(id),rule TEXT NOT NULL,is_default INTEGER NOT"
    " NULL,floor_id TEXT NOT NULL DEFAULT '',mac BLOB NOT NULL DEFAULT x'')",
    "table history ON history: CREATE TABLE history(persona_id TEXT NOT NULL,memory_id TEXT NOT"
    " NULL,version INTEGER NOT NULL,occurred_at REAL NOT NULL,updated_at REAL NOT NULL,"
    "replaced_at REAL NOT NULL,payload BLOB NOT NULL,PRIMARY KEY(persona_id,memory_id,version))",
    "table memories ON memories: CREATE TABLE memories(persona_id TEXT NOT NULL,id TEXT NOT NULL,"
    "seq INTEGER NOT NULL,version INTEGER NOT NULL,learned_at REAL NOT NULL,occurred_at REAL NOT"
    " NULL,updated_at REAL NOT NULL,payload BLOB NOT NULL,vector BLOB NOT NULL,"
    "UNIQUE(persona_id,id))",
    "table meta ON meta: CREATE TABLE meta(key TEXT PRIMARY KEY,value TEXT NOT NULL)",
    "table passes ON passes: CREATE TABLE passes(id TEXT PRIMARY KEY,token_hash TEXT NOT NULL"
    " UNIQUE,floor TEXT NOT NULL,persona_id TEXT NOT NULL,created_at REAL NOT NULL,expires_at"
    " REAL,read_only INTEGER NOT NULL,revoked_at REAL,label TEXT,floor_id TEXT NOT NULL DEFAULT"
    " '',mac BLOB NOT NULL DEFAULT x'')",
    "table personas ON personas: CREATE TABLE personas(id TEXT PRIMARY KEY,name TEXT NOT NULL"
    " UNIQUE,created_at REAL NOT NULL,wrapped_key BLOB NOT NULL,sealed INTEGER NOT NULL,seal_kdf"
    " TEXT,embedder TEXT NOT NULL,dimension INTEGER NOT NULL,mac BLOB NOT NULL DEFAULT x'')",
    "table snapshots ON snapshots: CREATE TABLE snapshots(persona_id TEXT NOT NULL,part INTEGER"
    " NOT NULL,watermark INTEGER NOT NULL,chunk BLOB NOT NULL,PRIMARY KEY(persona_id,part))",
    "table tombstones ON tombstones: CREATE TABLE tombstones(persona_id TEXT NOT NULL,memory_id"
    " TEXT NOT NULL,seq INTEGER NOT NULL,PRIMARY KEY(persona_id,memory_id))",
)


def _schema(db_path: Path) -> tuple[str, ...]:
    """``sqlite_master`` with whitespace collapsed and no spaces around ``(``, ``)`` and ``,``:
    the same schema however its statements were laid out."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert version == len(MIGRATIONS)

    def norm(sql: str | None) -> str:
        if sql is None:
            return "-"
        return re.sub(r" ?([(),]) ?", r"\1", re.sub(r"\s+", " ", sql).strip())

    return tuple(f"{kind} {name} ON {table}: {norm(sql)}" for kind, name, table, sql in rows)


def _store_at(path: Path, version: int) -> Path:
    """A store directory whose database had only the first ``version`` migrations."""
    path.mkdir()
    connection = SQLiteConnection(path / DB_FILENAME, str(path))
    connection.open_new()
    connection.migrate(upto=version)
    assert connection.schema_version() == version
    connection.close()
    return path


def test_a_new_store_has_the_recorded_schema(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "new")
    backend.create({"k": "v"})
    backend.close()
    assert _schema(tmp_path / "new" / DB_FILENAME) == EXPECTED


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_an_older_store_migrates_to_the_same_schema(tmp_path: Path, version: int) -> None:
    new = SQLiteBackend(tmp_path / "new")
    new.create({})
    new.close()
    old = SQLiteBackend(_store_at(tmp_path / "old", version))
    assert old.schema_version() == len(MIGRATIONS)  # migrated on first use
    old.close()
    assert _schema(tmp_path / "old" / DB_FILENAME) == _schema(tmp_path / "new" / DB_FILENAME)
    assert _schema(tmp_path / "old" / DB_FILENAME) == EXPECTED


def test_rows_of_a_version_1_store_survive_migrating(tmp_path: Path) -> None:
    path = _store_at(tmp_path / "v1", 1)
    with sqlite3.connect(path / DB_FILENAME) as db:
        db.execute("INSERT INTO personas VALUES ('p_1', 'work', 1.0, x'00', 0, NULL, 'e', 4)")
        db.execute("INSERT INTO floors VALUES ('office', 0, 'p_1', '{}', 1)")
        db.execute("INSERT INTO meta VALUES ('k', 'v')")
    db.close()
    backend = SQLiteBackend(path)
    try:
        [persona] = backend.personas()
        assert (persona.id, persona.name, persona.mac) == ("p_1", "work", b"")
        [floor] = backend.floors()
        assert (floor.name, floor.persona_id, floor.id, floor.mac) == ("office", "p_1", "", b"")
        assert backend.get_meta() == {"k": "v"}
        assert backend.passes() == []  # the table version 2 added
    finally:
        backend.close()


def test_a_failed_migration_leaves_the_store_at_its_version(tmp_path: Path) -> None:
    path = _store_at(tmp_path / "v2", 2)
    with sqlite3.connect(path / DB_FILENAME) as db:
        # A column version 3 adds, already there: its ALTER TABLE fails halfway through.
        db.execute("ALTER TABLE passes ADD COLUMN mac BLOB")
    db.close()
    backend = SQLiteBackend(path)
    for _ in range(2):  # and again on the next use: never an old schema used as if current
        with pytest.raises(StorageError, match="duplicate column"):
            backend.personas()
    backend.close()
    with sqlite3.connect(path / DB_FILENAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = [r[1] for r in db.execute("PRAGMA table_info(personas)")]
    db.close()
    assert "mac" not in columns  # version 3's first statement was rolled back
