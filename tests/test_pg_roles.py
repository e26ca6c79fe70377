"""Per-store PostgreSQL logins (issue 18 items 2, 3 and 7): two people, two logins, two
stores, one database. Bob, with his own login and raw SQL, tries every attack of the issue
on Alice's store; none reads or changes anything of hers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest

from severance import Store, StoreNotFoundError
from severance.backends.postgres import PostgresBackend
from severance.cli import main

psycopg = pytest.importorskip("psycopg")


def as_login(url: str, role: str, **query: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    joined = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit(parts._replace(netloc=f"{role}@{host}", query=joined))


@dataclass
class Tenants:
    admin: str
    alice: str  # Alice's store URL, as her login
    bob_sql: str  # Bob's plain libpq URL, for raw SQL
    alice_store_id: int
    alice_memory: str


def _run_cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture
def tenants(pg_url: str, capsys: pytest.CaptureFixture[str]) -> Iterator[Tenants]:
    for role, store in (("alice", "alice-store"), ("bob", "bob-store")):
        assert (
            _run_cli("pg", "provision", role, "--store", store, "--admin-url", pg_url, "--execute")
            == 0
        )
    capsys.readouterr()
    alice = as_login(pg_url, "alice", store="alice-store")
    with Store.init(alice) as store:
        assert not store.shares_login()
        # Indexed vectors need an HNSW index (DDL) that her login may not build itself: the
        # schema owner's severance.persona_index builds it for her own store only.
        store.add_persona("work", vectors="indexed")
        store.add_floor("office", persona="work")
        with store.enter(floor="office") as s:
            memory = s.remember("alice's secret plan").id
    with Store.init(as_login(pg_url, "bob", store="bob-store")) as bob_store:
        bob_store.add_persona("mine")
    with psycopg.connect(pg_url) as admin:
        (alice_id,) = admin.execute(
            "SELECT store_id FROM severance.stores WHERE name = 'alice-store'"
        ).fetchone()
    yield Tenants(pg_url, alice, as_login(pg_url, "bob").split("?store")[0], alice_id, memory)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        for role in ("alice", "bob"):
            admin.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def bob(t: Tenants, *statements: str) -> list[tuple[object, ...]]:
    """Run statements as Bob in one transaction, scoped to Alice's store as far as he can."""
    rows: list[tuple[object, ...]] = []
    with psycopg.connect(t.bob_sql) as conn:
        conn.execute(f"SET severance.store = '{t.alice_store_id}'")
        for statement in statements:
            cur = conn.execute(statement)
            if cur.description:
                rows += cur.fetchall()
    return rows


TABLES = (
    "meta",
    "personas",
    "floors",
    "passes",
    "audit",
    "memories",
    "history",
    "tombstones",
    "snapshots",
    "seq_counters",
    "vector_indexes",
    "memory_vectors",
)


def test_bob_sees_no_row_of_alice_whatever_he_sets(tenants: Tenants) -> None:
    # Not her store's name, nor its settings (KDF, key check), personas, floors, passes,
    # audit, memory ids, sizes or vectors: with her store id set, and by guessing ids.
    assert bob(tenants, "SELECT name FROM severance.stores") == [("bob-store",)]
    for table in TABLES:
        assert bob(tenants, f"SELECT * FROM severance.{table} WHERE store_id <> 0") == [] or (
            all(
                r[0] != tenants.alice_store_id
                for r in bob(tenants, f"SELECT store_id FROM severance.{table}")
            )
        ), table
        assert (
            bob(
                tenants,
                f"SELECT * FROM severance.{table} WHERE store_id = {tenants.alice_store_id}",
            )
            == []
        ), table
    assert bob(
        tenants, "SET severance.persona = 'x'", "SELECT count(*) FROM severance.memories"
    ) == [(0,)]


@pytest.mark.parametrize(
    "attack",
    [
        # item 1: a forged pass
        "INSERT INTO severance.passes (store_id, pass_id, token_hash, floor, persona_id,"
        " created_at, read_only) SELECT {s}, 'ps_x', 'h', 'office', 'p', 0, false",
        # item 4: silent re-routing; item 2: deleting a memory, the audit, the settings
        "UPDATE severance.floors SET persona_id = 'p' WHERE store_id = {s}",
        "DELETE FROM severance.memories WHERE store_id = {s}",
        "DELETE FROM severance.audit WHERE store_id = {s}",
        "UPDATE severance.meta SET value = 'x' WHERE store_id = {s}",
        "INSERT INTO severance.meta VALUES ({s}, 'embedder', 'x')",
        "INSERT INTO severance.stores (name, created_at, owner) VALUES ('mine', 0, 'alice')",
        # item 2: turning row-level security off, or becoming someone else
        "ALTER TABLE severance.memories NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE severance.stores DISABLE ROW LEVEL SECURITY",
        "DROP POLICY own_stores ON severance.stores",
        "SET ROLE alice",
        "SET ROLE severance_app",
        "SET SESSION AUTHORIZATION alice",
        "SET severance.persona = 'p'; SELECT severance.persona_index(3)",
        "SET severance.persona = 'p'; SELECT severance.persona_index(NULL)",
    ],
)
def test_bob_changes_nothing_of_alice(tenants: Tenants, attack: str) -> None:
    # Refused outright, or else it must have touched nothing.
    with contextlib.suppress(psycopg.Error):
        bob(tenants, attack.format(s=tenants.alice_store_id))
    with Store.open(tenants.alice) as store:
        assert store.verify_audit().ok
        assert store.check_records() == []
        with store.enter(floor="office") as s:
            assert s.get(tenants.alice_memory).text == "alice's secret plan"


def test_alice_uses_indexed_vectors_and_erases_them_with_her_own_login(tenants: Tenants) -> None:
    with Store.open(tenants.alice) as store:
        assert store.persona("work").vectors == "indexed"
        with store.enter(floor="office") as s:
            assert [r.memory.id for r in s.recall("secret plan")][:1] == [tenants.alice_memory]
        work = store.persona("work").id
        with psycopg.connect(tenants.admin) as admin:
            indexes = admin.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'severance'"
                " AND indexdef LIKE '%%hnsw%%' AND indexdef LIKE %s",
                (f"%{work}%",),
            ).fetchall()
        assert len(indexes) == 1
        store.clean_slate("work", confirm="work")
        with psycopg.connect(tenants.admin) as admin:
            assert admin.execute(
                "SELECT count(*) FROM pg_indexes WHERE indexdef LIKE %s", (f"%{work}%",)
            ).fetchone() == (0,)


def test_bob_cannot_open_or_probe_alices_store(tenants: Tenants) -> None:
    as_bob = as_login(tenants.admin, "bob", store="alice-store")
    with pytest.raises(StoreNotFoundError) as caught:
        Store.open(as_bob)
    # Nothing about how it is locked (item 7).
    assert "passphrase" not in str(caught.value) and "key" not in str(caught.value)
    backend = PostgresBackend(as_bob)
    try:
        assert not backend.exists()
    finally:
        backend.close()


def test_the_shared_login_is_warned_about(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli("init", pg_url + ("&" if "?" in pg_url else "?") + "store=one") == 0
    assert "protects nothing between stores" in capsys.readouterr().err


def test_provision_prints_the_sql_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEW_PW", "hunter2-correct-horse")
    assert _run_cli("pg", "provision", "carol", "--store", "carol", "--password-env", "NEW_PW") == 0
    out = capsys.readouterr().out
    assert 'CREATE ROLE "carol" LOGIN' in out and "hunter2" not in out
    assert "INSERT INTO severance.stores" in out
