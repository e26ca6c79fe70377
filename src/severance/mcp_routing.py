"""Where an MCP call comes from, and so which persona it wakes.

Each call resolves a floor from what the client says about itself (its name, its workspace
roots), exactly as ``store.enter(client=..., paths=[...])`` would, unless the server pins a
floor or the call presents a pass (see :mod:`severance.mcp` for the rules). :class:`Where` is
that context, :func:`where_of` builds it (the SDK resolves it into every tool as ``Here``),
and :func:`awake` turns it into the awake session, refusing what the server may not wake.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, cast
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from mcp.server.mcpserver import Context, ListRoots, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ListRootsResult

from . import __version__, floors
from .awake import AwakeSessions
from .errors import FloorNotFoundError, SeveranceError
from .model import Notice
from .passes import PassError, Passes, ReadOnlyPassError
from .session import Session
from .store import Store
from .workspace import logical_cwd

__all__ = [
    "INSTRUCTIONS",
    "Here",
    "SeveranceMCP",
    "Where",
    "ask_roots",
    "awake",
    "connection_of",
    "file_uri_to_path",
    "server_of",
    "where_of",
]

INSTRUCTIONS = """\
Severance is the user's long-term memory, kept in separate personas (for example work and \
home) that never see each other. Which persona you are talking to is decided by where you run \
(your client and workspace); you cannot choose or switch it, and no tool can reach another \
persona. Use `recall` before answering questions that may depend on what the user told you \
earlier; use `remember` for durable facts, preferences and decisions worth keeping (one \
self-contained statement per memory, no secrets); use `update_memory` when a remembered \
fact changed (rather than storing a contradicting one); use `forget` when the user asks you \
to drop something; use `get_memory` to read one memory in full and `list_memories` to \
browse. If a result carries `notices`, tell the user about them (something happened to this \
persona while it slept); `status` says which persona is awake and why."""


# -- where a call comes from -----------------------------------------------------------------
def file_uri_to_path(uri: str) -> str | None:
    """The local path of a ``file://`` URI (None for any other scheme, or a remote host's).

    Percent-escapes are decoded exactly once (``%2520`` is the folder ``%20``, not a space).
    """
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    if parsed.netloc and parsed.netloc.lower() != "localhost":
        # file://server/share/x: a UNC path on Windows; elsewhere another machine's file,
        # which is no workspace here (and must not be read as //server/share/x).
        return url2pathname(f"//{parsed.netloc}{parsed.path}") if os.name == "nt" else None
    # url2pathname decodes the escapes itself (and turns /C:/x into C:\\x on Windows).
    return url2pathname(parsed.path) if os.name == "nt" else unquote(parsed.path)


@dataclass(frozen=True)
class Where:
    """What decides the floor of one tool call."""

    floor: str | None
    client: str | None
    paths: tuple[str, ...]
    read_only: bool = False
    #: Set when a pass was presented: the persona it was issued for. With ``floor`` set the
    #: pass pins that floor; with ``floor`` None (``pass_routing="restrict"``) the client's
    #: context chooses, among the floors that wake this persona only.
    persona_id: str | None = None
    pass_floor: str | None = None
    #: The moment the call is routed at, read once: every resolution of this call (the checks
    #: and the wake) must see the same time, or a floor's hours could end between them.
    at: datetime | None = None

    def context(self) -> dict[str, Any]:
        if self.floor is not None:
            return {"floor": self.floor}
        return {
            "client": self.client,
            "paths": list(self.paths),
            "host": socket.gethostname(),
            "at": self.at,
        }

    def describe(self) -> str:
        where = ", ".join(repr(p) for p in self.paths) or "no workspace"
        return f"client {self.client or 'unnamed'!r} in {where}"

    def reasons(self, store: Store) -> list[str]:
        """Why this call wakes the persona it wakes."""
        if self.persona_id is not None and self.floor is not None:
            return [f"a pass for floor {self.floor!r} was presented"]
        reasons = list(store.resolve(self.context()).reasons)
        if self.persona_id is not None:
            reasons.insert(0, f"a pass for floor {self.pass_floor!r} allows its persona's floors")
        return reasons


class SeveranceMCP(MCPServer):
    """An :class:`MCPServer` that knows its store and how to pick floors."""

    def __init__(
        self,
        sessions: AwakeSessions,
        *,
        pin_floor: str | None = None,
        cwd_fallback: bool = False,
        require_pass: bool = False,
        allowed_floors: Iterable[str] | None = None,
        pass_routing: Literal["pin", "restrict"] = "pin",
    ) -> None:
        super().__init__(
            "severance",
            title="Severance memory",
            instructions=INSTRUCTIONS,
            version=__version__,
            log_level="WARNING",
        )
        self.sessions = sessions
        self.passes = Passes(sessions.store)
        self.pin_floor = pin_floor
        self.cwd_fallback = cwd_fallback
        self.require_pass = require_pass
        self.allowed_floors = frozenset(allowed_floors) if allowed_floors is not None else None
        self.pass_routing = pass_routing
        # Which personas' notices each client connection has been shown (first result only).
        self._told: dict[int, set[str]] = {}
        self._told_lock = threading.Lock()

    def first_notices(self, connection: object, session: Session) -> list[Notice] | None:
        """The persona's notices if this connection has not been shown them yet, else None."""
        key = id(connection)
        with self._told_lock:
            told = self._told.get(key)
            if told is None:
                told = self._told[key] = set()
                # Keyed by id (the SDK's objects are not hashable); forgotten with the object.
                weakref.finalize(connection, self._forget_connection, key)
            if session.persona_id in told:
                return None
            told.add(session.persona_id)
        return session.notices() or None

    def _forget_connection(self, key: int) -> None:
        with self._told_lock:
            self._told.pop(key, None)


def server_of(ctx: Context) -> SeveranceMCP:
    return cast(SeveranceMCP, ctx.mcp_server)


def _bearer(ctx: Context) -> str | None:
    headers = ctx.headers
    value = headers.get("authorization") if headers is not None else None
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def ask_roots(ctx: Context) -> ListRoots | None:
    """Ask the client for its roots, unless the floor is already fixed or it has none."""
    server = server_of(ctx)
    has_pass = _bearer(ctx) is not None
    if server.pin_floor is not None or (server.require_pass and not has_pass):
        return None
    if has_pass and server.pass_routing == "pin":
        return None
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    return ListRoots()


def where_of(ctx: Context, roots: Annotated[ListRootsResult | None, Resolve(ask_roots)]) -> Where:
    server = server_of(ctx)
    token = _bearer(ctx)
    if token is not None:
        try:
            grant = server.passes.authenticate(token)
        except SeveranceError as e:
            raise ToolError(str(e)) from None
        if server.pin_floor is not None and grant.floor != server.pin_floor:
            # `serve --floor X` serves floor X only: a pass for another floor may not widen it.
            raise ToolError(
                f"this server serves only floor {server.pin_floor!r}, and this pass is for"
                f" another floor; nothing was read or stored"
            )
        if server.pass_routing == "pin" or server.pin_floor is not None:
            return Where(grant.floor, None, (), grant.read_only, grant.persona_id)
        client, paths = _claimed(ctx, roots)
        return Where(
            None, client, paths, grant.read_only, grant.persona_id, grant.floor, floors.clock()
        )
    if server.require_pass:
        raise ToolError(
            "this server needs a pass: send 'Authorization: Bearer <token>' (the user issues"
            " one with `severance pass issue --floor FLOOR`)"
        )
    if server.pin_floor is not None:
        return Where(server.pin_floor, None, ())
    client, paths = _claimed(ctx, roots)
    return Where(None, client, paths, at=floors.clock())


def _claimed(ctx: Context, roots: ListRootsResult | None) -> tuple[str | None, tuple[str, ...]]:
    """What the client says about itself: its name and its workspace paths."""
    params = ctx.session.client_params
    client = params.client_info.name if params is not None else None
    paths: list[str] = []
    for root in roots.roots if roots is not None else ():
        path = file_uri_to_path(str(root.uri))
        if path:
            paths.append(path)
    if not paths and server_of(ctx).cwd_fallback:
        # A stdio server is started in the client's working directory by most clients
        # (Claude Code among them), which is the best workspace guess when there are no roots.
        paths.append(logical_cwd())
    return client, tuple(paths)


Here = Annotated[Where, Resolve(where_of)]


@contextmanager
def awake(ctx: Context, where: Where, *, write: bool = False) -> Iterator[Session]:
    """The session for this call, with Severance errors turned into tool errors."""
    server = server_of(ctx)
    try:
        if write and where.read_only:
            raise ReadOnlyPassError("this pass is read-only")
        sessions = server.sessions
        if where.persona_id is not None and where.floor is not None:
            allowed = server.allowed_floors
            if allowed is not None and where.floor not in allowed:
                raise FloorNotFoundError(
                    f"this server may not wake floor {where.floor!r}, the floor of this pass"
                )
            session = sessions.for_floor(where.floor, where.persona_id)
        else:
            checked = None
            if where.persona_id is not None:
                match = checked = sessions.store.resolve(where.context())
                if sessions.store.persona(match.persona).id != where.persona_id:
                    # Not naming the floor: the pass holder learns nothing of other personas.
                    raise PassError(
                        "this pass may wake only its own persona's floors, and this context"
                        " wakes another; nothing was read or stored"
                    )
            if server.allowed_floors is not None:
                match = checked = sessions.store.resolve(where.context())
                if match.floor.name not in server.allowed_floors:
                    raise FloorNotFoundError(
                        f"this server may not wake floor {match.floor.name!r} (allowed:"
                        f" {', '.join(sorted(server.allowed_floors))}); nothing was read or stored"
                    )
            session = sessions.for_context(where.context())
            if checked is not None and session.persona != checked.persona:
                # The floors changed between the check and the wake: what woke was not checked.
                raise PassError(
                    "the floors changed while this call was being routed; nothing was read or"
                    " stored, try again"
                )
        yield session
    except SeveranceError as e:
        # NoFloorError's text names the floor to add; every refusal stores nothing.
        raise ToolError(str(e)) from None


def connection_of(ctx: Context) -> object:
    # The SDK builds a ServerSession per request; the client's initialize params live as long
    # as its connection (on the stateless 2026 protocol each request has its own, so there
    # every result carries the notices: more often than needed, never less).
    params = ctx.session.client_params
    return params if params is not None else ctx.session
