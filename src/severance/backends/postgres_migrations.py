"""Numbered schema migrations of the PostgreSQL back-end.

Everything lives in one schema, ``severance``, shared by every store of the database. Each
table's primary key leads with ``store_id`` so the schema can be distributed with Citus by
store (``stores`` and ``schema_version`` are the two exceptions: they would be Citus
*reference* tables)::

    stores          store_id ─┐  name → store_id directory (one row per store)
    schema_version            │  one row: the number of migrations applied to the database
    seq_counters    store_id ─┤  last seq handed out (the commit-ordered counter)
    meta            store_id ─┤  store-wide settings
    personas        store_id ─┤  wrapped keys, embedder
    floors          store_id ─┤
    passes          store_id ─┤  HTTP bearer tokens (their SHA-256 only), looked up by hash
    audit           store_id ─┤  hash chain; the application role may only SELECT and INSERT
    memories        store_id, persona_id ─┐  row-level security: one persona per transaction
    history         store_id, persona_id ─┤
    tombstones      store_id, persona_id ─┤
    snapshots       store_id, persona_id ─┤
    vector_indexes  store_id, persona_id ─┤  (only with pgvector) personas in "indexed" mode
    memory_vectors  store_id, persona_id ─┘  (only with pgvector) plain vectors, HNSW indexed

Row-level security reads two settings that the back-end sets with ``SET LOCAL`` at the start
of every transaction: ``severance.store`` (every table but ``stores``) and
``severance.persona`` (the persona tables). Unset means "no rows": policies fail closed.
Policies do not bind superusers or ``BYPASSRLS`` roles, so such logins run their transactions
as the unprivileged role ``severance_app`` (created here when the login may create roles);
``FORCE ROW LEVEL SECURITY`` makes them bind a plain table owner too.

``MIGRATIONS[i]`` takes the schema from version i to i + 1. :func:`migrate` applies the
missing ones in one transaction under an advisory lock, so concurrent openers of one
database neither race nor see a half-built schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

__all__ = [
    "APP_ROLE",
    "MIGRATIONS",
    "PERSONA_TABLES",
    "SCHEMA",
    "STORE_TABLES",
    "TENANT_ROLE",
    "VECTOR_TABLES",
    "ensure_vector_tables",
    "grant_tenant",
    "has_index_function",
    "has_vector_tables",
    "migrate",
    "provision_sql",
    "schema_version",
    "tenant_grants",
]

SCHEMA = "severance"
APP_ROLE = "severance_app"
#: The group role of per-store logins (``severance pg provision``).
TENANT_ROLE = "severance_tenant"
#: Store-wide tables: row-level security by store only.
STORE_TABLES = ("seq_counters", "meta", "personas", "floors", "audit", "passes")
#: One persona's rows: row-level security by store and persona.
PERSONA_TABLES = ("memories", "history", "tombstones", "snapshots")
VECTOR_TABLES = ("vector_indexes", "memory_vectors")
#: pgvector's HNSW index takes at most 2,000 dimensions of ``vector``.
MAX_INDEXED_DIMENSION = 2000

# An arbitrary constant: the advisory lock that serialises migrations of one database.
_MIGRATION_LOCK = 0x5E7E_2A9C_E000_0001

Migration = Callable[[psycopg.Connection[Any]], None]
MIGRATIONS: list[Migration] = []


def _migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@_migration
def m001_tables(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """
        CREATE TABLE severance.stores (
            store_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE CHECK (name <> ''),
            created_at double precision NOT NULL
        );
        CREATE TABLE severance.seq_counters (
            store_id bigint PRIMARY KEY REFERENCES severance.stores,
            last_seq bigint NOT NULL
        );
        CREATE TABLE severance.meta (
            store_id bigint NOT NULL REFERENCES severance.stores,
            key text NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (store_id, key)
        );
        CREATE TABLE severance.personas (
            store_id bigint NOT NULL REFERENCES severance.stores,
            persona_id text NOT NULL,
            name text NOT NULL,
            created_at double precision NOT NULL,
            wrapped_key bytea NOT NULL,
            sealed boolean NOT NULL,
            seal_kdf text,
            embedder text NOT NULL,
            dimension integer NOT NULL,
            PRIMARY KEY (store_id, persona_id),
            CONSTRAINT personas_name_key UNIQUE (store_id, name)
        );
        CREATE TABLE severance.floors (
            store_id bigint NOT NULL,
            name text NOT NULL,
            position integer NOT NULL,
            persona_id text NOT NULL,
            rule text NOT NULL,
            is_default boolean NOT NULL,
            PRIMARY KEY (store_id, name),
            FOREIGN KEY (store_id, persona_id) REFERENCES severance.personas
        );
        CREATE TABLE severance.audit (
            store_id bigint NOT NULL REFERENCES severance.stores,
            seq bigint NOT NULL,
            at double precision NOT NULL,
            event text NOT NULL,
            persona_id text,
            persona text,
            detail text NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL,
            PRIMARY KEY (store_id, seq)
        );
        CREATE INDEX audit_by_persona ON severance.audit (store_id, persona_id, seq);
        -- The memory id is unique per persona, not per store: inserting an id that another
        -- persona happens to use must not fail (that failure would reveal the other row).
        CREATE TABLE severance.memories (
            store_id bigint NOT NULL,
            persona_id text NOT NULL,
            memory_id text NOT NULL,
            seq bigint NOT NULL,
            version integer NOT NULL,
            learned_at double precision NOT NULL,
            occurred_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            payload bytea NOT NULL,
            vector bytea NOT NULL,
            PRIMARY KEY (store_id, persona_id, memory_id),
            -- A session that outlives its persona's clean slate cannot write orphans.
            FOREIGN KEY (store_id, persona_id) REFERENCES severance.personas
        );
        CREATE INDEX memories_by_seq ON severance.memories (store_id, persona_id, seq);
        CREATE INDEX memories_by_learned
            ON severance.memories (store_id, persona_id, learned_at, memory_id);
        CREATE TABLE severance.history (
            store_id bigint NOT NULL,
            persona_id text NOT NULL,
            memory_id text NOT NULL,
            version integer NOT NULL,
            occurred_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            replaced_at double precision NOT NULL,
            payload bytea NOT NULL,
            PRIMARY KEY (store_id, persona_id, memory_id, version)
        );
        CREATE TABLE severance.tombstones (
            store_id bigint NOT NULL,
            persona_id text NOT NULL,
            memory_id text NOT NULL,
            seq bigint NOT NULL,
            PRIMARY KEY (store_id, persona_id, memory_id)
        );
        CREATE INDEX tombstones_by_seq ON severance.tombstones (store_id, persona_id, seq);
        CREATE TABLE severance.snapshots (
            store_id bigint NOT NULL,
            persona_id text NOT NULL,
            part integer NOT NULL,
            watermark bigint NOT NULL,
            chunk bytea NOT NULL,
            PRIMARY KEY (store_id, persona_id, part)
        );
        -- Ciphertext does not compress: EXTERNAL skips TOAST's futile compression attempt.
        ALTER TABLE severance.memories ALTER payload SET STORAGE EXTERNAL,
                                       ALTER vector SET STORAGE EXTERNAL;
        ALTER TABLE severance.history ALTER payload SET STORAGE EXTERNAL;
        ALTER TABLE severance.snapshots ALTER chunk SET STORAGE EXTERNAL;
        """
    )


def _policies(conn: psycopg.Connection[Any], tables: tuple[str, ...], by_persona: bool) -> None:
    check = "store_id = severance.current_store()"
    if by_persona:
        check += " AND persona_id = severance.current_persona()"
    for table in tables:
        ident = sql.Identifier(SCHEMA, table)
        conn.execute(
            sql.SQL(
                "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;"
                " ALTER TABLE {t} FORCE ROW LEVEL SECURITY;"
                " CREATE POLICY {p} ON {t} USING ({c}) WITH CHECK ({c})"
            ).format(
                t=ident,
                p=sql.Identifier("persona_rows" if by_persona else "store_rows"),
                c=sql.SQL(check),
            )
        )


@_migration
def m002_row_level_security(conn: psycopg.Connection[Any]) -> None:
    # Plain SQL functions are inlined by the planner, so the policies still use the indexes.
    conn.execute(
        """
        CREATE FUNCTION severance.current_store() RETURNS bigint
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT nullif(current_setting('severance.store', true), '')::bigint $$;
        CREATE FUNCTION severance.current_persona() RETURNS text
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT nullif(current_setting('severance.persona', true), '') $$;
        """
    )
    # Table lists spelled out: a migration must keep doing what it did when it shipped.
    _policies(conn, ("seq_counters", "meta", "personas", "floors", "audit"), by_persona=False)
    _policies(conn, ("memories", "history", "tombstones", "snapshots"), by_persona=True)


def _app_role_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
    return row is not None


def _grant(conn: psycopg.Connection[Any], privileges: str, tables: tuple[str, ...]) -> None:
    if not _app_role_exists(conn):
        return
    conn.execute(
        sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(privileges),
            sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in tables),
            sql.Identifier(APP_ROLE),
        )
    )


@_migration
def m003_application_role(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is not None and row[0] and not _app_role_exists(conn):
        # Roles belong to the cluster, not the database: another database's migration may
        # create it at the same moment, hence the tolerated duplicate.
        conn.execute(
            """
            DO $$ BEGIN
                CREATE ROLE severance_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB
                    NOCREATEROLE;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$
            """
        )
    if not _app_role_exists(conn):
        return  # the login is an ordinary role: FORCE ROW LEVEL SECURITY binds it directly
    conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(SCHEMA), sql.Identifier(APP_ROLE)
        )
    )
    _grant(conn, "SELECT", ("stores", "schema_version"))
    _grant(conn, "SELECT, UPDATE", ("seq_counters",))
    _grant(conn, "SELECT, INSERT", ("audit",))  # append-only, even for a buggy caller
    _grant(
        conn,
        "SELECT, INSERT, UPDATE, DELETE",
        ("meta", "personas", "floors", "memories", "history", "tombstones", "snapshots"),
    )


def has_vector_tables(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('severance.memory_vectors') IS NOT NULL").fetchone()
    return bool(row and row[0])


def ensure_vector_tables(conn: psycopg.Connection[Any]) -> bool:
    """Create the pgvector tables if pgvector can be had; False if it cannot.

    Must run as the schema owner inside a transaction. It is idempotent, so a database whose
    administrator installs pgvector later gains the tables on the first ``enable_vectors``.
    """
    if has_vector_tables(conn):
        return True
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if available is None:
        return False
    try:
        with conn.transaction():  # a savepoint: lacking the privilege must not abort us
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        return False
    # One untyped ``vector`` column holds every persona's vectors whatever their dimension;
    # each indexed persona gets a *partial* HNSW index over ``embedding::vector(dim)``
    # restricted to its own rows (see postgres_vectors), because an HNSW index needs one typed
    # dimension and a persona's graph must never contain another persona's points.
    conn.execute(
        f"""
        CREATE TABLE severance.vector_indexes (
            store_id bigint NOT NULL,
            persona_id text NOT NULL,
            dimension integer NOT NULL CHECK (dimension BETWEEN 1 AND {MAX_INDEXED_DIMENSION}),
            PRIMARY KEY (store_id, persona_id),
            FOREIGN KEY (store_id, persona_id) REFERENCES severance.personas
        );
        CREATE TABLE severance.memory_vectors (
            store_id bigint NOT NULL,
            persona_id text NOT NULL,
            memory_id text NOT NULL,
            embedding vector NOT NULL,
            PRIMARY KEY (store_id, persona_id, memory_id),
            FOREIGN KEY (store_id, persona_id, memory_id)
                REFERENCES severance.memories ON DELETE CASCADE
        );
        """
    )
    _policies(conn, VECTOR_TABLES, by_persona=True)
    _grant(conn, "SELECT, INSERT, UPDATE, DELETE", VECTOR_TABLES)
    if schema_version(conn) >= 6:  # created after m006 ran: its index function too
        create_index_function(conn)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TENANT_ROLE,)).fetchone():
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in VECTOR_TABLES),
                sql.Identifier(TENANT_ROLE),
            )
        )
    return True


@_migration
def m004_indexed_vectors(conn: psycopg.Connection[Any]) -> None:
    # Optional: a server without pgvector still hosts sealed-vector stores.
    ensure_vector_tables(conn)


@_migration
def m005_passes(conn: psycopg.Connection[Any]) -> None:
    # Store-wide, not persona-scoped: a pass is looked up by its token's hash before any
    # persona is awake (the pass is what says which persona to wake).
    conn.execute(
        """
        CREATE TABLE severance.passes (
            store_id bigint NOT NULL,
            pass_id text NOT NULL,
            token_hash text NOT NULL,
            floor text NOT NULL,
            persona_id text NOT NULL,
            created_at double precision NOT NULL,
            expires_at double precision,
            read_only boolean NOT NULL,
            revoked_at double precision,
            label text,
            PRIMARY KEY (store_id, pass_id),
            CONSTRAINT passes_token_hash_key UNIQUE (store_id, token_hash),
            FOREIGN KEY (store_id, persona_id) REFERENCES severance.personas
        );
        CREATE INDEX passes_by_persona ON severance.passes (store_id, persona_id);
        """
    )
    _policies(conn, ("passes",), by_persona=False)
    _grant(conn, "SELECT, INSERT, UPDATE, DELETE", ("passes",))


@_migration
def m006_authenticated_records(conn: psycopg.Connection[Any]) -> None:
    # Rows that grant access or route memories carry a MAC only the key holder can make
    # (severance.records); floors gain a stable id that passes follow instead of a name.
    conn.execute(
        """
        ALTER TABLE severance.personas ADD COLUMN mac bytea NOT NULL DEFAULT ''::bytea;
        ALTER TABLE severance.floors ADD COLUMN floor_id text NOT NULL DEFAULT '',
                                     ADD COLUMN mac bytea NOT NULL DEFAULT ''::bytea;
        ALTER TABLE severance.passes ADD COLUMN floor_id text NOT NULL DEFAULT '',
                                     ADD COLUMN mac bytea NOT NULL DEFAULT ''::bytea;
        """
    )
    _store_owners(conn)


def _all_policy_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, bool]]:
    tables = [(t, False) for t in STORE_TABLES] + [(t, True) for t in PERSONA_TABLES]
    if has_vector_tables(conn):
        tables += [(t, True) for t in VECTOR_TABLES]
    return tables


def _role_policies(conn: psycopg.Connection[Any]) -> None:
    # Written as (SELECT …): an InitPlan, evaluated once per statement rather than per row.
    for table, by_persona in _all_policy_tables(conn):
        check = "store_id = (SELECT severance.current_store())"
        if by_persona:
            check += " AND persona_id = (SELECT severance.current_persona())"
        name = sql.Identifier("persona_rows" if by_persona else "store_rows")
        ident = sql.Identifier(SCHEMA, table)
        conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(name, ident))
        conn.execute(
            sql.SQL("CREATE POLICY {} ON {} USING ({c}) WITH CHECK ({c})").format(
                name, ident, c=sql.SQL(check)
            )
        )


def _store_owners(conn: psycopg.Connection[Any]) -> None:
    # Per-store database roles. A store belongs to the login that made it (session_user: a
    # client cannot change it with SET ROLE or a setting), and row-level security shows a
    # login only its own stores, whatever ``severance.store`` it sets. One shared login for
    # everyone (the shared-login mode) therefore protects nothing between its stores.
    conn.execute(
        """
        ALTER TABLE severance.stores ADD COLUMN owner name NOT NULL DEFAULT session_user;
        ALTER TABLE severance.stores ENABLE ROW LEVEL SECURITY;
        ALTER TABLE severance.stores FORCE ROW LEVEL SECURITY;
        CREATE POLICY own_stores ON severance.stores
            USING (owner = session_user) WITH CHECK (owner = session_user);
        CREATE OR REPLACE FUNCTION severance.current_store() RETURNS bigint
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT s.store_id FROM severance.stores s
                  WHERE s.store_id = nullif(current_setting('severance.store', true), '')::bigint
                    AND s.owner = session_user $$;
        """
    )
    _role_policies(conn)
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is not None and row[0]:
        conn.execute(
            """
            DO $$ BEGIN
                CREATE ROLE severance_tenant NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB
                    NOCREATEROLE;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$
            """
        )
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TENANT_ROLE,)).fetchone():
        grant_tenant(conn, TENANT_ROLE)
    if _app_role_exists(conn):
        _grant(conn, "SELECT, INSERT", ("stores",))
        _grant(conn, "INSERT", ("seq_counters",))
    if has_vector_tables(conn):
        create_index_function(conn)  # after the roles it is granted to


def has_index_function(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT to_regprocedure('severance.persona_index(integer)') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def create_index_function(conn: psycopg.Connection[Any]) -> None:
    """``severance.persona_index(dimension)``: build (or, with NULL, drop) the HNSW index of
    the awake persona. A store's own login owns no table, so it may not run that DDL itself;
    this function runs it as the schema's owner, and only for the store and persona the
    caller's row-level security already lets it write (its own login's store)."""
    conn.execute(
        """
        CREATE OR REPLACE FUNCTION severance.persona_index(dimension integer) RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $$
            DECLARE
                s bigint := severance.current_store();
                p text := severance.current_persona();
                i text;
                v text;  -- pgvector's schema: names are qualified, the search_path is fixed
            BEGIN
                SELECT n.nspname INTO v FROM pg_extension e
                    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector';
                IF s IS NULL OR p IS NULL THEN
                    RAISE EXCEPTION 'no store or persona of this login is awake'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                -- The name postgres_vectors.index_name gives it.
                i := 'memory_vectors_' || s || '_'
                     || left(encode(sha256(convert_to(p, 'UTF8')), 'hex'), 24);
                IF dimension IS NULL THEN
                    EXECUTE format('DROP INDEX IF EXISTS severance.%I', i);
                ELSIF dimension BETWEEN 1 AND 2000 THEN
                    EXECUTE format(
                        'CREATE INDEX IF NOT EXISTS %I ON severance.memory_vectors USING hnsw'
                        ' ((embedding::%I.vector(%s)) %I.vector_cosine_ops)'
                        ' WHERE store_id = %s AND persona_id = %L',
                        i, v, dimension, v, s, p);
                ELSE
                    RAISE EXCEPTION 'indexed vectors take 1 to 2000 dimensions';
                END IF;
            END $$;
        REVOKE ALL ON FUNCTION severance.persona_index(integer) FROM PUBLIC;
        """
    )
    for role in (TENANT_ROLE, APP_ROLE):
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION severance.persona_index(integer) TO {}").format(
                    sql.Identifier(role)
                )
            )


def grant_tenant(conn: psycopg.Connection[Any], role: str) -> None:
    """What a store's own login may do: its rows only (row-level security), the audit log
    append-only, no DDL (it owns no table)."""
    for statement in tenant_grants(role, has_vector_tables(conn)):
        conn.execute(statement)


def tenant_grants(role: str, vectors: bool) -> list[sql.Composed]:
    r = sql.Identifier(role)

    def grant(privileges: str, *tables: str) -> sql.Composed:
        return sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(privileges), sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in tables), r
        )

    out = [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), r),
        grant("SELECT", "schema_version"),
        grant("SELECT, INSERT", "stores", "audit"),
        grant("SELECT, INSERT, UPDATE", "seq_counters"),
        grant(
            "SELECT, INSERT, UPDATE, DELETE",
            "meta",
            "personas",
            "floors",
            "passes",
            "memories",
            "history",
            "tombstones",
            "snapshots",
        ),
    ]
    if vectors:
        out.append(grant("SELECT, INSERT, UPDATE, DELETE", *VECTOR_TABLES))
    return out


def provision_sql(role: str, store: str, password: str | None) -> list[sql.Composed]:
    """The statements that give a person their own login and store (run by the schema's
    owner): a role in ``severance_tenant`` and a store row it owns."""
    r = sql.Identifier(role)
    create = sql.SQL(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT"
    ).format(r)
    if password is not None:
        create = sql.SQL("{} PASSWORD {}").format(create, sql.Literal(password))
    return [
        create,
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(TENANT_ROLE), r),
        sql.SQL(
            "INSERT INTO severance.stores (name, created_at, owner)"
            " VALUES ({}, extract(epoch FROM now()), {})"
        ).format(sql.Literal(store), sql.Literal(role)),
    ]


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """How many migrations the database has had (0: no Severance schema at all)."""
    row = conn.execute("SELECT to_regclass('severance.schema_version') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return 0
    row = conn.execute("SELECT version FROM severance.schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply the missing migrations (as the connected, owning role); returns the version.

    Raises ``RuntimeError`` if the database is newer than this code (the caller maps it).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            """
            CREATE SCHEMA IF NOT EXISTS severance;
            CREATE TABLE IF NOT EXISTS severance.schema_version (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                version integer NOT NULL
            );
            INSERT INTO severance.schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;
            """
        )
        version = schema_version(conn)
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the database schema is version {version}; this Severance knows only"
                f" {len(MIGRATIONS)}"
            )
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute("UPDATE severance.schema_version SET version = %s", (len(MIGRATIONS),))
    return len(MIGRATIONS)
