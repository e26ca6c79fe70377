"""SQLite's errors as Severance errors, chosen by SQLite's result code.

The code, not the message: SQLite's result codes are part of its C API and stable across
versions, while its messages are prose (``database is locked`` is both SQLITE_BUSY and, in
older versions, other conditions). An *extended* code (``SQLITE_CONSTRAINT_UNIQUE``) is looked
up first, then its primary code (the low byte: ``SQLITE_CONSTRAINT``). A driver error without
a code (say, a statement on a closed connection) is a plain :class:`StorageError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..errors import AlreadyExistsError, SeveranceError, StorageError, StorageTimeoutError

__all__ = ["BY_CODE", "map_sqlite_errors", "translate"]

_IN_USE = (AlreadyExistsError, "that name is already in use")

#: SQLite result code (extended or primary) -> the error raised and the start of its message.
BY_CODE: Mapping[int, tuple[type[SeveranceError], str]] = {
    sqlite3.SQLITE_CONSTRAINT_UNIQUE: _IN_USE,
    sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY: _IN_USE,
    sqlite3.SQLITE_CONSTRAINT: (StorageError, "database constraint failed"),
    # The busy timeout (30 s) ran out while another process held the write lock.
    sqlite3.SQLITE_BUSY: (
        StorageTimeoutError,
        "another writer held the database past the time limit",
    ),
    sqlite3.SQLITE_LOCKED: (StorageError, "a table of the database is locked"),
    sqlite3.SQLITE_READONLY: (StorageError, "the database is read-only"),
    sqlite3.SQLITE_FULL: (StorageError, "the database or its disk is full"),
    sqlite3.SQLITE_CORRUPT: (StorageError, "the database file is damaged"),
    sqlite3.SQLITE_NOTADB: (StorageError, "the file is not a SQLite database"),
    sqlite3.SQLITE_CANTOPEN: (StorageError, "the database file cannot be opened"),
}


def translate(error: sqlite3.Error) -> SeveranceError:
    """The Severance error for one driver error (see :data:`BY_CODE`)."""
    code: int | None = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        found = BY_CODE.get(code) or BY_CODE.get(code & 0xFF)
        if found is not None:
            cls, message = found
            # The "in use" message stands alone: SQLite's names the table and column.
            return cls(message if cls is AlreadyExistsError else f"{message}: {error}")
    return StorageError(f"database error: {error}")


@contextmanager
def map_sqlite_errors() -> Iterator[None]:
    """Translate driver errors into Severance errors at the back-end boundary."""
    try:
        yield
    except sqlite3.Error as e:
        raise translate(e) from None
