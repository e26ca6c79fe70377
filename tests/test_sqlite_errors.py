"""Every SQLite result code that ``map_sqlite_errors`` maps, provoked for real on a real
database file, comes out as the Severance error its table says; and the mapping reads the
code, never SQLite's message text."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from severance.backends import sqlite_errors
from severance.backends.base import FloorRow, PersonaRow
from severance.backends.sqlite import DB_FILENAME, SQLiteBackend, map_sqlite_errors
from severance.backends.sqlite_errors import BY_CODE, translate
from severance.errors import (
    AlreadyExistsError,
    SeveranceError,
    StorageError,
    StorageTimeoutError,
)


def _persona(persona_id: str, name: str) -> PersonaRow:
    return PersonaRow(persona_id, name, 1.0, b"k", False, None, "e", 4)


def _backend(tmp_path: Path) -> SQLiteBackend:
    backend = SQLiteBackend(tmp_path / "store")
    backend.create({})
    backend.insert_persona(_persona("p_1", "work"))
    return backend


def _unique(tmp_path: Path) -> None:
    _backend(tmp_path).insert_persona(_persona("p_2", "work"))


def _primary_key(tmp_path: Path) -> None:
    _backend(tmp_path).insert_persona(_persona("p_1", "home"))


def _foreign_key(tmp_path: Path) -> None:
    # A floor naming a persona that does not exist (foreign_keys=ON).
    _backend(tmp_path).insert_floor(FloorRow("office", 0, "p_ghost", "{}", False, "f_1"))


def _busy(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    db_path = tmp_path / "store" / DB_FILENAME
    with closing(sqlite3.connect(db_path, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
        # No busy timeout, so the test does not wait out the back-end's 30 s.
        other = sqlite3.connect(db_path, isolation_level=None, timeout=0)
        with closing(other), map_sqlite_errors():
            other.execute("BEGIN IMMEDIATE")
    backend.close()


def _locked(tmp_path: Path) -> None:
    # Within one connection: a table cannot be dropped while a statement still reads it.
    backend = _backend(tmp_path)
    connection = backend.connection
    connection.execute("CREATE TABLE scratch (x)")
    connection.executemany("INSERT INTO scratch VALUES (?)", [(i,) for i in range(10)])
    reading = connection.execute("SELECT x FROM scratch")
    reading.fetchone()
    connection.execute("DROP TABLE scratch")


def _readonly(tmp_path: Path) -> None:
    # Opened read-only (chmod would not stop root, which the CI runs as).
    _backend(tmp_path).close()
    uri = f"file:{tmp_path / 'store' / DB_FILENAME}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db, map_sqlite_errors():
        db.execute("INSERT INTO meta VALUES ('k', 'v')")


def _full(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    pages = backend.connection.query("PRAGMA page_count")[0][0]
    backend.connection.execute(f"PRAGMA max_page_count = {pages + 1}")
    backend.set_meta("big", "x" * 100_000)


def _corrupt(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    backend.set_meta("filler", "y" * 50_000)  # the meta table spans pages past the first
    backend.reclaim()  # everything in the main file, nothing left in the WAL
    backend.close()
    db_path = tmp_path / "store" / DB_FILENAME
    data = bytearray(db_path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page : 3 * page] = b"\xff" * (2 * page)  # pages 2 and 3 overwritten, header intact
    db_path.write_bytes(bytes(data))
    SQLiteBackend(tmp_path / "store").get_meta()


def _not_a_database(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / DB_FILENAME).write_bytes(b"this is no SQLite header " * 200)
    SQLiteBackend(store).get_meta()


def _cannot_open(tmp_path: Path) -> None:
    with map_sqlite_errors():
        sqlite3.connect(tmp_path / "no such directory" / DB_FILENAME)


#: SQLite result code (by name) -> a real condition that raises it.
PROVOKE: dict[str, Callable[[Path], None]] = {
    "SQLITE_CONSTRAINT_UNIQUE": _unique,
    "SQLITE_CONSTRAINT_PRIMARYKEY": _primary_key,
    "SQLITE_CONSTRAINT": _foreign_key,
    "SQLITE_BUSY": _busy,
    "SQLITE_LOCKED": _locked,
    "SQLITE_READONLY": _readonly,
    "SQLITE_FULL": _full,
    "SQLITE_CORRUPT": _corrupt,
    "SQLITE_NOTADB": _not_a_database,
    "SQLITE_CANTOPEN": _cannot_open,
}


def test_every_mapped_code_is_provoked_here() -> None:
    assert {getattr(sqlite3, name) for name in PROVOKE} == set(BY_CODE)
    assert len(PROVOKE) == len(BY_CODE)


@pytest.mark.parametrize("name", sorted(PROVOKE))
def test_each_code_maps_to_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    code = getattr(sqlite3, name)
    raw: list[sqlite3.Error] = []

    def spy(error: sqlite3.Error) -> SeveranceError:
        raw.append(error)
        return translate(error)

    monkeypatch.setattr(sqlite_errors, "translate", spy)
    expected, message = BY_CODE[code]
    with pytest.raises(SeveranceError) as caught:
        PROVOKE[name](tmp_path)
    # The condition really raised that code: exactly, or (for a primary code) an extended
    # code of it that has no entry of its own (SQLITE_CONSTRAINT_FOREIGNKEY).
    got = raw[-1].sqlite_errorcode
    assert got == code or (got & 0xFF == code and got not in BY_CODE), raw[-1].sqlite_errorname
    assert type(caught.value) is expected
    assert str(caught.value).startswith(message)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_mapping_reads_the_code_not_the_message() -> None:
    busy = sqlite3.OperationalError("UNIQUE constraint failed: personas.name")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert type(translate(busy)) is StorageTimeoutError
    unique = sqlite3.IntegrityError("something unexpected")
    unique.sqlite_errorcode = sqlite3.SQLITE_CONSTRAINT_UNIQUE
    assert type(translate(unique)) is AlreadyExistsError


def test_an_error_without_a_code_is_a_storage_error(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db")
    db.close()
    with pytest.raises(StorageError, match=r"^database error: ") as caught, map_sqlite_errors():
        db.execute("SELECT 1")  # ProgrammingError: no SQLite code
    assert type(caught.value) is StorageError
