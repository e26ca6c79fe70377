"""Vector 8 for Severance: its HTTP API with a pass for scope A, and its MCP server over stdio
driven by the official MCP SDK client from scope A's workspace.

Both servers are real ``severance serve`` processes on the same store (``--http 127.0.0.1:0``;
``--mcp`` on stdio, started in A's workspace folder with A's workspace as its root, the way
Claude Code starts it: docs/servers.md). Every call a holder of A's credential can make with
B's ids, canaries and topics is made; answers for B's ids are compared with answers for ids
that exist nowhere (status, error type and text), and a request without a pass, with an empty
one and with a forged one is made too.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# One way to run a real server for the suite and the benchmarks: the suite's own helper
# (bench runs from the repository root, where ``tests`` is importable).
from tests.server_process import server_command, server_env, serving

from bench.isolation.base import BIG_K
from bench.isolation.plants import Plant
from bench.isolation.tally import Outcome, Tally, timing_oracle

__all__ = ["probe_servers"]

_START_TIMEOUT = 90.0
_MARKER = "overwritten-by-the-work-pass"
_RETRIES = 400
_RETRY_PAUSE = 0.05


@contextmanager
def _http_server(location: str, home: Path) -> Iterator[dict[str, str]]:
    """``severance serve`` with the HTTP API and MCP over streamable HTTP (pass required, as
    docs/servers.md says to run it when others share the machine); their URLs by name."""
    args = ("--http", "127.0.0.1:0", "--mcp-http", "127.0.0.1:0", "--mcp-require-pass")
    env = server_env(str(home))
    # As before, the benchmark records what the servers answer; the exit-code and traceback
    # checks are the suite's.
    with serving(
        location,
        *args,
        env=env,
        expect=2,
        timeout=_START_TIMEOUT,
        check_exit=False,
        check_output=False,
    ) as served:
        yield served.urls


def _http_outcome(r: Any) -> Outcome:
    return Outcome(str(r.status_code), r.text)


def _probe_http(
    adapter: Any, scope: str, victims: Sequence[Plant], tally: Tally, url: str, token: str
) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:

        def call(method: str, path: str, body: Any = None) -> tuple[str, Outcome]:
            r = http.request(method, path, json=body)
            # The pass's rate limit (50/s, burst 100) answers 429 to a fast prober; a
            # well-behaved client waits and asks again, and so do we (a 429 says nothing
            # about the id asked for, and must not stand in for the real answer).
            for _ in range(_RETRIES):
                if r.status_code != 429:
                    break
                time.sleep(_RETRY_PAUSE)
                r = http.request(method, path, json=body)
            shown = f"{method} {path}" + (f" {json.dumps(body)}" if body is not None else "")
            return f"{shown}  (Authorization: Bearer <{scope}'s pass>)", _http_outcome(r)

        for path in ("/v1/memories?limit=1000", "/v1/memories?limit=1000&order=oldest"):
            tally.read("servers", *call("GET", path))
        for path in ("/v1/audit", "/v1/notices", "/v1/pass"):
            tally.read("servers", *call("GET", path))
        for v in victims:
            for q in (v.canary, v.tag, v.topic):
                tally.read("servers", *call("POST", "/v1/recall", {"query": q, "k": BIG_K}))
            tally.read(
                "servers",
                *call("POST", "/v1/recall", {"query": v.topic, "k": BIG_K, "tags": [v.tag]}),
            )
        for v in victims:
            ident = adapter.ids[v.key]
            absent = adapter.absent_id()
            for method, suffix, body in (
                ("GET", "", None),
                ("GET", "/history", None),
                ("PATCH", "", {"text": f"{_MARKER} {v.topic}"}),
                ("DELETE", "", None),
            ):
                c1, theirs = call(method, f"/v1/memories/{ident}{suffix}", body)
                c2, nobodys = call(method, f"/v1/memories/{absent}{suffix}", body)
                tally.read("servers", c1, theirs)
                tally.oracle(
                    f"{c1}  vs  {c2}", v, theirs, nobodys, ids=[ident, absent], vector="servers"
                )
        if victims:
            _http_timing(http, adapter, victims[0], tally)
    # Without a (valid) pass -- the forgotten scope of an HTTP client: refused, never a
    # default persona.
    with httpx.Client(base_url=url, timeout=30) as anon:
        for shown, headers in (
            ("no Authorization header", {}),
            ("Authorization: Bearer (no token)", {"Authorization": "Bearer"}),
            ("Authorization: Bearer sev_forged", {"Authorization": "Bearer sev_forged0000"}),
        ):
            for path in ("/v1/memories?limit=1000", "/v1/audit"):
                r = anon.get(path, headers=headers)
                tally.read("forgotten", f"[HTTP API] GET {path}  ({shown})", _http_outcome(r))
            r = anon.post("/v1/recall", json={"query": "Saturday", "k": BIG_K}, headers=headers)
            shown_call = f'[HTTP API] POST /v1/recall {{"query": "Saturday", "k": {BIG_K}}}'
            tally.read("forgotten", f"{shown_call}  ({shown})", _http_outcome(r))
    tally.note(
        "servers",
        "HTTP API: `severance serve --http 127.0.0.1:0 --mcp-http 127.0.0.1:0 "
        f"--mcp-require-pass`, a pass for the floor of {scope!r} (`Passes.issue`)",
    )


def _http_timing(http: Any, adapter: Any, victim: Plant, tally: Tally) -> None:
    """The timing oracle over HTTP: GET of a victim's id against an absent id, interleaved;
    a rate-limited (429) answer is waited out and not timed."""
    theirs = f"/v1/memories/{adapter.ids[victim.key]}"
    nobodys = f"/v1/memories/{adapter.absent_id()}"

    def timed(path: str) -> float:
        for _ in range(_RETRIES):
            start = time.perf_counter()
            r = http.get(path)
            took = time.perf_counter() - start
            if r.status_code != 429:
                return took
            time.sleep(_RETRY_PAUSE)
        raise RuntimeError(f"GET {path} stayed rate-limited")

    for _ in range(5):  # warm-up
        timed(theirs)
        timed(nobodys)
    tv: list[float] = []
    ta: list[float] = []
    rng = random.Random(8)
    for _ in range(adapter.http_timing_pairs):
        first, second = (theirs, nobodys) if rng.random() < 0.5 else (nobodys, theirs)
        a, b = timed(first), timed(second)
        tv.append(a if first == theirs else b)
        ta.append(b if first == theirs else a)
    tally.timing(
        "GET /v1/memories/<id> (work's pass)",
        [victim],
        timing_oracle(tv, ta),
        vector="servers",
    )


def _tool_outcome(result: Any) -> Outcome:
    body = (
        json.dumps(result.structured_content)
        if result.structured_content is not None
        else " ".join(getattr(c, "text", "") for c in result.content)
    )
    return Outcome("tool-error" if result.is_error else "ok", body)


async def _mcp_probes(
    c: Any, where: str, adapter: Any, scope: str, victims: Sequence[Plant], tally: Tally
) -> list[str]:
    """Every MCP tool, as the client ``c`` (woken on ``scope``), against the victims."""
    tools = {t.name: t for t in (await c.list_tools()).tools}
    me = _tool_outcome(await c.call_tool("list_memories", {"limit": 100}))
    if f'"persona": "{scope}"' not in me.text:
        raise RuntimeError(f"MCP server did not wake {scope!r}: {me.text[:200]}")
    tally.read("servers", f"[{where}] list_memories(limit=100)", me)
    for v in victims:
        for q in (v.canary, v.tag, v.topic):
            args = {"query": q, "k": 50}
            out = _tool_outcome(await c.call_tool("recall", args))
            tally.read("servers", f"[{where}] recall({json.dumps(args)})", out)
    # Every tool taking a memory id, with B's ids and with ids that exist nowhere.
    by_id = [
        name
        for name, t in tools.items()
        if "memory_id" in (t.input_schema or {}).get("properties", {})
    ]
    for v in victims:
        ident, absent = adapter.ids[v.key], adapter.absent_id()
        for name in by_id:
            props = tools[name].input_schema.get("properties", {})
            extra = {"text": f"{_MARKER} {v.topic}"} if "text" in props else {}
            a1 = {"memory_id": ident, **extra}
            a2 = {"memory_id": absent, **extra}
            theirs = _tool_outcome(await c.call_tool(name, a1))
            nobodys = _tool_outcome(await c.call_tool(name, a2))
            c1 = f"[{where}] {name}({json.dumps(a1)})"
            tally.read("servers", c1, theirs)
            tally.oracle(
                f"{c1}  vs  {name}({json.dumps(a2)})",
                v,
                theirs,
                nobodys,
                ids=[ident, absent],
                vector="servers",
            )
    return sorted(tools)


def _roots(path: Path) -> Any:
    from mcp.types import ListRootsResult, Root

    async def roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=path.as_uri())])  # type: ignore[arg-type]

    return roots


async def _mcp_stdio(adapter: Any, scope: str, victims: Sequence[Plant], tally: Tally) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.types import Implementation

    workspace: Path = adapter.workspaces[scope]
    params = StdioServerParameters(
        command=sys.executable,
        args=server_command(adapter.location, "serve", "--mcp")[1:],
        env=server_env(str(adapter.workdir / "serverhome")),
        cwd=workspace,
    )
    where = f"MCP stdio, client 'claude-code', root {scope}'s workspace"
    async with Client(
        params,
        mode="legacy",
        client_info=Implementation(name="claude-code", version="1"),
        list_roots_callback=_roots(workspace),
    ) as c:
        tools = await _mcp_probes(c, where, adapter, scope, victims, tally)
    tally.note("servers", f"MCP over stdio, tools probed: {', '.join(tools)}")


async def _mcp_http(
    adapter: Any,
    scope: str,
    victims: Sequence[Plant],
    tally: Tally,
    url: str,
    token: str,
    decoy: str,
) -> None:
    """MCP over streamable HTTP with scope A's pass, from a client claiming to be in another
    scope's workspace: the pass, not the claim, must decide."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types import Implementation

    where = f"MCP over HTTP, {scope}'s pass, roots of {decoy}'s workspace"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport,
            mode="legacy",
            client_info=Implementation(name="claude-code", version="1"),
            list_roots_callback=_roots(adapter.workspaces[decoy]),
        ) as c:
            tools = await _mcp_probes(c, where, adapter, scope, victims, tally)
    tally.note("servers", f"MCP over streamable HTTP with a pass, tools probed: {', '.join(tools)}")
    # Without a pass, claiming the victim's workspace: refused (--mcp-require-pass).
    async with httpx2.AsyncClient(timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport,
            mode="legacy",
            client_info=Implementation(name="claude-code", version="1"),
            list_roots_callback=_roots(adapter.workspaces[decoy]),
        ) as c:
            for name, args in (("list_memories", {"limit": 100}), ("recall", {"query": "a"})):
                out = _tool_outcome(await c.call_tool(name, args))
                shown = f"[MCP over HTTP, no pass, roots of {decoy}'s workspace] {name}"
                tally.read("forgotten", f"{shown}({json.dumps(args)})", out)


async def _mcp_forgotten(adapter: Any, tally: Tally) -> None:
    """The MCP server started outside every workspace, by a client that names nothing."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=server_command(adapter.location, "serve", "--mcp")[1:],
        env=server_env(str(adapter.workdir / "serverhome")),
        cwd=adapter.workdir,
    )
    async with Client(params, mode="legacy") as c:
        for name, args in (("list_memories", {"limit": 100}), ("recall", {"query": "a", "k": 50})):
            out = _tool_outcome(await c.call_tool(name, args))
            where = "MCP stdio, no client name, no roots, cwd outside every floor"
            tally.read("forgotten", f"[{where}] {name}({json.dumps(args)})", out)


def probe_servers(adapter: Any, scope: str, victims: Sequence[Plant], tally: Tally) -> None:
    """Vector 8 (and the servers' part of vector 5) for Severance."""
    import anyio

    from bench.isolation.severance_api import FLOORS
    from severance.passes import Passes

    token = Passes(adapter.store).issue(FLOORS[scope], label="isolation bench").token
    decoy = next(v.scope for v in victims) if victims else scope
    with _http_server(adapter.location, adapter.workdir / "serverhome") as urls:
        _probe_http(adapter, scope, victims, tally, urls["HTTP API"], token)
        anyio.run(_mcp_http, adapter, scope, victims, tally, urls["MCP server"], token, decoy)
    anyio.run(_stdio_both, adapter, scope, victims, tally)


async def _stdio_both(adapter: Any, scope: str, victims: Sequence[Plant], tally: Tally) -> None:
    # Two independent server processes: started side by side, they start in half the time.
    import anyio

    async with anyio.create_task_group() as tg:
        tg.start_soon(_mcp_stdio, adapter, scope, victims, tally)
        tg.start_soon(_mcp_forgotten, adapter, tally)
