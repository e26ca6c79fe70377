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

This module builds the server (:func:`create_mcp_server`); :mod:`severance.mcp_routing` decides
where a call comes from and which persona it wakes, :mod:`severance.mcp_tools` holds the tools,
prompts and resource, and :mod:`severance.mcp_results` their structured results. (Inside this
package ``mcp`` still names the SDK: imports are absolute.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .awake import AwakeSessions
from .mcp_routing import SeveranceMCP, Where, file_uri_to_path
from .mcp_tools import TOOLS, recent_memories, remember_this, what_do_you_remember
from .store import Store

__all__ = ["SeveranceMCP", "Where", "create_mcp_server", "file_uri_to_path"]


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
    for fn, title, hints in TOOLS:
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
