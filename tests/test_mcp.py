"""The MCP server, driven by the SDK's own client: in-process (both protocol eras), over stdio
and over streamable HTTP against a real ``severance serve`` subprocess.

The floor comes from what the client says about itself — its name and its workspace roots —
so two clients with different roots land on different personas and never see each other's
memories; a client that matches no floor is told so and nothing is stored.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, ListRootsResult, Root

import severance
from server_process import server_env, serving
from severance.mcp import create_mcp_server, file_uri_to_path
from severance.passes import Passes

MODES = ["legacy", "auto"]  # initialize handshake (2025-11-25) and the stateless 2026 envelope


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    dirs = {
        "work": tmp_path / "work" / "acme",
        "home": tmp_path / "home docs" / "taxes",
        "elsewhere": tmp_path / "scratch",
    }
    for d in dirs.values():
        d.mkdir(parents=True)
    return dirs


@pytest.fixture
def mstore(store_location: str, workspace: dict[str, Path]) -> Iterator[severance.Store]:
    """work by workspace path, home by client name (Claude Desktop), side by name only."""
    s = severance.Store.init(store_location)
    for persona in ("work", "home", "side"):
        s.add_persona(persona)
    s.add_floor("office", persona="work", paths=[str(workspace["work"].parent) + "/**"])
    s.add_floor("house", persona="home", clients=["claude-ai", "claude-desktop"])
    s.add_floor("studio", persona="side")
    yield s
    s.close()


def roots_of(*paths: Path | str) -> Callable[[Any], Awaitable[ListRootsResult]]:
    async def list_roots(_ctx: Any) -> ListRootsResult:
        uris = [p if isinstance(p, str) else p.as_uri() for p in paths]
        return ListRootsResult(roots=[Root(uri=u) for u in uris])  # type: ignore[arg-type]

    return list_roots


def client(
    server: Any, name: str = "claude-code", roots: Any = None, mode: str = "legacy"
) -> Client:
    return Client(
        server,
        mode=mode,
        client_info=Implementation(name=name, version="1.0"),
        list_roots_callback=roots,
    )


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(getattr(c, "text", "") for c in result.content)


def counts(store: severance.Store) -> dict[str, int]:
    out = {}
    for floor, persona in (("office", "work"), ("house", "home"), ("studio", "side")):
        with store.enter(floor=floor) as s:
            out[persona] = s.count()
    return out


# -- tools and their schemas ---------------------------------------------------------------------
@pytest.mark.anyio
async def test_tools_are_described_for_an_assistant(mstore: severance.Store) -> None:
    async with client(create_mcp_server(mstore)) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == {
        "remember",
        "recall",
        "forget",
        "list_memories",
        "get_memory",
        "update_memory",
        "status",
        "notices",
    }
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40
        props = tool.input_schema["properties"]
        assert all(p.get("description") for p in props.values()), tool.name
        # Nothing in any tool can name a persona, a floor or a store.
        assert not {n for n in props if any(w in n for w in ("persona", "floor", "store"))}
        assert tool.output_schema is not None
    assert tools["remember"].input_schema["required"] == ["text"]
    assert tools["recall"].input_schema["required"] == ["query"]
    assert tools["forget"].input_schema["required"] == ["memory_id"]
    assert "required" not in tools["list_memories"].input_schema
    assert tools["recall"].annotations.read_only_hint
    assert tools["forget"].annotations.destructive_hint


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_every_tool_by_workspace_roots(
    mstore: severance.Store, workspace: dict[str, Path], mode: str
) -> None:
    server = create_mcp_server(mstore)
    async with client(server, "claude-code", roots_of(workspace["work"]), mode) as c:
        first = data(
            await c.call_tool(
                "remember",
                {
                    "text": "The Q3 launch moved to October 12",
                    "kind": "fact",
                    "tags": ["q3"],
                    "occurred_at": "2024-06-01T10:00:00Z",
                },
            )
        )
        assert first["persona"] == "work"
        assert first["memory"]["tags"] == ["q3"] and first["memory"]["kind"] == "fact"
        data(await c.call_tool("remember", {"text": "Standup is at 9:30 in room 4B"}))
        found = data(await c.call_tool("recall", {"query": "when is the launch?", "k": 2}))
        assert found["persona"] == "work"
        assert found["results"][0]["id"] == first["memory"]["id"]
        assert found["results"][0]["score"] > 0
        filtered = data(await c.call_tool("recall", {"query": "launch", "kind": "fact"}))
        assert [r["id"] for r in filtered["results"]] == [first["memory"]["id"]]
        listed = data(await c.call_tool("list_memories", {"limit": 1}))
        assert (listed["total"], len(listed["items"]), listed["next_offset"]) == (2, 1, 1)
        rest = data(
            await c.call_tool("list_memories", {"limit": 1, "offset": 1, "order": "oldest"})
        )
        assert rest["next_offset"] is None
        gone = data(await c.call_tool("forget", {"memory_id": first["memory"]["id"]}))
        assert gone == {
            "persona": "work",
            "floor": "office",
            "notices": None,
            "forgotten": first["memory"]["id"],
        }
        again = await c.call_tool("forget", {"memory_id": first["memory"]["id"]})
        assert "no memory with id" in error_text(again)
    assert counts(mstore) == {"work": 1, "home": 0, "side": 0}
    with mstore.enter(floor="office") as s:
        assert s.memories().items[0].source == "mcp:claude-code"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_client_name_and_roots_pick_different_personas_that_never_meet(
    mstore: severance.Store, workspace: dict[str, Path], mode: str
) -> None:
    server = create_mcp_server(mstore)
    at_work = client(server, "claude-code", roots_of(workspace["work"]), mode)
    at_home = client(server, "claude-ai", None, mode)
    async with at_work as w, at_home as h:
        work_ids = [
            data(await w.call_tool("remember", {"text": f"Acme budget line {i}"}))["memory"]["id"]
            for i in range(3)
        ]
        home_ids = [
            data(await h.call_tool("remember", {"text": f"Dentist appointment {i}"}))["memory"][
                "id"
            ]
            for i in range(2)
        ]
        assert data(await h.call_tool("list_memories", {}))["persona"] == "home"
        for c, mine, theirs, words in [
            (w, work_ids, home_ids, "dentist appointment"),
            (h, home_ids, work_ids, "acme budget line"),
        ]:
            for query in (words, "appointment budget acme dentist"):
                found = data(await c.call_tool("recall", {"query": query, "k": 50}))
                assert {r["id"] for r in found["results"]} <= set(mine)
            listed = data(await c.call_tool("list_memories", {"limit": 100}))
            assert {m["id"] for m in listed["items"]} == set(mine)
            for memory_id in theirs:
                result = await c.call_tool("forget", {"memory_id": memory_id})
                assert error_text(result).endswith(f"no memory with id {memory_id!r}")
    assert counts(mstore) == {"work": 3, "home": 2, "side": 0}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_no_matching_floor_stores_nothing_and_says_so(
    mstore: severance.Store, workspace: dict[str, Path], mode: str
) -> None:
    server = create_mcp_server(mstore)
    async with client(server, "cursor", roots_of(workspace["elsewhere"]), mode) as c:
        for tool, args in [
            ("remember", {"text": "should not be stored"}),
            ("recall", {"query": "anything"}),
            ("list_memories", {}),
            ("forget", {"memory_id": "m_x"}),
        ]:
            text = error_text(await c.call_tool(tool, args))
            assert "no floor matches" in text and "nothing was read or stored" in text
            assert "severance floor add" in text  # says which floor to add
            assert "cursor" in text and str(workspace["elsewhere"]) in text
            # It never names the personas or floors that do exist.
            assert not any(w in text for w in ("work", "home", "side", "office", "house"))
    assert counts(mstore) == {"work": 0, "home": 0, "side": 0}


@pytest.mark.anyio
async def test_a_pinned_floor_ignores_the_clients_context(
    mstore: severance.Store, workspace: dict[str, Path]
) -> None:
    server = create_mcp_server(mstore, floor="studio")
    async with client(server, "claude-ai", roots_of(workspace["work"])) as c:
        assert data(await c.call_tool("remember", {"text": "glaze order"}))["persona"] == "side"
    assert counts(mstore) == {"work": 0, "home": 0, "side": 1}


@pytest.mark.anyio
async def test_root_uris_are_decoded(mstore: severance.Store, workspace: dict[str, Path]) -> None:
    mstore.add_floor("taxes", persona="home", paths=[str(workspace["home"])])
    server = create_mcp_server(mstore)
    roots = roots_of(workspace["home"])  # "home docs/taxes" travels as home%20docs/taxes
    assert "%20" in workspace["home"].as_uri()
    async with client(server, "vim", roots) as c:
        assert data(await c.call_tool("list_memories", {}))["persona"] == "home"


@pytest.mark.anyio
async def test_bad_arguments_are_tool_errors_and_change_nothing(mstore: severance.Store) -> None:
    server = create_mcp_server(mstore, floor="office")
    async with client(server) as c:
        for tool, args in [
            ("remember", {}),
            ("remember", {"text": ""}),
            ("remember", {"text": "   "}),
            ("remember", {"text": "x", "kind": "Not A Kind"}),
            ("remember", {"text": "x", "tags": ["t"] * 40}),
            ("remember", {"text": "x", "occurred_at": "whenever"}),
            ("recall", {"query": ""}),
            ("recall", {"query": "x", "k": 0}),
            ("list_memories", {"limit": 0}),
            ("forget", {"memory_id": ""}),
        ]:
            result = await c.call_tool(tool, args)
            assert result.is_error, (tool, args)
            assert "Traceback" not in error_text(result)
    assert counts(mstore)["work"] == 0


def test_file_uri_to_path() -> None:
    assert file_uri_to_path("file:///home/u/work/acme") == "/home/u/work/acme"
    assert file_uri_to_path("file:///home/u/my%20docs") == "/home/u/my docs"
    assert file_uri_to_path("file://localhost/srv/x") == "/srv/x"
    assert file_uri_to_path("https://example.com/x") is None
    assert file_uri_to_path("untitled:Untitled-1") is None


# -- real servers: stdio and streamable HTTP -------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("mcp-served")
    work_dir, home_dir = root / "work" / "acme", root / "home"
    work_dir.mkdir(parents=True)
    home_dir.mkdir()
    location = str(root / "store")
    with severance.Store.init(location, key_file=root / "master.key") as s:
        s.add_persona("work")
        s.add_persona("home")
        s.add_floor("office", persona="work", paths=[str(root / "work") + "/**"])
        s.add_floor("house", persona="home", paths=[str(home_dir)])
        s.add_floor("desktop", persona="home", clients=["claude-ai"])
    yield {
        "location": location,
        "env": server_env(str(root / "userhome")),
        "work": work_dir,
        "home": home_dir,
    }


@pytest.fixture(scope="module")
def mcp_http(served: dict[str, Any]) -> Iterator[str]:
    # Context-routed calls over HTTP need the loud single-user opt-out (a pass is the default).
    with serving(
        served["location"],
        "--mcp-http",
        "127.0.0.1:0",
        "--mcp-http-no-pass-single-user",
        env=served["env"],
    ) as s:
        assert s.mcp.startswith("http://127.0.0.1:") and s.mcp.endswith("/mcp")
        assert any("WARNING: MCP over HTTP without passes" in line for line in s.stderr)
        yield s.mcp


@asynccontextmanager
async def over_http(
    url: str, name: str, roots: Any, mode: str, token: str | None = None
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport,
            mode=mode,
            client_info=Implementation(name=name, version="1"),
            list_roots_callback=roots,
        ) as c:
            yield c


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_streamable_http_two_clients_two_personas(
    mcp_http: str, served: dict[str, Any], mode: str
) -> None:
    async with (
        over_http(mcp_http, "claude-code", roots_of(served["work"]), mode) as w,
        over_http(mcp_http, "some-editor", roots_of(served["home"]), mode) as h,
    ):
        wm = data(await w.call_tool("remember", {"text": f"Acme kickoff notes ({mode})"}))
        hm = data(await h.call_tool("remember", {"text": f"Plant the tulips ({mode})"}))
        assert (wm["persona"], hm["persona"]) == ("work", "home")
        for c, mine, other in [(w, wm, hm), (h, hm, wm)]:
            found = data(await c.call_tool("recall", {"query": "acme kickoff tulips", "k": 50}))
            ids = {r["id"] for r in found["results"]}
            assert mine["memory"]["id"] in ids and other["memory"]["id"] not in ids
            listed = data(await c.call_tool("list_memories", {"limit": 100}))
            assert other["memory"]["id"] not in {m["id"] for m in listed["items"]}
            result = await c.call_tool("forget", {"memory_id": other["memory"]["id"]})
            assert result.is_error
        assert data(await w.call_tool("forget", {"memory_id": wm["memory"]["id"]}))
    with severance.Store.open(served["location"]) as s, s.enter(floor="house") as home:
        assert hm["memory"]["id"] in {m.id for m in home.memories(limit=100).items}


@pytest.mark.anyio
async def test_streamable_http_with_a_pass(mcp_http: str, served: dict[str, Any]) -> None:
    with severance.Store.open(served["location"]) as s:
        passes = Passes(s)
        home = passes.issue("house").token
        read_only = passes.issue("office", read_only=True).token
        revoked = passes.issue("office")
        passes.revoke(revoked.info.id)
    # The pass decides, whatever the roots say.
    async with over_http(mcp_http, "claude-code", roots_of(served["work"]), "legacy", home) as c:
        assert data(await c.call_tool("list_memories", {}))["persona"] == "home"
    async with over_http(mcp_http, "claude-code", None, "auto", read_only) as c:
        assert data(await c.call_tool("recall", {"query": "anything"}))["persona"] == "work"
        assert "read-only" in error_text(await c.call_tool("remember", {"text": "no"}))
    async with over_http(mcp_http, "claude-code", None, "legacy", revoked.token) as c:
        assert "revoked" in error_text(await c.call_tool("list_memories", {}))


@pytest.mark.anyio
async def test_streamable_http_requires_a_pass_by_default(served: dict[str, Any]) -> None:
    with severance.Store.open(served["location"]) as s:
        token = Passes(s).issue("office").token
        before = s.resolve(floor="office")
        with s.enter(floor="office") as work:
            count = work.count()
    with serving(served["location"], "--mcp-http", "127.0.0.1:0", env=served["env"]) as s:
        assert not any("WARNING" in line for line in s.stderr)
        for mode in MODES:
            async with over_http(s.mcp, "claude-code", roots_of(served["work"]), mode) as c:
                for tool, args in [("remember", {"text": "claimed"}), ("list_memories", {})]:
                    text = error_text(await c.call_tool(tool, args))
                    assert "needs a pass" in text and "severance pass issue" in text
        async with over_http(s.mcp, "anything", None, "legacy", token) as c:
            assert data(await c.call_tool("status", {}))["why"] == [
                "a pass for floor 'office' was presented"
            ]
    with severance.Store.open(served["location"]) as s, s.enter(floor="office") as work:
        assert work.count() == count and before.persona == "work"  # nothing was written


def stdio_params(served: dict[str, Any], *args: str, cwd: Path) -> StdioServerParameters:
    entry = "from severance.cli import main; main()"
    return StdioServerParameters(
        command=sys.executable,
        args=["-c", entry, "--store", served["location"], "serve", "--mcp", *args],
        env=served["env"],
        cwd=cwd,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_stdio_every_tool(served: dict[str, Any], mode: str) -> None:
    params = stdio_params(served, cwd=served["home"])
    async with Client(
        params,
        mode=mode,
        client_info=Implementation(name="claude-code", version="1"),
        list_roots_callback=roots_of(served["work"]),
    ) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert tools == {
            "remember",
            "recall",
            "forget",
            "list_memories",
            "get_memory",
            "update_memory",
            "status",
            "notices",
        }
        m = data(await c.call_tool("remember", {"text": f"stdio memory {mode}", "tags": ["io"]}))
        assert m["persona"] == "work"  # the roots win over the server's working directory
        found = data(await c.call_tool("recall", {"query": f"stdio memory {mode}"}))
        assert found["results"][0]["id"] == m["memory"]["id"]
        assert data(await c.call_tool("list_memories", {}))["total"] >= 1
        assert data(await c.call_tool("forget", {"memory_id": m["memory"]["id"]}))


@pytest.mark.anyio
async def test_stdio_without_roots_uses_the_working_directory(served: dict[str, Any]) -> None:
    # Claude Code starts stdio servers in the project directory and may not send roots.
    async with Client(
        stdio_params(served, cwd=served["work"]),
        mode="legacy",
        client_info=Implementation(name="claude-code", version="1"),
    ) as c:
        assert data(await c.call_tool("list_memories", {}))["persona"] == "work"
    async with Client(
        stdio_params(served, "--floor", "house", cwd=served["work"]), mode="legacy"
    ) as c:
        assert data(await c.call_tool("list_memories", {}))["persona"] == "home"


@pytest.mark.anyio
async def test_http_api_and_mcp_served_together(served: dict[str, Any]) -> None:
    with severance.Store.open(served["location"]) as s:
        token = Passes(s).issue("office").token
    args = ("--http", "127.0.0.1:0", "--mcp-http", "127.0.0.1:0")
    with serving(served["location"], *args, env=served["env"], expect=2) as s:
        async with over_http(s.mcp, "claude-code", None, "legacy", token) as c:
            m = data(await c.call_tool("remember", {"text": "written over MCP, read over HTTP"}))
        async with httpx.AsyncClient(base_url=s.http) as http:
            r = await http.get(
                f"/v1/memories/{m['memory']['id']}", headers={"Authorization": f"Bearer {token}"}
            )
    assert r.status_code == 200 and r.json()["text"] == "written over MCP, read over HTTP"


@pytest.mark.anyio
async def test_a_time_at_the_edge_of_the_calendar_is_a_tool_error(
    mstore: severance.Store,
) -> None:
    server = create_mcp_server(mstore, floor="office")
    async with client(server) as c:
        result = await c.call_tool(
            "remember", {"text": "x", "occurred_at": "0001-01-01T00:00:00+01:00"}
        )
        assert "out of range" in error_text(result)
    assert counts(mstore)["work"] == 0
