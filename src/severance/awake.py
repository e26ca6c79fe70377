"""Awake sessions shared by a server process: one per persona, kept warm between requests.

A server (HTTP or MCP) handles many short requests. Waking a persona for each would reload its
index every time, so the first request for a persona wakes it and later requests reuse that
:class:`~severance.session.Session`. Sessions are safe to share between threads (their methods
hold a lock), and each is still bound to exactly one persona: this pool only decides *which*
already-isolated handle a request gets, keyed by the persona the floor resolved to.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .passes import PassError

if TYPE_CHECKING:
    from .floors import FloorMatch
    from .session import Session
    from .store import Store

__all__ = ["AwakeSessions"]

_MAX_ROUTES = 4096


def _route_key(floor: str, context: Mapping[str, Any]) -> tuple[Any, ...]:
    paths = context.get("paths") or ()
    return (floor, context.get("client"), tuple(paths) if not isinstance(paths, str) else paths)


class AwakeSessions:
    """A cache of awake sessions for one store, keyed by persona id."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        # Contexts already recorded in the audit log by this process (see for_context).
        self._routes: set[tuple[Any, ...]] = set()

    @property
    def store(self) -> Store:
        return self._store

    def _cached(self, persona_id: str) -> Session | None:
        session = self._sessions.get(persona_id)
        if session is not None and session.closed:
            del self._sessions[persona_id]
            return None
        return session

    def for_floor(self, floor: str, persona_id: str) -> Session:
        """The awake session of ``persona_id``, entered through ``floor`` if not yet awake.

        ``persona_id`` is what the caller was promised (a pass records it); if the floor now
        wakes someone else, nothing is returned.
        """
        with self._lock:
            session = self._cached(persona_id)
            if session is not None:
                return session
            session = self._store.enter(floor=floor)
            if session.persona_id != persona_id:
                session.close()
                # Same words as a pass whose floor moved: the caller learns nothing more.
                raise PassError("this pass no longer matches its floor; issue a new one")
            self._sessions[persona_id] = session
            return session

    def for_context(self, context: Mapping[str, Any]) -> Session:
        """The awake session of whichever persona ``context`` resolves to (floor rules)."""
        match = self._store.resolve(context)
        persona_id = self._store.persona(match.persona).id
        with self._lock:
            session = self._cached(persona_id)
            if session is not None:
                self._note(match, context)
                return session
            session = self._store.enter(context)
            # Floors may have changed between resolve and enter; key by who actually woke.
            existing = self._cached(session.persona_id)
            if existing is not None:
                session.close()
                return existing
            self._sessions[session.persona_id] = session
            self._routes.add(_route_key(match.floor.name, context))
            return session

    def _note(self, match: FloorMatch, context: Mapping[str, Any]) -> None:
        # The persona is already awake, so no `enter` entry will say who this client is and
        # where it runs: record each new (client, workspace, floor) once per process, so that
        # `severance floor clients` and `audit show` see every client a floor woke.
        key = _route_key(match.floor.name, context)
        if context.get("floor") is not None or key in self._routes:
            return
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes.add(key)
        self._store.note_route(match, context)

    def close(self) -> None:
        """Put every persona back to sleep (snapshots are written where worthwhile)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()
