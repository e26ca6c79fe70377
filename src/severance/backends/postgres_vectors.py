"""Indexed vectors: a persona's plain vectors in pgvector, under an HNSW index of its own.

An extension of the storage protocol that only PostgreSQL offers (``indexed_vectors = True``
on the back-end). Normally a memory's ``vector`` column is sealed ciphertext and search runs
client-side on an in-memory index. A persona in *indexed* mode also keeps its plain vectors
in ``severance.memory_vectors`` and searches them in the database with
:meth:`IndexedVectors.nearest` (cosine similarity, most similar first).

Table shape. pgvector's HNSW index needs one typed dimension, while personas may use
different embedders. So one table holds every persona's vectors in an untyped ``vector``
column, and each indexed persona gets a *partial* HNSW index over ``embedding::vector(dim)``
restricted to its own rows (``WHERE store_id = … AND persona_id = …``): every persona has its
own dimension, and no persona's graph holds another's points, so neither results nor their
timing depend on another persona's data. ``vector_indexes`` records the dimension (it is
also the "indexed mode" flag). A row's vector goes with its memory (``ON DELETE CASCADE``).
The cost: every insert into the table tests each partial index's predicate, so the mode suits
tens of indexed personas per database rather than thousands (past that, a table per
dimension with iterative filtered scans would be the better shape).

Trade-off, to be stated in the user docs: these vectors are plaintext to the database's
administrators, in its WAL and in its backups, and embeddings can be partly inverted back into
text. Memory text and metadata stay encrypted client-side either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import sql

from ..errors import EmbedderMismatchError, InvalidInputError, StorageError
from . import postgres_migrations as migrations
from .postgres_connection import PostgresConnection
from .postgres_vector_type import VectorParam

__all__ = ["IndexedVectors", "index_name", "nearest_sql"]

_WHERE = "WHERE store_id = %(s)s AND persona_id = %(p)s"


def index_name(store_id: int, persona_id: str) -> str:
    digest = hashlib.sha256(persona_id.encode()).hexdigest()[:24]
    return f"memory_vectors_{store_id}_{digest}"


def nearest_sql(store_id: int, persona_id: str, dimension: int) -> sql.Composed:
    """The k-nearest query of one persona (parameters ``q``: the vector, ``k``: the limit).

    Store and persona are inlined as literals, not bound: the planner can only use a partial
    index whose predicate it can prove from constants in the query.
    """
    return sql.SQL(
        "SELECT memory_id, 1 - (embedding::vector({d}) <=> %(q)b::vector({d}))"
        " FROM severance.memory_vectors WHERE store_id = {s} AND persona_id = {p}"
        " ORDER BY embedding::vector({d}) <=> %(q)b::vector({d}) LIMIT %(k)s"
    ).format(d=sql.Literal(int(dimension)), s=sql.Literal(store_id), p=sql.Literal(persona_id))


class IndexedVectors:
    """One persona's indexed vectors (the :class:`~severance.backends.base.VectorRows` side of
    its rows), on the store's shared connection."""

    def __init__(self, connection: PostgresConnection, persona_id: str) -> None:
        self._c = connection
        self.persona_id = persona_id

    def _params(self, **params: Any) -> dict[str, Any]:
        return self._c.params(self.persona_id, **params)

    def enable_vectors(self, dimension: int) -> None:
        """Keep this persona's plain vectors in pgvector, under an HNSW index of its own."""
        if not 1 <= dimension <= migrations.MAX_INDEXED_DIMENSION:
            raise InvalidInputError(
                f"indexed vectors take 1 to {migrations.MAX_INDEXED_DIMENSION} dimensions"
            )
        c = self._c
        with c.tx(self.persona_id) as conn:
            with c.as_owner(conn):
                if not migrations.ensure_vector_tables(conn):
                    raise StorageError("pgvector is not available in this database")
            c.ensure_vector_type(conn)
            current = self.vector_dimension()
            if current == dimension:
                return
            if current is not None:
                raise EmbedderMismatchError(
                    f"this persona's indexed vectors have {current} dimensions, not {dimension}"
                )
            conn.execute(
                "INSERT INTO severance.vector_indexes VALUES (%(s)s, %(p)s, %(d)s)",
                self._params(d=dimension),
            )
            if migrations.has_index_function(conn):
                # As the schema's owner, for this login's own store only (a store's own
                # login owns no table and may not run the DDL itself).
                conn.execute("SELECT severance.persona_index(%s)", (dimension,))
                return
            with c.as_owner(conn):
                conn.execute(
                    sql.SQL(
                        "CREATE INDEX IF NOT EXISTS {i} ON severance.memory_vectors USING hnsw"
                        " ((embedding::vector({d})) vector_cosine_ops)"
                        " WHERE store_id = {s} AND persona_id = {p}"
                    ).format(
                        i=sql.Identifier(index_name(c.store_id, self.persona_id)),
                        d=sql.Literal(dimension),
                        s=sql.Literal(c.store_id),
                        p=sql.Literal(self.persona_id),
                    )
                )

    def disable_vectors(self) -> None:
        """Drop this persona's plain vectors and their index (back to sealed vectors only)."""
        c = self._c
        with c.tx(self.persona_id) as conn:
            if not migrations.has_vector_tables(conn):
                return
            for table in migrations.VECTOR_TABLES:
                conn.execute(
                    sql.SQL("DELETE FROM {} " + _WHERE).format(
                        sql.Identifier(migrations.SCHEMA, table)
                    ),
                    self._params(),
                )
            if migrations.has_index_function(conn):
                conn.execute("SELECT severance.persona_index(NULL)")
                return
            with c.as_owner(conn):
                conn.execute(
                    sql.SQL("DROP INDEX IF EXISTS {}").format(
                        sql.Identifier(migrations.SCHEMA, index_name(c.store_id, self.persona_id))
                    )
                )

    def vector_dimension(self) -> int | None:
        """The dimension of this persona's indexed vectors; None if it keeps none."""
        with self._c.tx(self.persona_id) as conn:
            if not migrations.has_vector_tables(conn):
                return None
            row = conn.execute(
                f"SELECT dimension FROM severance.vector_indexes {_WHERE}", self._params()
            ).fetchone()
        return int(row[0]) if row else None

    def set_vectors(self, vectors: Mapping[str, NDArray[np.float32]]) -> None:
        """Store (or replace) the plain vectors of existing memories of this persona."""
        if not vectors:
            return
        with self._c.tx(self.persona_id) as conn:
            dimension = self.vector_dimension()
            if dimension is None:
                raise StorageError("this persona does not keep indexed vectors")
            params = []
            for memory_id, vector in vectors.items():
                array = np.asarray(vector, dtype=np.float32)
                if array.shape != (dimension,):
                    raise EmbedderMismatchError(
                        f"expected vectors of {dimension} dimensions, got shape {array.shape}"
                    )
                if not np.isfinite(array).all():
                    raise InvalidInputError("vectors must be finite")
                params.append(self._params(id=memory_id, v=VectorParam(array)))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO severance.memory_vectors VALUES (%(s)s, %(p)s, %(id)s, %(v)b)"
                    " ON CONFLICT (store_id, persona_id, memory_id)"
                    " DO UPDATE SET embedding = excluded.embedding",
                    params,
                )

    def nearest(self, query: NDArray[np.float32], k: int) -> list[tuple[str, float]]:
        """The ``k`` memories whose indexed vectors are nearest ``query``, with their cosine
        similarity, most similar first ([] if this persona keeps no indexed vectors)."""
        array = np.asarray(query, dtype=np.float32)
        if array.ndim != 1 or not np.isfinite(array).all() or not array.any():
            raise InvalidInputError("the query must be one finite, non-zero vector")
        if k <= 0:
            return []
        with self._c.tx(self.persona_id) as conn:
            dimension = self.vector_dimension()
            if dimension is None:
                return []
            if array.shape[0] != dimension:
                raise EmbedderMismatchError(
                    f"this persona's indexed vectors have {dimension} dimensions,"
                    f" the query {array.shape[0]}"
                )
            # HNSW returns at most ef_search candidates (at most 1000); past that, let it
            # keep scanning the graph in exact distance order.
            ef_search = sql.Literal(str(min(max(k, 40), 1000)))
            conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(ef_search))
            if k > 1000:
                conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            rows = conn.execute(
                nearest_sql(self._c.store_id, self.persona_id, dimension),
                {"q": VectorParam(array), "k": k},
            ).fetchall()
        return [(str(m), float(similarity)) for m, similarity in rows]
