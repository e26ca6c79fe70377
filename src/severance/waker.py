"""Waking a persona: unlock its data key, check its embedder, build its :class:`Session` from
collaborators, and keep the set of sessions still awake.

The :class:`Waker` is what the store's ``enter``, ``override``, crossings and re-embedding
share. A session it builds gets the persona's rows, a codec holding its data key, the
embedder, the transaction and audit callables and a close callback — never the store — so
nothing below reaches back up. Each wake is audited (``enter``), each close of an audited
session too (``exit``, with its counts), unless the store is already closed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence

from .audit import AuditLog
from .backends.base import PersonaRow
from .codec import MemoryCodec
from .embedders import Embedder
from .errors import EmbedderMismatchError
from .floor_book import where
from .floors import Context
from .keys import Keyring, Secret
from .model import Notice
from .records import AuthenticatedBackend
from .session import Session

__all__ = ["Waker"]


class Waker:
    """Wakes the personas of one store and keeps track of their live sessions."""

    def __init__(
        self,
        records: Callable[[], AuthenticatedBackend],
        keys: Keyring,
        audit: AuditLog,
        embedder: Callable[[], Embedder],
        notices: Callable[[str], list[Notice]],
    ) -> None:
        self._records = records
        self._keys = keys
        self._audit = audit
        self._embedder = embedder
        self._notices = notices
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self._lock = threading.RLock()
        self._closed = False

    def wake(
        self,
        row: PersonaRow,
        secret: Secret | None,
        *,
        floor: str | None,
        by: str,
        expires_at: float | None = None,
        audited: bool = True,
        context: Context | None = None,
    ) -> Session:
        """A session of ``row`` (its secret, if sealed), audited as an ``enter`` unless not
        ``audited`` (a crossing's helper session)."""
        data_key = self._keys.unlock(row, secret)
        self.check_embedder(row)
        notices = self._notices(row.id) if expires_at is None else []
        session = self.session(
            row, data_key, floor=floor, expires_at=expires_at, notices=notices, audited=audited
        )
        if audited:
            seen = where(context) if context is not None else {}
            self._audit.append(
                "enter",
                row.id,
                row.name,
                floor=floor,
                by=by,
                override=expires_at is not None,
                **seen,
            )
        return session

    def session(
        self,
        row: PersonaRow,
        data_key: bytes,
        *,
        floor: str | None = None,
        expires_at: float | None = None,
        notices: Sequence[Notice] = (),
        audited: bool = True,
    ) -> Session:
        """A session of persona ``row`` built from its collaborators (no link back to us)."""
        backend = self._records()
        rows = backend.rows(row.id)
        vector_rows = backend.vector_rows(row.id) if backend.indexed_vectors else None
        if vector_rows is not None and vector_rows.vector_dimension() is None:
            vector_rows = None
        session = Session(
            row,
            rows=rows,
            codec=MemoryCodec(data_key, self._keys.store_id, row.id, row.dimension),
            embedder=self._embedder(),
            transaction=backend.transaction,
            audit=self._audit.append,
            audit_rows=backend.audit_rows,
            on_close=self._closed_one,
            read_meta=backend.get_meta,
            vector_rows=vector_rows,
            floor=floor,
            expires_at=expires_at,
            notices=notices,
            audited=audited,
        )
        with self._lock:
            self._sessions.add(session)
        return session

    def check_embedder(self, row: PersonaRow) -> None:
        """:class:`EmbedderMismatchError` unless the store's embedder made ``row``'s vectors."""
        embedder = self._embedder()
        if row.embedder != embedder.name or row.dimension != embedder.dimension:
            raise EmbedderMismatchError(
                f"persona {row.name!r} holds vectors from {row.embedder!r} ({row.dimension} dims)"
                f" but this store is using {embedder.name!r} ({embedder.dimension} dims); open the"
                f" store with that embedder, or run `severance persona reembed {row.name}`"
            )

    def erase(self, persona_id: str) -> None:
        """A clean slate is erasing this persona: its live sessions stop at once."""
        with self._lock:
            for session in [s for s in self._sessions if s.persona_id == persona_id]:
                session.abandon(erased=True)

    def close_all(self) -> None:
        """The store is closing: close every live session (audited), then audit no more."""
        with self._lock:
            for session in list(self._sessions):
                session.close()
            self._closed = True

    def _closed_one(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)
        if not self._closed and session.audited:
            self._audit.append("exit", session.persona_id, session.persona, **session.counts)
