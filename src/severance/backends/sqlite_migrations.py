"""Numbered schema migrations of the SQLite back-end.

``MIGRATIONS[i]`` takes a store's schema from version i to i + 1; the version is SQLite's
``PRAGMA user_version``. A new store runs them all; a store made by an older version runs the
missing ones the first time it is opened, in one transaction (a failed step leaves the store
as it was). Each step is plain DDL, run statement by statement inside the caller's
transaction::

    meta          key -> value: store-wide settings
    counters      'seq' -> the last sequence number handed out (commit-ordered)
    personas      wrapped keys, embedder, MAC
    floors        routing rules, stable id, MAC
    passes        HTTP bearer tokens (their SHA-256 only), MAC
    memories      persona_id, id -> sealed payload and vector, seq
    history       superseded versions (sealed payloads)
    tombstones    deleted ids with the seq of their deletion
    snapshots     index snapshots of older versions (newer ones are files: snapshot_files)
    audit         the hash chain
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = [
    "MIGRATIONS",
    "Migration",
    "m001_tables",
    "m002_passes",
    "m003_authenticated_records",
    "migrate",
    "schema_version",
]

Migration = Callable[[sqlite3.Connection], None]


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would break the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_tables(db: sqlite3.Connection) -> None:
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


def m002_passes(db: sqlite3.Connection) -> None:
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


def m003_authenticated_records(db: sqlite3.Connection) -> None:
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
MIGRATIONS: list[Migration] = [m001_tables, m002_passes, m003_authenticated_records]


def schema_version(db: sqlite3.Connection) -> int:
    """How many migrations the database has had (0: a new, empty database)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, upto: int | None = None) -> int:
    """Inside the caller's transaction: apply the missing migrations (up to ``upto``, by
    default all of them); returns the version reached."""
    target = len(MIGRATIONS) if upto is None else upto
    for version in range(schema_version(db), target):
        MIGRATIONS[version](db)
        # PRAGMA takes no bind parameters; the value is an int of our own.
        db.execute(f"PRAGMA user_version = {version + 1}")
    return schema_version(db)
