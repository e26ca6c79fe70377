"""A COMMIT the database refuses changes nothing — in the database or in the session.

A hostile (or just full, or busy) database may refuse a transaction at COMMIT, after every
statement in it succeeded. Here it is refused for real: a *deferred* constraint that every
memory insert violates (SQLite: a deferred foreign key; PostgreSQL: a deferred constraint
trigger, limited to this test's store, since the database is shared) is only checked at
COMMIT. Afterwards the connection holds no transaction (no write lock kept, no uncommitted
row read back), and the session believes in nothing that did not commit: the sequence
numbers the refused write had taken are handed out again — to another process's write here —
and the session's index must not take them for its own and skip that write (for good, once a
checkpoint saved the mark).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from severance import StorageError, Store
from severance.backends.sqlite import DB_FILENAME


@contextmanager
def commits_refused(location: str, backend_name: str) -> Iterator[None]:
    """While inside, every transaction inserting a memory of the store fails at COMMIT."""
    if backend_name == "sqlite":
        with closing(sqlite3.connect(Path(location) / DB_FILENAME, isolation_level=None)) as db:
            db.executescript(
                """
                CREATE TABLE trap_parent (id TEXT PRIMARY KEY);
                CREATE TABLE trap (id TEXT REFERENCES trap_parent (id)
                                   DEFERRABLE INITIALLY DEFERRED);
                CREATE TRIGGER trap_insert AFTER INSERT ON memories
                BEGIN INSERT INTO trap VALUES (NEW.id); END;
                """
            )
        try:
            yield
        finally:
            with closing(sqlite3.connect(Path(location) / DB_FILENAME, timeout=5)) as db:
                db.executescript(
                    "DROP TRIGGER trap_insert; DROP TABLE trap; DROP TABLE trap_parent;"
                )
        return
    import psycopg

    from severance.backends.postgres import parse_url

    conninfo, store_name, _ = parse_url(location)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT store_id FROM severance.stores WHERE name = %s", (store_name,)
        ).fetchone()
        assert row is not None
        store_id = int(row[0])
        name = f"trap_{store_id}"
        conn.execute(
            f"CREATE FUNCTION severance.{name}() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
        )
        conn.execute(
            f"CREATE CONSTRAINT TRIGGER {name} AFTER INSERT ON severance.memories"
            f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.store_id = {store_id})"
            f" EXECUTE FUNCTION severance.{name}()"
        )
        try:
            yield
        finally:
            conn.execute(f"DROP TRIGGER {name} ON severance.memories")
            conn.execute(f"DROP FUNCTION severance.{name}()")


def in_another_process(location: str, code: str) -> None:
    script = (
        f"import severance\nstore = severance.Store.open({location!r})\n"
        f"with store.enter(floor='office') as s:\n    {code}\nstore.close()"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_refused_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    store = Store.init(location)
    store.add_persona("work")
    store.add_floor("office", persona="work")
    with store.enter(floor="office") as s:
        s.remember("The lease ends in 2031")
        with commits_refused(location, "sqlite"):
            with pytest.raises(StorageError):
                s.remember("The boiler was serviced in May")
            # The refused write is not read back as if it were stored ...
            assert s.count() == 1
            # ... and the write lock is free: another process writes at once.
            with closing(sqlite3.connect(Path(location) / DB_FILENAME, timeout=0)) as other:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
        s.remember("The boiler was serviced in May")
        assert s.count() == 2
    in_another_process(location, "assert s.count() == 2")
    store.close()


def test_a_refused_commit_moves_no_index_mark_past_what_committed(
    store_location: str, backend_name: str
) -> None:
    store = Store.init(store_location)
    store.add_persona("work")
    store.add_floor("office", persona="work")
    with store.enter(floor="office") as s:
        s.remember("The lease ends in 2031")
        assert len(s.recall("lease", k=5)) == 1  # the index is loaded
        with commits_refused(store_location, backend_name):
            with pytest.raises(StorageError):
                s.remember("The boiler was serviced in May")
            with pytest.raises(StorageError):
                s.remember_many(["Sam likes oat milk", "The bike lock code is 4411"])
        # The sequence numbers the refused writes took are taken again, by another process.
        in_another_process(store_location, "s.remember('The dentist is on Friday')")
        found = [r.memory.text for r in s.recall("dentist", k=5, mode="keyword")]
        assert found == ["The dentist is on Friday"]
        assert s.recall("boiler", k=5, mode="keyword") == []
        assert s.count() == 2
        s.checkpoint()
    # The mark the checkpoint saved skips nothing either.
    with Store.open(store_location) as again, again.enter(floor="office") as s:
        found = [r.memory.text for r in s.recall("dentist", k=5, mode="keyword")]
        assert found == ["The dentist is on Friday"]
        assert sorted(m.text for m in s.export()) == [
            "The dentist is on Friday",
            "The lease ends in 2031",
        ]
    store.close()


def test_a_refused_commit_keeps_no_duplicate_lead(store_location: str, backend_name: str) -> None:
    """The duplicate check does not take a refused write for a stored one: remembering the
    same text again stores it (it is not returned as a duplicate of a row that never was)."""
    store = Store.init(store_location)
    store.add_persona("work")
    store.add_floor("office", persona="work")
    with store.enter(floor="office") as s:
        s.remember("The lease ends in 2031")
        with commits_refused(store_location, backend_name), pytest.raises(StorageError):
            s.remember_many(["Sam likes oat milk", "The bike lock code is 4411"])
        again = s.remember("Sam likes oat milk")
        assert not again.duplicate
        assert s.get(again.id).text == "Sam likes oat milk"
        assert s.count() == 2
    store.close()
