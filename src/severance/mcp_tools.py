"""The MCP tools, prompts and the recent-memories resource.

Each tool answers with structured content (its output schema, :mod:`severance.mcp_results`)
and a compact text block for the model to read (one line a memory, not pretty-printed JSON).
Tool functions are synchronous: the SDK runs them in worker threads, and the awake sessions
they share (:class:`~severance.awake.AwakeSessions`) are safe to use from several at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import CallToolResult, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from . import validate
from .clients import family_of
from .errors import SeveranceError
from .mcp_results import (
    Forgotten,
    Got,
    Listed,
    MemoryItem,
    NoticeItem,
    Notices,
    Recalled,
    RecallItem,
    Remembered,
    Status,
)
from .mcp_routing import Here, ask_roots, awake, connection_of, server_of, where_of
from .model import Memory
from .session import Session

__all__ = [
    "TOOLS",
    "forget",
    "get_memory",
    "list_memories",
    "notices",
    "recall",
    "recent_memories",
    "remember",
    "remember_this",
    "status",
    "update_memory",
    "what_do_you_remember",
]


def _answer(ctx: Context, session: Session) -> dict[str, Any]:
    """What every result carries: the persona, its floor and, first time, its notices."""
    notices = server_of(ctx).first_notices(connection_of(ctx), session)
    return {
        "persona": session.persona,
        "floor": session.floor,
        "notices": [NoticeItem.of(session.persona, n) for n in notices] if notices else None,
    }


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
    with awake(ctx, where, write=True) as session:
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
    with awake(ctx, where) as session:
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
    with awake(ctx, where, write=True) as session:
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
    with awake(ctx, where) as session:
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
    with awake(ctx, where) as session:
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
    with awake(ctx, where, write=True) as session:
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
    if ask_roots(ctx) is not None:
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
        with awake(ctx, where_of(ctx, roots)) as session:
            page = session.memories(limit=max(1, min(int(limit), 100)))
            lines = [_line(m) for m in page.items]
            return f"{session.persona}: {page.total} memories, newest first\n" + "\n".join(lines)
    except ToolError as e:
        raise ResourceError(str(e)) from None


def status(ctx: Context, where: Here) -> Status:
    """Which of the user's personas this conversation reads and writes, and why.

    Use when the user asks where their memories go, or before storing something sensitive.
    """
    with awake(ctx, where) as session:
        try:
            why = where.reasons(server_of(ctx).sessions.store)
        except SeveranceError as e:
            raise ToolError(str(e)) from None
        server_of(ctx).first_notices(connection_of(ctx), session)
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
    with awake(ctx, where) as session:
        server_of(ctx).first_notices(connection_of(ctx), session)
        return Notices(
            persona=session.persona,
            notices=[NoticeItem.of(session.persona, n) for n in session.notices()],
        )


TOOLS: tuple[tuple[Callable[..., BaseModel], str, ToolAnnotations], ...] = (
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
