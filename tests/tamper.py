"""Raw SQL on a store's database, as someone who can write it but holds no key.

One small vocabulary for both back-ends (the same attack test runs on each): the SQLite file
is opened directly; on PostgreSQL the statements run on a plain connection, scoped to the
store by its numeric id as a co-tenant on a shared login would scope them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import severance
from severance.backends.postgres import parse_url

#: The id column of each table, by back-end (PostgreSQL names it after the table).
_PG_ID = {"passes": "pass_id", "personas": "persona_id", "memories": "memory_id"}


class RawDb:
    """Statements on one store's tables, bypassing Severance."""

    def __init__(self, store: severance.Store) -> None:
        self.location = store.location
        self.postgres = "://" in self.location
        if self.postgres:
            self.conninfo, self.store_name, _ = parse_url(self.location)
            self.store_id = self._pg(
                "SELECT store_id FROM severance.stores WHERE name = %s", (self.store_name,)
            )[0][0]

    def _pg(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def _sqlite(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        path = Path(self.location) / "store.db"
        with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as db:
            return db.execute(query, params).fetchall()

    def _col(self, table: str, column: str) -> str:
        if self.postgres and column == "id":
            return _PG_ID.get(table, column)
        return column

    def _where(self, table: str, where: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        mark = "%s" if self.postgres else "?"
        parts = [f"{self._col(table, k)} = {mark}" for k in where]
        values: tuple[Any, ...] = tuple(where.values())
        if self.postgres:
            parts.append(f"store_id = {mark}")
            values = (*values, self.store_id)
        return (" WHERE " + " AND ".join(parts)) if parts else "", values

    def _table(self, table: str) -> str:
        return f"severance.{table}" if self.postgres else table

    def run(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._pg(query, params) if self.postgres else self._sqlite(query, params)

    def select(self, table: str, columns: list[str], **where: Any) -> list[tuple[Any, ...]]:
        cols = ", ".join(self._col(table, c) for c in columns)
        clause, values = self._where(table, where)
        return self.run(f"SELECT {cols} FROM {self._table(table)}{clause}", values)

    def update(self, table: str, values: Mapping[str, Any], **where: Any) -> None:
        mark = "%s" if self.postgres else "?"
        sets = ", ".join(f"{self._col(table, k)} = {mark}" for k in values)
        clause, params = self._where(table, where)
        self.run(f"UPDATE {self._table(table)} SET {sets}{clause}", (*values.values(), *params))

    def delete(self, table: str, **where: Any) -> None:
        clause, params = self._where(table, where)
        self.run(f"DELETE FROM {self._table(table)}{clause}", params)

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        mark = "%s" if self.postgres else "?"
        data = dict(row)
        if self.postgres:
            data = {"store_id": self.store_id, **data}
        cols = ", ".join(self._col(table, c) for c in data)
        marks = ", ".join(mark for _ in data)
        self.run(
            f"INSERT INTO {self._table(table)} ({cols}) VALUES ({marks})", tuple(data.values())
        )
