"""The MCP server: memory tools for assistants, with the persona chosen by where they run.

Tools — ``remember``, ``recall``, ``get_memory``, ``update_memory``, ``forget``,
``list_memories`` — over the official MCP Python SDK (``mcp``;
:class:`~mcp.server.mcpserver.MCPServer`). None of them takes a persona: each call
resolves a floor from what the client says about itself, exactly as
``store.enter(client=..., paths=[...])`` would:

- ``client`` is the client's name (``clientInfo.name`` from ``initialize``, or from the request
  envelope on newer protocol revisions), e.g. ``claude-code`` or ``claude-ai``;
- ``paths`` are the client's workspace roots (``roots/list``; ``file://`` URIs become paths),
  asked for on every call, so a client that changes folders changes floors;
- ``host`` is this machine's name.

So Claude Code opened in ``~/work/acme`` wakes ``work`` and Claude Desktop at home wakes
``home`` (client names are matched by family, :mod:`severance.clients`). ``pin_floor``
(``severance serve --mcp --floor NAME``) ignores all that and always enters one floor;
``allowed_floors`` refuses any context that resolves to a floor outside the set. Over HTTP a
client presents a pass (``Authorization: Bearer``), which pins its floor; ``require_pass``
(the default of ``serve --mcp-http``) refuses calls without one. When nothing matches (and
there is no default floor, or the store is strict) the tools answer with an error that says
which floor to add, and store nothing.

Every result names the persona (and floor) it came from; the first result of a connection
for a persona also carries that persona's *notices* (overrides, reintegrations since it last
woke). Two more tools: ``status`` (which persona is awake here and why, with the notices) and
``notices``.

Each tool answers with structured content (its output schema) and a compact text block for
the model to read (one line a memory, not pretty-printed JSON). Two prompts ("what do you
remember about …", "remember this") and a resource template, ``memory://recent{?limit}``
(the persona's newest memories), round it off.

Tool functions are synchronous: the SDK runs them in worker threads, and the awake sessions
they share (:class:`~severance.awake.AwakeSessions`) are safe to use from several at once.
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, cast
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from mcp.server.mcpserver import Context, ListRoots, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import CallToolResult, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from . import __version__, floors, validate
from .awake import AwakeSessions
from .clients import family_of
from .errors import FloorNotFoundError, SeveranceError
from .model import Memory, Notice
from .notice_text import describe as describe_notice
from .passes import PassError, Passes, ReadOnlyPassError
from .session import Session
from .store import Store
from .workspace import logical_cwd

__all__ = ["SeveranceMCP", "Where", "create_mcp_server", "file_uri_to_path"]

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


def _server(ctx: Context) -> SeveranceMCP:
    return cast(SeveranceMCP, ctx.mcp_server)


def _bearer(ctx: Context) -> str | None:
    headers = ctx.headers
    value = headers.get("authorization") if headers is not None else None
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _ask_roots(ctx: Context) -> ListRoots | None:
    """Ask the client for its roots, unless the floor is already fixed or it has none."""
    server = _server(ctx)
    has_pass = _bearer(ctx) is not None
    if server.pin_floor is not None or (server.require_pass and not has_pass):
        return None
    if has_pass and server.pass_routing == "pin":
        return None
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    return ListRoots()


def _where(ctx: Context, roots: Annotated[ListRootsResult | None, Resolve(_ask_roots)]) -> Where:
    server = _server(ctx)
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
    if not paths and _server(ctx).cwd_fallback:
        # A stdio server is started in the client's working directory by most clients
        # (Claude Code among them), which is the best workspace guess when there are no roots.
        paths.append(logical_cwd())
    return client, tuple(paths)


Here = Annotated[Where, Resolve(_where)]


@contextmanager
def _awake(ctx: Context, where: Where, *, write: bool = False) -> Iterator[Session]:
    """The session for this call, with Severance errors turned into tool errors."""
    server = _server(ctx)
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


def _connection(ctx: Context) -> object:
    # The SDK builds a ServerSession per request; the client's initialize params live as long
    # as its connection (on the stateless 2026 protocol each request has its own, so there
    # every result carries the notices: more often than needed, never less).
    params = ctx.session.client_params
    return params if params is not None else ctx.session


def _answer(ctx: Context, session: Session) -> dict[str, Any]:
    """What every result carries: the persona, its floor and, first time, its notices."""
    notices = _server(ctx).first_notices(_connection(ctx), session)
    return {
        "persona": session.persona,
        "floor": session.floor,
        "notices": [NoticeItem.of(session.persona, n) for n in notices] if notices else None,
    }


# -- results ---------------------------------------------------------------------------------
class NoticeItem(BaseModel):
    at: str = Field(description="When it happened (ISO-8601).")
    event: str = Field(description="override, reintegrated_into or reintegrated_from.")
    text: str = Field(description="What happened, in words to pass on to the user.")

    @classmethod
    def of(cls, persona: str, n: Notice) -> NoticeItem:
        return cls(at=n.at.isoformat(), event=n.event, text=describe_notice(persona, n))


class PersonaResult(BaseModel):
    persona: str = Field(description="The persona this call read or wrote.")
    floor: str | None = Field(default=None, description="The floor that woke it.")
    notices: list[NoticeItem] | None = Field(
        default=None,
        description="Only on the first result for this persona: what happened to it while it"
        " slept (overrides, reintegrations). Tell the user.",
    )


class MemoryItem(BaseModel):
    id: str
    text: str
    kind: str
    tags: list[str]
    occurred_at: str = Field(description="When it happened (ISO-8601).")

    @classmethod
    def of(cls, m: Memory) -> MemoryItem:
        return cls(
            id=m.id,
            text=m.text,
            kind=m.kind,
            tags=list(m.tags),
            occurred_at=m.occurred_at.isoformat(),
        )


class Remembered(PersonaResult):
    memory: MemoryItem
    duplicate: bool = Field(
        default=False, description="True if the persona already held it: nothing was stored."
    )


class Got(PersonaResult):
    memory: MemoryItem
    metadata: dict[str, Any]
    version: int = Field(description="Counts updates from 1.")
    source: str | None = Field(description="Where the memory came from (e.g. mcp:claude-code).")


class RecallItem(MemoryItem):
    score: float = Field(description="Higher is more relevant (fused dense + keyword rank).")


class Recalled(PersonaResult):
    results: list[RecallItem]


class Forgotten(PersonaResult):
    forgotten: str = Field(description="The id of the memory that was deleted.")


class Listed(PersonaResult):
    items: list[MemoryItem]
    total: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null at end.")


# -- tools -----------------------------------------------------------------------------------
TextArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=validate.MAX_TEXT_CHARS,
        description="The memory: one self-contained statement, e.g. 'Prefers tea over coffee'.",
    ),
]
KindArg = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="fact, preference, episode (something that happened) or note.",
    ),
]
TagsArg = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=validate.MAX_TAG_CHARS)]] | None,
    Field(max_length=validate.MAX_TAGS, description="Short labels, e.g. ['project-x']."),
]


def _line(m: Memory, score: float | None = None) -> str:
    tags = f" #{' #'.join(m.tags)}" if m.tags else ""
    scored = f" ({score:.3f})" if score is not None else ""
    return f"{m.id} [{m.kind} {m.occurred_at:%Y-%m-%d}]{tags} {m.text}{scored}"


def _result(model: BaseModel, text: str) -> CallToolResult:
    """Structured content for programs, and compact text for the model to read.

    Notices lead the text too: a model may read only the text, and they are for the user.
    """
    notices = getattr(model, "notices", None) or ()
    if notices:
        text = "\n".join(f"Notice: {n.text}" for n in notices) + "\n" + text
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
    )


def _source(ctx: Context) -> str:
    """``mcp:<client name>`` (the name the client gave in ``initialize``), else ``mcp``."""
    params = ctx.session.client_params
    name = params.client_info.name if params is not None else None
    return f"mcp:{name}"[: validate.MAX_SOURCE_CHARS] if name else "mcp"


def remember(
    text: TextArg,
    ctx: Context,
    where: Here,
    kind: KindArg = "note",
    tags: TagsArg = None,
    occurred_at: Annotated[
        str | None,
        Field(description="When it happened, ISO-8601 (default: now)."),
    ] = None,
) -> Annotated[CallToolResult, Remembered]:
    """Store one memory in the user's current persona, for later conversations.

    Call it when the user tells you a durable fact, preference, decision or event worth
    recalling in a later conversation, or asks you to remember something. Keep each memory to
    one self-contained statement; do not store secrets or passwords. If the fact replaces one
    already stored, call `update_memory` instead. Remembering what is already stored returns
    the stored memory (`duplicate: true`) and stores nothing.
    """
    with _awake(ctx, where, write=True) as session:
        memory = session.remember(
            text, kind=kind, tags=tags or (), occurred_at=occurred_at, source=_source(ctx)
        )
        done = "Already remembered" if memory.duplicate else "Remembered"
        return _result(
            Remembered(
                **_answer(ctx, session), memory=MemoryItem.of(memory), duplicate=memory.duplicate
            ),
            f"{done} in {session.persona}: {_line(memory)}",
        )


def recall(
    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=validate.MAX_QUERY_CHARS,
            description="What to look for, in natural language or keywords.",
        ),
    ],
    ctx: Context,
    where: Here,
    k: Annotated[int, Field(ge=1, le=50, description="How many results (default 5).")] = 5,
    kind: Annotated[KindArg | None, Field(description="Only memories of this kind.")] = None,
    tags: Annotated[TagsArg, Field(description="Only memories carrying all these tags.")] = None,
    since: Annotated[
        str | None, Field(description="Only memories that occurred at or after (ISO-8601).")
    ] = None,
    until: Annotated[
        str | None, Field(description="Only memories that occurred before (ISO-8601).")
    ] = None,
    min_relevance: Annotated[
        float,
        Field(
            ge=0.0,
            le=1.0,
            description="Drop results sharing no word with the query whose meaning is less "
            "similar than this (default 0.3; 0 keeps every best guess).",
        ),
    ] = 0.3,
) -> Annotated[CallToolResult, Recalled]:
    """Search the user's memories in the current persona, best matches first.

    Call this before answering anything that may depend on what the user said in earlier
    conversations (their projects, people, preferences, plans), and when they ask what you
    remember. An empty result means nothing relevant is stored: say so rather than guess.
    """
    with _awake(ctx, where) as session:
        results = session.recall(
            query,
            k,
            kind=kind,
            tags=tags,
            since=since,
            until=until,
            min_similarity=min_relevance or None,
        )
        items = [RecallItem(**MemoryItem.of(r.memory).model_dump(), score=r.score) for r in results]
        lines = [_line(r.memory, r.score) for r in results]
        text = (
            f"{session.persona}: {len(lines)} memories\n" + "\n".join(lines)
            if lines
            else f"{session.persona} remembers nothing relevant to that."
        )
        return _result(Recalled(**_answer(ctx, session), results=items), text)


def forget(
    memory_id: Annotated[
        str,
        Field(min_length=1, max_length=128, description="The id of the memory (from recall)."),
    ],
    ctx: Context,
    where: Here,
) -> Annotated[CallToolResult, Forgotten]:
    """Delete one memory for good (with its history). Only when the user asks to forget it."""
    with _awake(ctx, where, write=True) as session:
        session.forget(memory_id)
        return _result(
            Forgotten(**_answer(ctx, session), forgotten=memory_id),
            f"Forgot {memory_id} in {session.persona}.",
        )


def list_memories(
    ctx: Context,
    where: Here,
    limit: Annotated[int, Field(ge=1, le=100, description="Page size (default 20).")] = 20,
    offset: Annotated[int, Field(ge=0, le=2**31 - 1, description="Where to start.")] = 0,
    order: Annotated[
        Literal["newest", "oldest"], Field(description="Newest (default) or oldest first.")
    ] = "newest",
) -> Annotated[CallToolResult, Listed]:
    """List the memories of the current persona, a page at a time (newest first by default).

    Call it when the user wants to see or review what is stored; to answer a question, use
    `recall`, which ranks by relevance.
    """
    with _awake(ctx, where) as session:
        page = session.memories(limit=limit, offset=offset, newest_first=order == "newest")
        more = f" (more: offset {page.next_offset})" if page.next_offset is not None else ""
        lines = [_line(m) for m in page.items]
        return _result(
            Listed(
                **_answer(ctx, session),
                items=[MemoryItem.of(m) for m in page.items],
                total=page.total,
                next_offset=page.next_offset,
            ),
            f"{session.persona}: {page.total} memories{more}\n" + "\n".join(lines),
        )


MemoryIdArg = Annotated[
    str,
    Field(min_length=1, max_length=128, description="The id of the memory (from recall or list)."),
]


def get_memory(memory_id: MemoryIdArg, ctx: Context, where: Here) -> Annotated[CallToolResult, Got]:
    """Read one memory in full (its metadata, version and source) by id.

    Call it when a recall result needs its details, or before updating a memory.
    """
    with _awake(ctx, where) as session:
        m = session.get(memory_id)
        got = Got(
            **_answer(ctx, session),
            memory=MemoryItem.of(m),
            metadata=m.metadata,
            version=m.version,
            source=m.source,
        )
        return _result(got, f"{_line(m)}\n(version {m.version}, source {m.source or '-'})")


def update_memory(
    memory_id: MemoryIdArg,
    ctx: Context,
    where: Here,
    text: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=validate.MAX_TEXT_CHARS,
            description="The corrected statement (default: unchanged).",
        ),
    ] = None,
    kind: Annotated[KindArg | None, Field(description="A new kind (default: unchanged).")] = None,
    tags: Annotated[TagsArg, Field(description="Replace the tags (default: unchanged).")] = None,
    occurred_at: Annotated[
        str | None, Field(description="When it happened, ISO-8601 (default: unchanged).")
    ] = None,
) -> Annotated[CallToolResult, Remembered]:
    """Correct a stored memory; the previous version is kept in its history.

    Call it when the user corrects something already remembered or a fact has changed (a
    meeting moved, a preference changed), instead of remembering a contradicting statement.
    Find the memory's id with `recall` first.
    """
    with _awake(ctx, where, write=True) as session:
        m = session.update(memory_id, text, kind=kind, tags=tags, occurred_at=occurred_at)
        return _result(
            Remembered(**_answer(ctx, session), memory=MemoryItem.of(m)),
            f"Updated in {session.persona} (version {m.version}): {_line(m)}",
        )


# -- prompts and the recent-memories resource ------------------------------------------------
def what_do_you_remember(
    topic: Annotated[str, Field(min_length=1, max_length=500, description="A person, project…")],
) -> str:
    """Ask the assistant what it remembers about a topic."""
    return (
        f"What do you remember about {topic}? Search my memories with the `recall` tool "
        "(try a few phrasings), then tell me what you found, with when each thing happened. "
        "If nothing relevant comes back, say that you don't remember anything about it."
    )


def remember_this(
    fact: Annotated[str, Field(min_length=1, max_length=validate.MAX_TEXT_CHARS)],
) -> str:
    """Ask the assistant to remember something."""
    return (
        f"Please remember this: {fact}\n\nStore it with the `remember` tool as one or more "
        "short, self-contained statements (a fact, preference or decision each). If it changes "
        "something you already remember, find that memory with `recall` and use "
        "`update_memory` instead."
    )


async def recent_memories(ctx: Context, limit: int = 20) -> str:
    """The current persona's newest memories, one a line."""
    roots: ListRootsResult | None = None
    if _ask_roots(ctx) is not None:
        # Resources get no resolver injection, so ask for the roots the tools are given. The
        # SDK flags roots/list as deprecated from the 2026 protocol on; until the floor is
        # resolved some other way, the roots are what decide it, as they do for the tools.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            try:
                roots = await ctx.session.list_roots()
            except MCPError:
                roots = None  # a client that declared roots but cannot answer: none, then
    try:
        with _awake(ctx, _where(ctx, roots)) as session:
            page = session.memories(limit=max(1, min(int(limit), 100)))
            lines = [_line(m) for m in page.items]
            return f"{session.persona}: {page.total} memories, newest first\n" + "\n".join(lines)
    except ToolError as e:
        raise ResourceError(str(e)) from None


class Status(BaseModel):
    persona: str = Field(description="The persona awake for this client, here and now.")
    floor: str | None = Field(description="The floor that woke it.")
    why: list[str] = Field(description="Why that floor: the conditions that matched.")
    client: str | None = Field(description="Your client name, as you sent it.")
    client_family: str | None = Field(description="The client family it belongs to, if known.")
    workspace: list[str] = Field(description="The workspace paths the floor was chosen by.")
    notices: list[NoticeItem] = Field(
        description="Overrides and reintegrations of this persona since it last woke."
    )


class Notices(BaseModel):
    persona: str
    notices: list[NoticeItem]


def status(ctx: Context, where: Here) -> Status:
    """Which of the user's personas this conversation reads and writes, and why.

    Use when the user asks where their memories go, or before storing something sensitive.
    """
    with _awake(ctx, where) as session:
        try:
            why = where.reasons(_server(ctx).sessions.store)
        except SeveranceError as e:
            raise ToolError(str(e)) from None
        _server(ctx).first_notices(_connection(ctx), session)
        return Status(
            persona=session.persona,
            floor=session.floor,
            why=why,
            client=where.client,
            client_family=family_of(where.client),
            workspace=list(where.paths),
            notices=[NoticeItem.of(session.persona, n) for n in session.notices()],
        )


def notices(ctx: Context, where: Here) -> Notices:
    """What happened to the current persona while it slept: overrides (someone woke it
    outside its floor) and reintegrations (memories copied or moved in or out). Tell the user."""
    with _awake(ctx, where) as session:
        _server(ctx).first_notices(_connection(ctx), session)
        return Notices(
            persona=session.persona,
            notices=[NoticeItem.of(session.persona, n) for n in session.notices()],
        )


_TOOLS: tuple[tuple[Callable[..., BaseModel], str, ToolAnnotations], ...] = (
    (
        remember,
        "Remember",
        ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    ),
    (recall, "Recall", ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    (
        forget,
        "Forget",
        ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    ),
    (list_memories, "List memories", ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    (get_memory, "Get a memory", ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    (
        update_memory,
        "Update a memory",
        ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    ),
    (status, "Status", ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    (notices, "Notices", ToolAnnotations(read_only_hint=True, open_world_hint=False)),
)


def create_mcp_server(
    store: Store,
    *,
    floor: str | None = None,
    cwd_fallback: bool = False,
    require_pass: bool = False,
    sessions: AwakeSessions | None = None,
    allowed_floors: Iterable[str] | None = None,
    pass_routing: Literal["pin", "restrict"] = "pin",
) -> SeveranceMCP:
    """The MCP server for ``store``.

    ``floor`` pins every call to one floor. ``cwd_fallback`` uses the server's working
    directory as the workspace when the client gives no roots (right for stdio, where the
    client starts the server in its project). ``require_pass`` refuses calls without a pass
    (HTTP; ``serve --mcp-http`` sets it unless told otherwise). ``sessions`` shares awake
    sessions with an HTTP API in the same process. ``allowed_floors`` restricts the floors a
    client's context may wake (a pass still pins its own floor). ``pass_routing`` says what a
    pass does: ``"pin"`` (its floor, whatever the client claims) or ``"restrict"`` (the
    client's name and workspace choose, but only among floors that wake the pass's persona).
    ``floor`` must exist.
    """
    if floor is not None:
        store.resolve(floor=floor)  # FloorNotFoundError now, not on every call
    server = SeveranceMCP(
        sessions if sessions is not None else AwakeSessions(store),
        pin_floor=floor,
        cwd_fallback=cwd_fallback,
        require_pass=require_pass,
        allowed_floors=allowed_floors,
        pass_routing=pass_routing,
    )
    for fn, title, hints in _TOOLS:
        server.add_tool(fn, title=title, annotations=hints, structured_output=True)
    server.prompt(name="what_do_you_remember", title="What do you remember about…")(
        what_do_you_remember
    )
    server.prompt(name="remember_this", title="Remember this")(remember_this)
    server.resource(
        "memory://recent{?limit}",
        name="recent_memories",
        title="Recent memories",
        description="The current persona's newest memories (limit: 1-100, default 20).",
        mime_type="text/plain",
    )(recent_memories)
    return server
