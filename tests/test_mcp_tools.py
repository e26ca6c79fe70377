"""The MCP tools added for issue 12 — get_memory, update_memory, recall's time range and
relevance floor, compact text, the client's name as source, prompts and the recent-memories
resource — through the official SDK client, in process and over stdio."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, Implementation, ListRootsResult, Root

import severance
from server_process import server_env
from severance.mcp import create_mcp_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def mstore(store_location: str, tmp_path: Path) -> Iterator[severance.Store]:
    s = severance.Store.init(store_location)
    for persona in ("work", "home"):
        s.add_persona(persona)
    s.add_floor("office", persona="work", paths=[str(tmp_path / "work") + "/**"])
    s.add_floor("house", persona="home", clients=["claude-ai"])
    (tmp_path / "work" / "acme").mkdir(parents=True)
    yield s
    s.close()


def roots(path: Path) -> Any:
    async def list_roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=path.as_uri())])  # type: ignore[arg-type]

    return list_roots


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.anyio
async def test_get_and_update_and_compact_text(mstore: severance.Store, tmp_path: Path) -> None:
    server = create_mcp_server(mstore)
    info = Implementation(name="claude-code", version="1")
    async with Client(
        server, mode="legacy", client_info=info, list_roots_callback=roots(tmp_path / "work")
    ) as c:
        made = await c.call_tool(
            "remember",
            {
                "text": "Standup is at 9:30",
                "kind": "fact",
                "tags": ["team"],
                "occurred_at": "2024-05-01T09:00:00Z",
            },
        )
        memory = data(made)["memory"]
        # Compact: one line for the model, no pretty-printed JSON.
        assert (
            text(made) == f"Remembered in work: {memory['id']} [fact 2024-05-01] #team "
            "Standup is at 9:30"
        )
        again = await c.call_tool(
            "remember", {"text": "standup is at 9:30", "kind": "fact", "tags": ["team"]}
        )
        assert data(again)["duplicate"] is True and data(again)["memory"]["id"] == memory["id"]
        assert text(again).startswith("Already remembered in work:")
        got = data(await c.call_tool("get_memory", {"memory_id": memory["id"]}))
        assert got["version"] == 1 and got["source"] == "mcp:claude-code"
        assert got["memory"]["text"] == "Standup is at 9:30"
        changed = await c.call_tool(
            "update_memory", {"memory_id": memory["id"], "text": "Standup is at 10:00"}
        )
        assert data(changed)["memory"]["text"] == "Standup is at 10:00"
        assert text(changed).startswith("Updated in work (version 2):")
        assert data(await c.call_tool("get_memory", {"memory_id": memory["id"]}))["version"] == 2
        missing = await c.call_tool("get_memory", {"memory_id": "m_nope"})
        assert missing.is_error and "no memory with id 'm_nope'" in text(missing)
        bad = await c.call_tool("update_memory", {"memory_id": memory["id"], "kind": "Bad"})
        assert bad.is_error
        listed = await c.call_tool("list_memories", {})
        assert text(listed).splitlines()[0] == "work: 1 memories"
        assert "{" not in text(listed)
    with mstore.enter(floor="office") as s:
        assert [v.text for v in s.history(memory["id"])] == [
            "Standup is at 9:30",
            "Standup is at 10:00",
        ]


@pytest.mark.anyio
async def test_recall_time_range_and_relevance_floor(mstore: severance.Store) -> None:
    with mstore.enter(floor="office") as s:
        s.remember("The Q3 launch moved to October 12", occurred_at="2024-06-01T00:00:00Z")
        s.remember("Dentist on Thursday at 3pm", occurred_at="2024-09-01T00:00:00Z")
        s.remember("My daughter likes horses", occurred_at="2025-01-01T00:00:00Z")
    server = create_mcp_server(mstore, floor="office")
    async with Client(server) as c:
        found = data(await c.call_tool("recall", {"query": "when is the launch?"}))
        # The floor drops best guesses that share no word and little meaning.
        assert [r["text"] for r in found["results"]] == ["The Q3 launch moved to October 12"]
        everything = data(
            await c.call_tool("recall", {"query": "when is the launch?", "min_relevance": 0})
        )
        assert len(everything["results"]) == 3
        nothing = await c.call_tool("recall", {"query": "weather in Paris tomorrow"})
        assert data(nothing)["results"] == []
        assert text(nothing) == "work remembers nothing relevant to that."
        ranged = data(
            await c.call_tool(
                "recall",
                {
                    "query": "launch dentist horses",
                    "min_relevance": 0,
                    "since": "2024-08-01T00:00:00Z",
                    "until": "2024-12-31T00:00:00Z",
                },
            )
        )
        assert [r["text"] for r in ranged["results"]] == ["Dentist on Thursday at 3pm"]
        bad = await c.call_tool("recall", {"query": "x", "since": "last week"})
        assert bad.is_error and "since" in text(bad)


@pytest.mark.anyio
async def test_tool_descriptions_say_when_to_call_them(mstore: severance.Store) -> None:
    async with Client(create_mcp_server(mstore)) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in ("remember", "recall", "update_memory", "get_memory", "list_memories"):
        assert "Call it" in (tools[name].description or "") or "Call this" in (
            tools[name].description or ""
        ), name
    assert tools["get_memory"].annotations.read_only_hint
    assert tools["update_memory"].input_schema["required"] == ["memory_id"]
    assert {"since", "until", "min_relevance"} <= set(tools["recall"].input_schema["properties"])


@pytest.mark.anyio
async def test_prompts_and_the_recent_memories_resource(
    mstore: severance.Store, tmp_path: Path
) -> None:
    with mstore.enter(floor="office") as s:
        for i in range(3):
            s.remember(f"work note {i}")
    with mstore.enter(floor="house") as s:
        s.remember("home secret")
    server = create_mcp_server(mstore)
    info = Implementation(name="claude-code", version="1")
    async with Client(
        server, mode="legacy", client_info=info, list_roots_callback=roots(tmp_path / "work")
    ) as c:
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        assert prompts == {"what_do_you_remember", "remember_this"}
        prompt = await c.get_prompt("what_do_you_remember", {"topic": "the Q3 launch"})
        said = prompt.messages[0].content
        assert "the Q3 launch" in said.text and "`recall`" in said.text  # type: ignore[union-attr]
        templates = (await c.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["memory://recent{?limit}"]
        read = await c.read_resource("memory://recent?limit=2")
        body = read.contents[0].text  # type: ignore[union-attr]
        lines = body.splitlines()
        assert lines[0] == "work: 3 memories, newest first" and len(lines) == 3
        assert "home secret" not in body
    # Claude Desktop (by name) reads home's, and only home's.
    desktop = Implementation(name="claude-ai", version="1")
    async with Client(server, mode="legacy", client_info=desktop) as c:
        body = (await c.read_resource("memory://recent")).contents[0].text  # type: ignore[union-attr]
        assert body.splitlines()[0] == "home: 1 memories, newest first"
        assert "home secret" in body and "work note" not in body
    # A client no floor matches is told so, and reads nothing.
    async with Client(
        server, mode="legacy", client_info=Implementation(name="vim", version="1")
    ) as c:
        with pytest.raises(Exception, match="no floor matches"):
            await c.read_resource("memory://recent")


@pytest.mark.anyio
async def test_new_tools_over_stdio(tmp_path: Path) -> None:
    location = str(tmp_path / "store")
    with severance.Store.init(location, key_file=tmp_path / "master.key") as s:
        s.add_persona("work")
        s.add_floor("office", persona="work", default=True)
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-c",
            "from severance.cli import main; main()",
            "--store",
            location,
            "serve",
            "--mcp",
        ],
        env=server_env(str(tmp_path / "home")),
        cwd=tmp_path,
    )
    info = Implementation(name="cursor", version="1")
    async with Client(params, mode="legacy", client_info=info) as c:
        m = data(await c.call_tool("remember", {"text": "Deploys happen on Tuesdays"}))["memory"]
        up = await c.call_tool("update_memory", {"memory_id": m["id"], "tags": ["ops"]})
        assert data(up)["memory"]["tags"] == ["ops"]
        got = data(await c.call_tool("get_memory", {"memory_id": m["id"]}))
        assert (got["source"], got["version"]) == ("mcp:cursor", 2)
        found = await c.call_tool("recall", {"query": "when do deploys happen?"})
        assert text(found).splitlines()[1].startswith(f"{m['id']} [note ")
        body = (await c.read_resource("memory://recent")).contents[0].text  # type: ignore[union-attr]
        assert "Deploys happen on Tuesdays" in body
