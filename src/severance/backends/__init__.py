"""Storage back-ends, chosen by the scheme of a store's location.

A plain path (or ``sqlite://PATH``) is the embedded SQLite store; ``postgresql://…`` is a
PostgreSQL database. The choice is a plain dict lookup, not an import of a dotted string.
"""

from __future__ import annotations

from pathlib import Path

from .base import Backend, PersonaRows
from .sqlite import SQLiteBackend

__all__ = ["BACKENDS", "Backend", "PersonaRows", "open_backend"]

BACKENDS: dict[str, type[Backend]] = {"sqlite": SQLiteBackend}


def _postgres() -> type[Backend]:
    # Imported on demand: psycopg is an optional extra.
    from .postgres import PostgresBackend

    backend: type[Backend] = PostgresBackend
    return backend


def open_backend(location: str | Path) -> Backend:
    """The back-end for a store location (path or URL). Nothing is created or opened yet."""
    text = str(location)
    scheme = text.split("://", 1)[0].lower() if "://" in text else "sqlite"
    if scheme in ("postgresql", "postgres"):
        if "postgresql" not in BACKENDS:
            BACKENDS["postgresql"] = _postgres()
        scheme = "postgresql"
    cls = BACKENDS.get(scheme)
    if cls is None:
        from ..errors import StorePathError

        raise StorePathError(f"unsupported store location scheme {scheme!r}")
    return cls(text)  # type: ignore[call-arg]
