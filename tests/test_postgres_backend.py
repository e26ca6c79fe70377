"""The storage contract on both back-ends, then what only PostgreSQL adds.

The first half runs every test against SQLite and a real PostgreSQL (a fresh database per
test, see pg_server.py); the second half covers the schema, row-level security on its own,
error mapping, reclaim (a canary in the dump and the table files) and pgvector search.
"""

from __future__ import annotations

import gc
import subprocess
import threading
import time
import uuid

import numpy as np
import psycopg
import pytest
from psycopg import sql

from severance.backends.base import (
    AuditRow,
    FloorRow,
    HistoryRow,
    MemoryRow,
    PassRow,
    PersonaRow,
    Snapshot,
)
from severance.backends.postgres import PostgresBackend, map_postgres_errors, parse_url
from severance.backends.postgres_migrations import MIGRATIONS, SCHEMA
from severance.backends.postgres_vectors import nearest_sql
from severance.backends.sqlite import SQLiteBackend
from severance.errors import (
    AlreadyExistsError,
    ConflictError,
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFoundError,
    PersonaNotFoundError,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
    StorePathError,
)

pytest_plugins = ["pg_server"]  # the pg_server and pg_url fixtures

# -- fixtures and builders --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def open_backend(request, tmp_path):
    """A factory of back-end objects on one location (each its own connection)."""
    if request.param == "sqlite":
        location = str(tmp_path / "store")

        def factory():
            return SQLiteBackend(location)
    else:
        url = request.getfixturevalue("postgres_store_url")  # a new store, shared database

        def factory():
            return PostgresBackend(url)

    made = []

    def make():
        made.append(factory())
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(open_backend):
    backend = open_backend()
    backend.create({"format": "1", "kdf": "scrypt"})
    return backend


@pytest.fixture
def pg(pg_url):
    backend = PostgresBackend(pg_url)
    backend.create({"format": "1"})
    yield backend
    backend.close()


def persona(pid: str, name: str | None = None, at: float = 1.0) -> PersonaRow:
    return PersonaRow(pid, name or pid, at, b"wrapped-" + pid.encode(), False, None, "demo", 4)


def memory(mid: str, learned: float = 1.0, payload: bytes = b"", version: int = 1) -> MemoryRow:
    return MemoryRow(
        mid, 0, version, learned, learned - 0.5, learned, payload or b"sealed " + mid.encode(), b"v"
    )


def with_store(url: str, name: str) -> str:
    return url + ("&" if "?" in url else "?") + f"store={name}"


def with_personas(backend, *ids: str):
    for i, pid in enumerate(ids):
        backend.insert_persona(persona(pid, at=float(i)))
    return [backend.rows(pid) for pid in ids]


# -- the contract, on both back-ends ----------------------------------------------------------


def test_create_exists_and_meta(open_backend):
    backend = open_backend()
    assert not backend.exists()
    backend.create({"format": "1"})
    assert backend.exists()
    assert open_backend().exists()
    with pytest.raises(StoreExistsError):
        open_backend().create({"format": "1"})
    backend.set_meta("kdf", "argon2id")
    backend.set_meta("kdf", "scrypt")
    assert backend.get_meta() == {"format": "1", "kdf": "scrypt"}


def test_missing_store_is_store_not_found(open_backend):
    with pytest.raises(StoreNotFoundError):
        open_backend().get_meta()


def test_personas(backend):
    backend.insert_persona(persona("p2", "work", at=2.0))
    backend.insert_persona(persona("p1", "home", at=1.0))
    assert [p.name for p in backend.personas()] == ["home", "work"]
    with pytest.raises(AlreadyExistsError):
        backend.insert_persona(persona("p3", "work"))
    with pytest.raises(AlreadyExistsError):
        backend.insert_persona(persona("p1", "other"))
    changed = PersonaRow("p1", "home", 1.0, b"rewrapped", True, "scrypt", "minilm", 384)
    backend.update_persona(changed)
    assert backend.personas()[0] == changed


def test_floors(backend):
    with_personas(backend, "w", "h")
    backend.insert_floor(FloorRow("office", 2, "w", '{"client": "x"}', False))
    backend.insert_floor(FloorRow("home", 1, "h", "{}", True))
    assert [f.name for f in backend.floors()] == ["home", "office"]
    assert backend.floors()[0] == FloorRow("home", 1, "h", "{}", True)
    with pytest.raises(AlreadyExistsError):
        backend.insert_floor(FloorRow("home", 3, "w", "{}", False))
    assert backend.delete_floor("home") is True
    assert backend.delete_floor("home") is False
    assert [f.name for f in backend.floors()] == ["office"]


def test_passes(backend):
    with_personas(backend, "w")
    backend.insert_floor(FloorRow("office", 1, "w", "{}", False))
    first = PassRow("ps1", "h" * 64, "office", "w", 1.0, None, False, None, "laptop")
    second = PassRow("ps2", "g" * 64, "office", "w", 2.0, 99.0, True, None, None)
    backend.insert_pass(second)
    backend.insert_pass(first)
    assert backend.passes() == [first, second]
    assert backend.pass_by_hash("g" * 64) == second
    assert backend.pass_by_hash("x" * 64) is None
    with pytest.raises(AlreadyExistsError):
        backend.insert_pass(PassRow("ps3", "h" * 64, "office", "w", 3.0, None, False, None, None))
    with pytest.raises(AlreadyExistsError):
        backend.insert_pass(PassRow("ps1", "k" * 64, "office", "w", 3.0, None, False, None, None))
    assert backend.revoke_pass("ps1", 5.0) is True
    assert backend.revoke_pass("ps1", 6.0) is False  # already revoked
    assert backend.revoke_pass("nope", 6.0) is False
    assert backend.pass_by_hash("h" * 64).revoked_at == 5.0
    backend.delete_persona("w")
    assert backend.passes() == []


def test_audit(backend):
    assert backend.last_audit() is None
    rows = [
        AuditRow(1, 1.0, "init", None, None, "{}", "0" * 64, "a" * 64),
        AuditRow(2, 2.0, "enter", "p1", "work", '{"floor": "x"}', "a" * 64, "b" * 64),
        AuditRow(3, 3.0, "enter", "p2", "home", "{}", "b" * 64, "c" * 64),
    ]
    for row in rows:
        backend.append_audit(row)
    assert backend.audit_rows() == rows
    assert backend.audit_rows("p1") == [rows[1]]
    assert backend.last_audit() == rows[2]
    with pytest.raises(AlreadyExistsError):  # the chain position is unique
        backend.append_audit(rows[0])


def test_insert_get_count(backend):
    (rows,) = with_personas(backend, "p")
    seqs = rows.insert([memory("a"), memory("b"), memory("c")])
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert rows.insert([]) == []
    got = rows.get("b")
    assert got == MemoryRow("b", seqs[1], 1, 1.0, 0.5, 1.0, b"sealed b", b"v")
    assert rows.get("nope") is None
    assert set(rows.get_many(["a", "c", "a", "nope"])) == {"a", "c"}
    assert rows.get_many([]) == {}
    assert rows.count() == 3
    with pytest.raises(AlreadyExistsError):
        rows.insert([memory("a")])
    assert rows.count() == 3  # the failed batch changed nothing


def test_replace_and_history(backend):
    (rows,) = with_personas(backend, "p")
    (seq,) = rows.insert([memory("a", payload=b"one")])
    for version, text in ((2, b"two"), (3, b"three")):
        old = rows.get("a")
        new_seq = rows.replace(
            MemoryRow("a", 0, version, 1.0, 2.0, 3.0 + version, text, b"v2"),
            HistoryRow("a", old.version, old.occurred_at, old.updated_at, 9.0, old.payload),
        )
        assert new_seq > seq
        seq = new_seq
    current = rows.get("a")
    assert (current.version, current.payload, current.seq) == (3, b"three", seq)
    assert [(h.version, h.payload) for h in rows.history("a")] == [(1, b"one"), (2, b"two")]
    with pytest.raises(MemoryNotFoundError):
        rows.replace(memory("ghost"), HistoryRow("ghost", 1, 0, 0, 0, b""))
    assert rows.history("ghost") == []
    # Only onto the version it was made from: a stale writer conflicts and writes nothing.
    with pytest.raises(ConflictError):
        rows.replace(
            MemoryRow("a", 0, 3, 1.0, 2.0, 9.0, b"stale", b"v2"),
            HistoryRow("a", 2, 0.0, 0.0, 9.0, b"two"),
        )
    assert rows.get("a").payload == b"three"
    assert [h.version for h in rows.history("a")] == [1, 2]


def test_delete(backend):
    (rows,) = with_personas(backend, "p")
    rows.insert([memory(m) for m in "abcd"])
    old = rows.get("a")
    rows.replace(memory("a", version=2), HistoryRow("a", 1, 0.5, 1.0, 2.0, old.payload))
    assert rows.delete("a") is True
    assert rows.delete("a") is False
    assert rows.history("a") == []
    assert rows.delete_many(["b", "c", "b", "zz"]) == 2
    assert rows.delete_many([]) == 0
    assert [m.id for m in rows.page(0, 10, False)] == ["d"]


def test_update_vectors_takes_new_seqs(backend):
    (rows,) = with_personas(backend, "p")
    seqs = rows.insert([memory("a"), memory("b"), memory("c")])
    assert rows.update_vectors({"a": (1, b"re-a"), "c": (1, b"re-c")}) == 2
    assert rows.update_vectors({}) == 0
    assert rows.update_vectors({"b": (7, b"stale")}) == 0  # sealed for another version
    assert (rows.get("a").vector, rows.get("b").vector, rows.get("c").vector) == (
        b"re-a",
        b"v",
        b"re-c",
    )
    changes = rows.changes_since(seqs[-1])
    assert set(changes.changed) == {"a", "c"}
    assert min(changes.changed.values()) > seqs[-1]
    assert rows.get("a").payload == b"sealed a"  # only the vector changed


def test_page_orders_by_learned_then_written(backend):
    # Memories learned at the same instant (one batch) keep the order they were written in.
    (rows,) = with_personas(backend, "p")
    rows.insert([memory("b", 2.0), memory("a", 2.0), memory("c", 1.0), memory("d", 3.0)])
    assert [m.id for m in rows.page(0, 10, False)] == ["c", "b", "a", "d"]
    assert [m.id for m in rows.page(0, 10, True)] == ["d", "a", "b", "c"]
    assert [m.id for m in rows.page(1, 2, True)] == ["a", "b"]
    assert rows.page(10, 5, True) == []


def test_scan(backend):
    (rows,) = with_personas(backend, "p")
    rows.insert([memory(f"m{i:03}") for i in range(25)])
    batches = list(rows.scan(10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert sorted(m.id for b in batches for m in b) == [f"m{i:03}" for i in range(25)]


def test_changes_since_and_high_water(backend):
    (rows,) = with_personas(backend, "p")
    start = rows.high_water()
    seqs = rows.insert([memory("a"), memory("b"), memory("c")])
    assert rows.high_water() == seqs[-1]
    changes = rows.changes_since(start)
    assert changes.changed == dict(zip("abc", seqs, strict=True))
    assert changes.deleted == ()
    assert changes.high_water == seqs[-1]
    rows.delete("b")
    old = rows.get("c")
    new = rows.replace(memory("c", version=2), HistoryRow("c", 1, 0.5, 1.0, 2.0, old.payload))
    later = rows.changes_since(seqs[-1])
    assert later.changed == {"c": new}
    assert later.deleted == ("b",)
    assert later.high_water == new == rows.high_water()
    nothing = rows.changes_since(new)
    assert (nothing.changed, nothing.deleted, nothing.high_water) == ({}, (), new)


def test_snapshots(backend):
    (rows,) = with_personas(backend, "p")
    assert rows.read_snapshot() is None
    rows.insert([memory("a"), memory("b")])
    rows.delete("a")
    mark = rows.high_water()
    rows.write_snapshot(Snapshot(mark, (b"chunk0", b"chunk1", b"chunk2")))
    assert rows.read_snapshot() == Snapshot(mark, (b"chunk0", b"chunk1", b"chunk2"))
    assert rows.changes_since(0).deleted == ()  # tombstones up to the watermark were dropped
    rows.write_snapshot(Snapshot(mark, (b"only",)))
    assert rows.read_snapshot() == Snapshot(mark, (b"only",))
    rows.drop_snapshot()
    assert rows.read_snapshot() is None


def test_personas_never_see_each_other(backend):
    a, b = with_personas(backend, "a", "b")
    a.insert([memory("shared-id", payload=b"A's secret"), memory("only-a")])
    b.insert([memory("shared-id", payload=b"B's own")])  # the same id in another persona
    a.write_snapshot(Snapshot(a.high_water(), (b"A index",)))
    assert b.get("only-a") is None
    assert b.get("shared-id").payload == b"B's own"
    assert set(b.get_many(["only-a", "shared-id"])) == {"shared-id"}
    assert b.count() == 1
    assert [m.payload for m in b.page(0, 10, True)] == [b"B's own"]
    assert [m.id for batch in b.scan(10) for m in batch] == ["shared-id"]
    assert set(b.changes_since(0).changed) == {"shared-id"}
    assert b.read_snapshot() is None
    assert b.delete("only-a") is False
    assert a.get("only-a") is not None
    backend.delete_persona("a")
    assert (a.count(), a.read_snapshot()) == (0, None)
    assert b.count() == 1
    assert [p.id for p in backend.personas()] == ["b"]


def test_delete_persona_takes_its_floors(backend):
    a, _ = with_personas(backend, "a", "b")
    backend.insert_floor(FloorRow("fa", 1, "a", "{}", False))
    backend.insert_floor(FloorRow("fb", 2, "b", "{}", False))
    a.insert([memory("x")])
    old = a.get("x")
    a.replace(memory("x", version=2), HistoryRow("x", 1, 0.5, 1.0, 2.0, old.payload))
    backend.delete_persona("a")
    assert [f.name for f in backend.floors()] == ["fb"]
    assert a.history("x") == []


def test_transaction_commits_together_or_not_at_all(backend):
    (rows,) = with_personas(backend, "p")
    with pytest.raises(RuntimeError), backend.transaction():
        rows.insert([memory("a")])
        with backend.transaction():  # nested: joins the outer transaction
            rows.insert([memory("b")])
        raise RuntimeError("boom")
    assert rows.count() == 0
    with backend.transaction():
        rows.insert([memory("a")])
        with backend.transaction():
            rows.insert([memory("b")])
        backend.set_meta("k", "v")
    assert rows.count() == 2
    assert backend.get_meta()["k"] == "v"


def test_seq_follows_commit_order(open_backend):
    """A writer that starts second but commits first must not get the smaller seq."""
    first, second = open_backend(), open_backend()
    first.create({})
    (rows1,) = with_personas(first, "p")
    rows2 = second.rows("p")
    done = threading.Event()
    result = {}

    def write_second():
        result["seq"] = rows2.insert([memory("late")])[0]
        done.set()

    with first.transaction():
        (seq1,) = rows1.insert([memory("early")])
        assert rows2.high_water() < seq1  # not committed yet: not reported
        thread = threading.Thread(target=write_second)
        thread.start()
        assert not done.wait(0.3)  # the second writer waits for the first to commit
    thread.join(10)
    assert done.is_set() and result["seq"] > seq1


def test_concurrent_writers_and_a_reader_miss_nothing(open_backend):
    writers = [open_backend() for _ in range(2)]
    writers[0].create({})
    with_personas(writers[0], "p")
    reader = open_backend().rows("p")
    seen: dict[str, int] = {}
    stop = threading.Event()

    def write(i: int):
        rows = writers[i].rows("p")
        for n in range(40):
            rows.insert([memory(f"w{i}-{n}")])

    def read():
        mark = 0
        while True:
            finished = stop.is_set()
            changes = reader.changes_since(mark)
            assert not set(changes.changed) & set(seen)  # nothing seen twice
            seen.update(changes.changed)
            mark = changes.high_water
            if finished:
                return

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    polling = threading.Thread(target=read)
    polling.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stop.set()
    polling.join(30)
    assert len(seen) == 80
    assert sorted(seen.values()) == list(range(1, 81))


# -- PostgreSQL only --------------------------------------------------------------------------


def test_url_parsing():
    conninfo, store, shown = parse_url(
        "postgresql://me:s3cret@db:5432/mem?sslmode=require&store=ann"
    )
    assert (conninfo, store) == ("postgresql://me:s3cret@db:5432/mem?sslmode=require", "ann")
    assert shown == "postgresql://me:***@db:5432/mem?sslmode=require&store=ann"
    assert parse_url("postgres:///mem?host=/run/postgresql")[:2] == (
        "postgres:///mem?host=/run/postgresql",
        "default",
    )
    for bad in ("postgresql:///x?store=", "postgresql:///x?store=a&store=b", "mysql://x/y"):
        with pytest.raises(StorePathError):
            parse_url(bad)


def test_schema_after_migrating(pg, pg_url):
    with psycopg.connect(pg_url) as conn:
        tables = {
            name: [
                (c, t)
                for c, t in conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (SCHEMA, name),
                )
            ]
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (SCHEMA,),
            )
        }
        keys = dict(
            conn.execute(
                "SELECT c.relname, array_agg(a.attname ORDER BY k.i)"
                " FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, i)"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
                " WHERE n.nspname = %s AND x.indisprimary GROUP BY c.relname",
                (SCHEMA,),
            ).fetchall()
        )
        security = {
            name: (enabled, forced)
            for name, enabled, forced in conn.execute(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
                " WHERE relnamespace = %s::regnamespace AND relkind = 'r'",
                (SCHEMA,),
            )
        }
        policies = dict(
            conn.execute(
                "SELECT tablename, qual FROM pg_policies WHERE schemaname = %s", (SCHEMA,)
            ).fetchall()
        )
    assert pg.schema_version() == len(MIGRATIONS) == 6
    pg.migrate()  # idempotent
    assert pg.schema_version() == 6
    # m006: configuration rows carry the key holder's MAC; floors have ids passes follow.
    assert tables["personas"][-1] == ("mac", "bytea")
    assert tables["floors"][-2:] == [("floor_id", "text"), ("mac", "bytea")]
    assert tables["passes"][-2:] == [("floor_id", "text"), ("mac", "bytea")]
    assert tables["memories"] == [
        ("store_id", "bigint"),
        ("persona_id", "text"),
        ("memory_id", "text"),
        ("seq", "bigint"),
        ("version", "integer"),
        ("learned_at", "double precision"),
        ("occurred_at", "double precision"),
        ("updated_at", "double precision"),
        ("payload", "bytea"),
        ("vector", "bytea"),
    ]
    assert tables["memory_vectors"][-1] == ("embedding", "USER-DEFINED")
    assert set(tables) == {
        "schema_version",
        "stores",
        "seq_counters",
        "meta",
        "personas",
        "floors",
        "audit",
        "passes",
        "memories",
        "history",
        "tombstones",
        "snapshots",
        "vector_indexes",
        "memory_vectors",
    }
    for name in set(tables) - {"schema_version"}:
        assert keys[name][0] == "store_id", name  # distributable by store (Citus)
    persona_tables = {"memories", "history", "tombstones", "snapshots"}
    persona_tables |= {"vector_indexes", "memory_vectors"}
    for name in set(tables) - {"schema_version", "stores"}:
        assert security[name] == (True, True), name
        assert "current_store()" in policies[name]
        assert ("current_persona()" in policies[name]) == (name in persona_tables), name
    # m006: a store belongs to the login that made it; nobody else's login lists it.
    assert security["stores"] == (True, True)
    assert "session_user" in policies["stores"].lower()
    assert tables["stores"][-1] == ("owner", "name")


def test_row_level_security_on_its_own(pg, pg_url):
    a, b = with_personas(pg, "a", "b")
    a.insert([memory("a1"), memory("a2")])
    b.insert([memory("b1")])
    b.write_snapshot(Snapshot(1, (b"B",)))
    other = PostgresBackend(with_store(pg_url, "other"))
    other.create({})
    with_personas(other, "a")[0].insert([memory("other-store")])
    other.close()

    def visible(persona_id, store_id=1, table="memories", column="memory_id"):
        with psycopg.connect(pg_url) as conn:  # a raw connection: no WHERE clause at all
            conn.execute("SET ROLE severance_app")
            conn.execute(sql.SQL("SET LOCAL severance.store = {}").format(str(store_id)))
            if persona_id is not None:
                conn.execute(sql.SQL("SET LOCAL severance.persona = {}").format(persona_id))
            query = sql.SQL("SELECT {} FROM {}").format(
                sql.Identifier(column), sql.Identifier(SCHEMA, table)
            )
            return sorted(r[0] for r in conn.execute(query))

    assert visible("a") == ["a1", "a2"]
    assert visible("b") == ["b1"]
    assert visible(None) == []  # no persona set: no rows (policies fail closed)
    assert visible("a", store_id=2) == ["other-store"]
    assert visible("a", table="snapshots", column="chunk") == []
    assert visible("b", table="snapshots", column="chunk") == [b"B"]
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "SET ROLE severance_app; SET LOCAL severance.store = '1';"
            " SET LOCAL severance.persona = 'a'"
        )
        conn.execute(  # writing into another persona is refused too (WITH CHECK)
            "INSERT INTO severance.memories VALUES (1, 'b', 'x', 1, 1, 1, 1, 1, '', '')"
        )
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SET ROLE severance_app")
        conn.execute("DELETE FROM severance.audit")  # append-only for the application


def test_transactions_run_as_the_unprivileged_role(pg):
    with pg.connection.tx("p") as conn:
        user, bypass, persona_id = conn.execute(
            "SELECT current_user, rolbypassrls OR rolsuper, current_setting('severance.persona')"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert (user, bypass, persona_id) == ("severance_app", False, "p")
    with pg.connection.raw().cursor() as cur:  # SET LOCAL: nothing lingers on the connection
        assert cur.execute("SELECT current_setting('severance.persona', true)").fetchone()[0] == ""


def test_an_ordinary_owner_login_is_bound_by_forced_rls(pg_server):
    """Logged in as a plain role that owns the schema, no role switch is needed: FORCE ROW
    LEVEL SECURITY binds the owner too. (pgvector, not trusted, needs a superuser.)"""
    from urllib.parse import urlsplit, urlunsplit

    name = f"sev_owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {0} OWNER {0}").format(sql.Identifier(name)))
    parts = urlsplit(pg_server.url_for(name))
    url = urlunsplit(parts._replace(netloc=f"{name}@{parts.hostname or ''}"))
    backend = PostgresBackend(url)
    try:
        backend.create({})
        assert backend.connection.privileged is False
        a, b = with_personas(backend, "a", "b")
        a.insert([memory("a1")])
        b.insert([memory("b1")])
        assert [m.id for m in b.page(0, 9, True)] == ["b1"]
        with pytest.raises(StorageError, match="pgvector"):
            a.enable_vectors(4)
        with psycopg.connect(url) as conn:  # the owner itself, on a raw connection
            conn.execute("SET LOCAL severance.store = '1'; SET LOCAL severance.persona = 'a'")
            assert conn.execute("SELECT memory_id FROM severance.memories").fetchall() == [("a1",)]
        backend.delete_persona("a")
        backend.reclaim()  # the owner may VACUUM FULL; CHECKPOINT is skipped without privilege
        assert b.count() == 1
    finally:
        backend.close()
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_stores_share_a_database_but_nothing_else(pg, pg_url):
    (rows,) = with_personas(pg, "p")
    rows.insert([memory("mine")])
    ann = PostgresBackend(with_store(pg_url, "ann"))
    try:
        assert not ann.exists()
        ann.create({"owner": "ann"})
        (theirs,) = with_personas(ann, "p")  # the same persona id, in another store
        assert theirs.count() == 0 and theirs.high_water() == 0
        theirs.insert([memory("ann's")])
        assert [m.id for m in rows.page(0, 9, True)] == ["mine"]
        assert ann.get_meta() == {"owner": "ann"} and pg.get_meta() == {"format": "1"}
    finally:
        ann.close()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.UniqueViolation, AlreadyExistsError),
        (psycopg.errors.ForeignKeyViolation, StorageError),
        (psycopg.errors.InsufficientPrivilege, StorageError),
        (psycopg.errors.SerializationFailure, StorageError),
        (psycopg.errors.DeadlockDetected, StorageError),
        (psycopg.errors.SyntaxError, StorageError),
        (psycopg.errors.DiskFull, StorageError),
        (psycopg.errors.QueryCanceled, StorageError),
        (psycopg.OperationalError, StorageError),
        (psycopg.InterfaceError, StorageError),
        (psycopg.DataError, StorageError),
        (psycopg.Error, StorageError),
    ],
)
def test_every_driver_error_is_mapped(error, expected):
    with pytest.raises(expected) as caught, map_postgres_errors():
        raise error("boom\nDETAIL:  Key (id)=(secret) already exists.")
    assert "secret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_real_driver_errors_are_mapped(pg, pg_url, pg_server):
    with pytest.raises(StorageError, match="connection failed"):
        PostgresBackend(pg_server.url_for("no_such_database")).exists()
    with_personas(pg, "p")
    with pytest.raises(StorageError):  # a floor naming a persona that does not exist
        pg.insert_floor(FloorRow("f", 1, "ghost", "{}", False))
    with pytest.raises(PersonaNotFoundError):  # memories of a persona that does not exist
        pg.rows("ghost").insert([memory("x")])
    again = PostgresBackend(pg_url)
    with pytest.raises(StoreExistsError):
        again.create({})
    again.close()


def test_a_dropped_backend_closes_its_connection(pg, pg_url):
    backend = PostgresBackend(pg_url)
    assert backend.exists()  # opens a connection
    del backend
    gc.collect()  # with filterwarnings = error, an unclosed connection would fail the test


def test_a_failed_statement_dooms_the_transaction(pg):
    (rows,) = with_personas(pg, "p")
    with pytest.raises(StorageError, match="rolled back"), pg.transaction():
        rows.insert([memory("a")])
        with pytest.raises(AlreadyExistsError):
            rows.insert([memory("a")])
    assert rows.count() == 0
    rows.insert([memory("b")])  # the connection is usable again
    assert rows.count() == 1


def _dump(server, url: str) -> str:
    binary = server.pg_dump()
    if binary is None:
        pytest.skip("no pg_dump")
    done = subprocess.run(
        [binary, "--data-only", "--dbname", url.split("&store=")[0]],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"pg_dump does not match the server: {done.stderr.strip()}")
    return done.stdout


def _files_containing(server, url: str, needle: bytes) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # every dirty page reaches the files
        (oid,) = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    folder = server.data_dir / "base" / str(oid)
    return [p.name for p in folder.iterdir() if p.is_file() and needle in p.read_bytes()]


def test_reclaim_removes_deleted_rows_from_dump_and_files(pg, pg_url, pg_server):
    canary = b"CANARY-7f3a9c1e-do-not-keep"
    a, b = with_personas(pg, "a", "b")
    a.insert([memory(f"m{i}", payload=canary + bytes([i]) * 40) for i in range(20)])
    old = a.get("m0")
    a.replace(memory("m0", version=2), HistoryRow("m0", 1, 0.5, 1.0, 2.0, old.payload))
    b.insert([memory("keep", payload=b"KEEPSAKE-b")])
    assert canary.hex() in _dump(pg_server, pg_url)
    if pg_server.data_dir is not None:
        assert _files_containing(pg_server, pg_url, canary)  # the probe itself works
    a.delete_many([f"m{i}" for i in range(20)])
    pg.delete_persona("a")
    pg.reclaim()
    dump = _dump(pg_server, pg_url)
    assert canary.hex() not in dump and b"wrapped-a".hex() not in dump
    assert b"KEEPSAKE-b".hex() in dump
    if pg_server.data_dir is not None:
        assert _files_containing(pg_server, pg_url, canary) == []
        assert _files_containing(pg_server, pg_url, b"wrapped-a") == []
    assert b.get("keep").payload == b"KEEPSAKE-b"
    with pytest.raises(StorageError), pg.transaction():
        pg.reclaim()


# -- indexed vectors (pgvector) ---------------------------------------------------------------


def unit(rng, n, dim):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_indexed_vectors_nearest(pg):
    a, b = with_personas(pg, "a", "b")
    rng = np.random.default_rng(7)
    vectors = unit(rng, 60, 16)
    a.insert([memory(f"a{i}") for i in range(60)])
    b.insert([memory(f"b{i}") for i in range(5)])
    assert a.nearest(vectors[0], 3) == []  # not enabled yet
    a.enable_vectors(16)
    a.enable_vectors(16)  # idempotent
    b.enable_vectors(8)  # each persona its own dimension
    a.set_vectors({f"a{i}": vectors[i] for i in range(60)})
    b.set_vectors({f"b{i}": unit(rng, 1, 8)[0] for i in range(5)})
    query = vectors[3] + 0.05 * unit(rng, 1, 16)[0]
    found = a.nearest(query, 5)
    exact = vectors @ (query / np.linalg.norm(query))
    best = np.argsort(-exact)[:5]
    assert [m for m, _ in found] == [f"a{i}" for i in best]
    assert np.allclose([s for _, s in found], exact[best], atol=1e-5)
    assert all(m.startswith("b") for m, _ in b.nearest(unit(rng, 1, 8)[0], 50))
    assert len(a.nearest(query, 100)) == 60
    assert a.vector_dimension() == 16 and b.vector_dimension() == 8
    a.delete("a3")  # the vector goes with its memory
    assert "a3" not in [m for m, _ in a.nearest(query, 5)]
    a.set_vectors({"a4": -vectors[4]})  # replaced
    assert a.nearest(-vectors[4], 1)[0][0] == "a4"


def test_indexed_vectors_errors_and_disable(pg):
    (a,) = with_personas(pg, "a")
    a.insert([memory("x")])
    with pytest.raises(StorageError):
        a.set_vectors({"x": np.ones(4, np.float32)})  # not enabled
    a.enable_vectors(4)
    with pytest.raises(EmbedderMismatchError):
        a.enable_vectors(8)
    with pytest.raises(EmbedderMismatchError):
        a.set_vectors({"x": np.ones(5, np.float32)})
    with pytest.raises(EmbedderMismatchError):
        a.nearest(np.ones(5, np.float32), 1)
    with pytest.raises(InvalidInputError):
        a.set_vectors({"x": np.array([1, np.nan, 0, 0], np.float32)})
    with pytest.raises(InvalidInputError):
        a.enable_vectors(0)
    with pytest.raises(InvalidInputError):  # no direction, so no cosine
        a.nearest(np.zeros(4, np.float32), 1)
    with pytest.raises(StorageError):  # a vector for a memory that does not exist
        a.set_vectors({"ghost": np.ones(4, np.float32)})
    a.set_vectors({"x": np.ones(4, np.float32)})
    a.disable_vectors()
    assert a.vector_dimension() is None and a.nearest(np.ones(4, np.float32), 1) == []
    a.enable_vectors(8)  # a new embedder after disabling
    pg.delete_persona("a")
    with psycopg.connect(pg.conninfo) as conn:
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'memory_vectors'"
            " AND indexdef LIKE '%hnsw%'"
        ).fetchall()
    assert indexes == []  # the persona's HNSW index went with it


def test_nearest_uses_the_persona_hnsw_index_under_rls(pg, pg_url):
    (a,) = with_personas(pg, "a")
    a.enable_vectors(8)
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "SET ROLE severance_app; SET LOCAL severance.store = '1';"
            " SET LOCAL severance.persona = 'a'; SET LOCAL enable_seqscan = off"
        )
        query = nearest_sql(1, "a", 8).as_string(conn).replace("%(q)b", "'[1,0,0,0,0,0,0,0]'")
        plan = "\n".join(
            r[0] for r in conn.execute(sql.SQL("EXPLAIN " + query.replace("%(k)s", "5")))
        )
    assert "Index Scan using memory_vectors_1_" in plan, plan


def test_insert_speed_is_batched(pg):
    (rows,) = with_personas(pg, "p")
    batch = [memory(f"m{i:05}", payload=bytes(200)) for i in range(5_000)]
    started = time.perf_counter()
    seqs = rows.insert(batch)
    elapsed = time.perf_counter() - started
    assert seqs == list(range(seqs[0], seqs[0] + 5_000))
    assert len(rows.get_many([m.id for m in batch[:1000]])) == 1000
    assert elapsed < 5, elapsed
