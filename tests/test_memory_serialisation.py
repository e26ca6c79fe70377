"""One serialisation of a memory, :meth:`Memory.to_dict`, behind every adapter.

The CLI prints it, the HTTP API serves it (its times in pydantic's ``Z`` form), the MCP tools
serve a subset of it, and :class:`severance.Client` reads the HTTP form back with
:meth:`Memory.from_dict` into the very memory the session holds. Every key — ``duplicate`` too
— is in every form, so each interface has one schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import severance
from severance import Client, Memory
from severance.cli import main
from severance.crossings import Selection
from severance.http import create_app
from severance.mcp_results import MemoryItem, RecallItem
from severance.passes import Passes


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[severance.Store, Memory]]:
    store = severance.Store.init(tmp_path / "store", key_file=tmp_path / "master.key")
    store.add_persona("work")
    store.add_persona("home")
    store.add_floor("office", persona="work")
    store.add_floor("house", persona="home")
    with store.enter(floor="house") as home:
        made = home.remember("Lisbon offsite — June 3", kind="fact", tags=["trip", "été"])
    store.reintegrate("home", "work", select=Selection(ids=(made.id,)))
    with store.enter(floor="office") as s:
        (m,) = s.memories().items
        m = s.update(m.id, metadata={"n": 1, "nested": {"ok": True}}, occurred_at="2024-05-01")
    assert m.provenance and m.version == 2
    yield store, m
    store.close()


def _times(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with its times as datetimes (the two spellings of UTC compare equal)."""
    keys = ("occurred_at", "learned_at", "updated_at")
    return {k: datetime.fromisoformat(v) if k in keys else v for k, v in d.items()}


def test_to_dict_round_trips_through_from_dict(stored: tuple[severance.Store, Memory]) -> None:
    _, m = stored
    data = json.loads(json.dumps(m.to_dict()))
    assert Memory.from_dict(data) == m
    assert Memory.from_dict({**data, "duplicate": True}).duplicate is True
    # An older server's answer, without the optional fields, still reads.
    bare = {k: v for k, v in data.items() if k not in ("source", "provenance", "duplicate")}
    assert Memory.from_dict(bare).provenance == () and Memory.from_dict(bare).source is None


def test_cli_json_is_to_dict(
    stored: tuple[severance.Store, Memory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, m = stored
    argv = ["--store", str(tmp_path / "store"), "--key-file", str(tmp_path / "master.key")]
    main([*argv, "get", "--floor", "office", m.id, "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(m.to_dict()))


def test_http_body_is_to_dict_and_the_client_reads_it_back(
    stored: tuple[severance.Store, Memory],
) -> None:
    store, m = stored
    token = Passes(store).issue("office").token
    app = create_app(store, rate=None)
    with TestClient(app) as http:
        body = http.get(f"/v1/memories/{m.id}", headers={"Authorization": f"Bearer {token}"})
        assert body.status_code == 200
        served = body.json()
        assert _times(served) == _times({"duplicate": False, **m.to_dict()})
        with Client("http://testserver", token=token, transport=_Through(http)) as client:
            assert client.get(m.id) == m
            (hit,) = client.recall("Lisbon offsite", k=1)
            assert hit.memory == m


class _Through(httpx.BaseTransport):
    """Requests through a TestClient: the real app in-process, behind a synchronous transport."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def test_mcp_items_are_a_subset_of_to_dict(stored: tuple[severance.Store, Memory]) -> None:
    _, m = stored
    item = MemoryItem.of(m).model_dump(mode="json")
    assert item == {k: v for k, v in m.to_dict().items() if k in item}
    assert set(item) == {"id", "text", "kind", "tags", "occurred_at"}
    hit = RecallItem(**MemoryItem.of(m).model_dump(), score=0.5).model_dump(mode="json")
    assert {k: hit[k] for k in item} == item


# -- one schema everywhere: the `duplicate` key is always there ------------------------------
def _keys(d: dict[str, Any]) -> set[str]:
    return set(d)


def test_every_interface_always_says_duplicate(
    stored: tuple[severance.Store, Memory], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, m = stored
    keys = _keys(m.to_dict())
    assert m.to_dict()["duplicate"] is False and "duplicate" in keys
    argv = ["--store", str(tmp_path / "store"), "--key-file", str(tmp_path / "master.key")]

    def cli_json(*args: str) -> Any:
        main([*argv, *args, "--json"])
        return json.loads(capsys.readouterr().out)

    # The CLI: a new memory, then the same again; get, recall, history, the list.
    new = cli_json("remember", "--floor", "office", "Standup is at 9:30", "--kind", "fact")
    again = cli_json("remember", "--floor", "office", "standup is at 9:30", "--kind", "fact")
    assert (new["memory"]["duplicate"], again["memory"]["duplicate"]) == (False, True)
    assert again["memory"]["id"] == new["memory"]["id"]
    shown = [
        new["memory"],
        again["memory"],
        cli_json("get", "--floor", "office", m.id),
        cli_json("recall", "--floor", "office", "Lisbon offsite")["results"][0]["memory"],
        *cli_json("history", "--floor", "office", m.id),
        *cli_json("memories", "--floor", "office")["items"],
    ]
    for d in shown:
        assert _keys(d) == keys and isinstance(d["duplicate"], bool), d
    # Export: every line in the same form; and it imports back (the key is no field to keep).
    exported = tmp_path / "work.jsonl"
    main([*argv, "export", "--floor", "office", "-o", str(exported)])
    capsys.readouterr()
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(lines) == 2
    assert all(_keys(d) == keys and d["duplicate"] is False for d in lines)
    main([*argv, "import", "--floor", "house", "jsonl", str(exported), "--default", "home"])
    capsys.readouterr()
    with store.enter(floor="house") as home:
        texts = sorted(x.text for x in home.memories().items)
    assert "Standup is at 9:30" in texts

    # HTTP: the same keys in every body, and the OpenAPI schema says the key is always sent.
    token = Passes(store).issue("office").token
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, rate=None)) as http:
        body = {"text": "Standup is at 9:30", "kind": "fact"}
        first = http.post(
            "/v1/memories", json={**body, "text": "Retro on Fridays"}, headers=headers
        )
        dup = http.post("/v1/memories", json=body, headers=headers)
        assert (first.status_code, dup.status_code) == (201, 200)
        assert (first.json()["duplicate"], dup.json()["duplicate"]) == (False, True)
        bodies = [
            first.json(),
            dup.json(),
            http.get(f"/v1/memories/{m.id}", headers=headers).json(),
        ]
        bodies += http.get("/v1/memories", headers=headers).json()["items"]
        for d in bodies:
            assert _keys(d) == keys and isinstance(d["duplicate"], bool), d
        schema = http.get("/openapi.json").json()["components"]["schemas"]["MemoryOut"]
        assert set(schema["required"]) == keys


@pytest.mark.anyio
async def test_mcp_remember_always_says_duplicate(
    stored: tuple[severance.Store, Memory],
) -> None:
    from mcp import Client
    from mcp.types import Implementation

    from severance.mcp import create_mcp_server

    store, _ = stored
    store.add_floor("code", persona="work", clients=["claude-code"])
    info = Implementation(name="claude-code", version="1")
    async with Client(create_mcp_server(store), mode="legacy", client_info=info) as c:
        answers = [
            await c.call_tool("remember", {"text": text, "kind": "fact"})
            for text in ("Standup is at 9:30", "standup is at 9:30")
        ]
    flags = []
    for answer in answers:
        assert not answer.is_error and isinstance(answer.structured_content, dict)
        flags.append(answer.structured_content["duplicate"])
    assert flags == [False, True]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
