"""``severance.Client`` against a real ``severance serve --http`` on 127.0.0.1, over every
back-end; and the HTTP surface people expect: Swagger UI at /docs from local files, named
operation ids, list filters, the conversation endpoint, duplicates answered 200."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.server_process import server_env, serving

import severance
from severance import Client, InvalidInputError, MemoryNotFoundError, ReadOnlyPassError, Session
from severance.http import create_app
from severance.passes import Passes

MESSAGES = [
    {"role": "user", "content": "Book the Lisbon offsite", "timestamp": "2024-05-01T10:00:00Z"},
    {"role": "assistant", "content": [{"type": "text", "text": "Booked for June 3."}]},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
]


@pytest.fixture
def served(store_location: str, tmp_path: Path) -> Iterator[tuple[str, severance.Store]]:
    """A real server over a fresh store on the back-end under test, and the store, opened here."""
    with severance.Store.init(store_location, key_file=tmp_path / "master.key") as s:
        for persona, floor in (("work", "office"), ("home", "house")):
            s.add_persona(persona)
            s.add_floor(floor, persona=persona)
    env = server_env(str(tmp_path / "home"))
    with (
        serving(store_location, "--http", "127.0.0.1:0", "--rate", "0", env=env) as server,
        severance.Store.open(store_location, key_file=tmp_path / "master.key") as here,
    ):
        yield server.http, here


def test_client_speaks_the_session_verbs_to_a_real_server(
    served: tuple[str, severance.Store],
) -> None:
    url, store = served
    passes = Passes(store)
    work, home = passes.issue("office").token, passes.issue("house").token
    with Client(url, token=work) as c:
        assert url.startswith("http://127.0.0.1:")
        assert c.persona == "work" and c.floor == "office"
        m = c.remember("Invoice 4411 is paid", kind="fact", tags=["billing"], metadata={"n": 1})
        assert (m.kind, m.tags, m.metadata, m.version, m.duplicate) == (
            "fact",
            ("billing",),
            {"n": 1},
            1,
            False,
        )
        again = c.remember("invoice 4411 IS paid", kind="fact", tags=["billing"])
        assert (again.id, again.duplicate) == (m.id, True)
        batch = c.remember_many(
            [
                "Dentist on Thursday at 3pm",
                {"text": "Q3 launch", "kind": "event", "occurred_at": "2024-09-01T00:00:00Z"},
            ]
        )
        assert [b.text for b in batch] == ["Dentist on Thursday at 3pm", "Q3 launch"]
        turns = c.remember_messages(MESSAGES, session="c1")
        assert [t.text for t in turns] == [
            "user: Book the Lisbon offsite",
            "assistant: Booked for June 3.",
        ]
        assert {t.metadata["session"] for t in turns} == {"c1"}
        assert all(t.duplicate for t in c.remember_messages(MESSAGES, session="c1"))
        assert c.get(m.id) == m
        updated = c.update(m.id, "Invoice 4411 is paid in full")
        assert updated.version == 2
        assert [v.text for v in c.history(m.id)] == ["Invoice 4411 is paid", updated.text]
        hits = c.recall("when is the dentist?", k=1)
        assert hits[0].memory.text == "Dentist on Thursday at 3pm"
        assert c.recall("dentist", kind="event", k=5)[0].memory.text == "Q3 launch"
        page = c.memories(kind="episode")
        assert page.total == 2 and {p.kind for p in page.items} == {"episode"}
        assert c.memories(tags=["billing"]).total == 1
        assert c.memories(since="2024-08-01T00:00:00Z", until="2024-10-01T00:00:00Z").total == 1
        assert c.count() == 5
        # What the client says is what the embedded session says.
        with store.enter(floor="office") as s:
            embedded = s.memories(limit=50)
            assert [x.id for x in c.memories(limit=50).items] == [x.id for x in embedded.items]
            assert c.get(m.id) == s.get(m.id)
        c.forget(m.id)
        with pytest.raises(MemoryNotFoundError) as info:
            c.get(m.id)
        assert info.value.memory_id == m.id
        with pytest.raises(InvalidInputError):
            c.remember("   ")
        assert any(e.event == "enter" for e in c.audit())
        assert c.notices() == []
    with Client(url, token=home) as h:
        # Another pass, another persona: ids of work do not exist here.
        assert h.persona == "home" and h.count() == 0
        with pytest.raises(MemoryNotFoundError):
            h.get(batch[0].id)
    read_only = passes.issue("office", read_only=True).token
    with Client(url, token=read_only) as r:
        assert r.count() == 4
        with pytest.raises(ReadOnlyPassError):
            r.remember("no")


def test_one_line_switches_between_embedded_and_server(
    served: tuple[str, severance.Store],
) -> None:
    url, store = served
    token = Passes(store).issue("house").token

    def app_logic(memory: Session | Client) -> list[str]:
        memory.remember("The garden needs water on Sundays", kind="fact")
        memory.remember_messages([{"role": "user", "content": "Water the tomatoes"}], session="g")
        return [r.memory.text for r in memory.recall("garden water", k=2)]

    with store.enter(floor="house") as s:
        embedded = app_logic(s)
    with Client(url, token=token) as c:
        remote = app_logic(c)
    assert remote == embedded  # the second run found both memories already there


# -- the HTTP surface, in process ------------------------------------------------------------
@pytest.fixture
def local(store: severance.Store) -> Iterator[tuple[httpx.Client, str]]:
    app = create_app(store, rate=None)
    token = Passes(store).issue("office").token
    with TestClient(app, base_url="http://t") as c:
        yield c, token


def test_docs_are_swagger_ui_from_local_files(local: tuple[httpx.Client, str]) -> None:
    c, _ = local
    r = c.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", r.text)
    urls = {a or b for a, b in refs}
    assert "/openapi.json" in urls
    assert not [u for u in urls if "://" in u or u.startswith("//")], urls  # no CDN
    assert '"validatorUrl": null' in r.text  # not the default, validator.swagger.io
    assets = [u for u in urls if u.startswith("/docs/assets/")]
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        got = c.get(asset)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    assert "SwaggerUIBundle" in c.get("/docs/assets/swagger-ui-bundle.js").text


def test_operation_ids_are_named(local: tuple[httpx.Client, str]) -> None:
    c, _ = local
    doc = c.get("/openapi.json").json()
    ids = {
        (method.upper(), path): op["operationId"]
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert ids == {
        ("GET", "/health"): "health",
        ("GET", "/v1/pass"): "whoami",
        ("POST", "/v1/memories"): "remember",
        ("GET", "/v1/memories"): "list_memories",
        ("POST", "/v1/memories/batch"): "remember_batch",
        ("POST", "/v1/conversations"): "remember_conversation",
        ("GET", "/v1/memories/{memory_id}"): "get_memory",
        ("PATCH", "/v1/memories/{memory_id}"): "update_memory",
        ("DELETE", "/v1/memories/{memory_id}"): "forget",
        ("GET", "/v1/memories/{memory_id}/history"): "memory_history",
        ("POST", "/v1/recall"): "recall",
        ("GET", "/v1/notices"): "notices",
        ("GET", "/v1/audit"): "audit",
        ("POST", "/v1/extract"): "extract",
    }


def test_remember_answers_200_for_a_duplicate(local: tuple[httpx.Client, str]) -> None:
    c, token = local
    h = {"Authorization": f"Bearer {token}"}
    first = c.post("/v1/memories", json={"text": "Lunch at noon"}, headers=h)
    again = c.post("/v1/memories", json={"text": "lunch  at NOON"}, headers=h)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert first.json()["duplicate"] is False


def test_conversation_endpoint(local: tuple[httpx.Client, str]) -> None:
    c, token = local
    h = {"Authorization": f"Bearer {token}"}
    r = c.post("/v1/conversations", json={"messages": MESSAGES, "tags": ["chat"]}, headers=h)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["skipped"] == 1 and body["session"].startswith("s_")
    assert [m["metadata"]["turn"] for m in body["memories"]] == [0, 1]
    assert {tuple(m["tags"]) for m in body["memories"]} == {("chat",)}
    only_images = {"messages": [{"role": "user", "content": [{"type": "image"}]}]}
    r = c.post("/v1/conversations", json=only_images, headers=h)
    assert r.status_code == 201 and r.json()["memories"] == [] and r.json()["skipped"] == 1
    for bad in (
        {"messages": []},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": "x", "mood": "ok"}]},
        {"messages": [{"speaker": "ann", "text": " "}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": "x", "timestamp": "soon"}]},
    ):
        r = c.post("/v1/conversations", json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def test_list_filters(local: tuple[httpx.Client, str], store: severance.Store) -> None:
    c, token = local
    h = {"Authorization": f"Bearer {token}"}
    with store.enter(floor="office") as s:
        s.remember("a fact", kind="fact", tags=["x", "y"], occurred_at="2024-01-01T00:00:00Z")
        s.remember("a note", tags=["x"], occurred_at="2024-06-01T00:00:00Z")
        s.remember("an event", kind="event", occurred_at="2025-01-01T00:00:00Z")

    def texts(params: Any) -> list[str]:
        r = c.get("/v1/memories", params=params, headers=h)
        assert r.status_code == 200, r.text
        return sorted(m["text"] for m in r.json()["items"])

    assert texts({"kind": "fact"}) == ["a fact"]
    assert texts([("kind", "fact"), ("kind", "event")]) == ["a fact", "an event"]
    assert texts({"tag": "x"}) == ["a fact", "a note"]
    assert texts([("tag", "x"), ("tag", "y")]) == ["a fact"]
    assert texts({"since": "2024-03-01T00:00:00Z"}) == ["a note", "an event"]
    assert texts({"until": "2024-03-01T00:00:00Z"}) == ["a fact"]
    r = c.get("/v1/memories", params={"tag": "x", "limit": 1, "order": "oldest"}, headers=h)
    assert r.json()["total"] == 2 and r.json()["next_offset"] == 1
    assert [m["text"] for m in r.json()["items"]] == ["a fact"]
    r = c.get("/v1/memories", params={"kind": "Not A Kind"}, headers=h)
    assert r.status_code == 422
