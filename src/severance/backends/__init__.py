"""Storage back-ends, chosen by the scheme of a store's location.

A plain path (or ``sqlite://PATH``) is the embedded SQLite store; ``postgresql://…`` (or
``postgres://…``) is a PostgreSQL database. :data:`BACKENDS` maps each scheme to a factory
taking the location, as :data:`severance.embedders.SCHEMES` does for embedders: a plain dict
lookup, not an import of a dotted string. A factory imports its module when called, so the
optional psycopg is only imported for a PostgreSQL store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import StorePathError
from .base import Backend, PersonaRows

__all__ = ["BACKENDS", "Backend", "PersonaRows", "open_backend"]


def _sqlite(location: str) -> Backend:
    from .sqlite import SQLiteBackend

    return SQLiteBackend(location)


def _postgres(location: str) -> Backend:
    from .postgres import PostgresBackend

    return PostgresBackend(location)


#: Location scheme -> factory taking the whole location (path or URL).
BACKENDS: dict[str, Callable[[str], Backend]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_backend(location: str | Path) -> Backend:
    """The back-end for a store location (path or URL). Nothing is created or opened yet."""
    text = str(location)
    scheme = text.split("://", 1)[0].lower() if "://" in text else "sqlite"
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise StorePathError(f"unsupported store location scheme {scheme!r}")
    return factory(text)
