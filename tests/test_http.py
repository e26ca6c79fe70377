"""The HTTP API: every endpoint, every error path, passes for one persona only.

Most tests run the app in-process through ``httpx.ASGITransport``; the last part runs a real
``severance serve --http`` subprocess on 127.0.0.1 and talks to it over the loopback. A
schemathesis run (bounded) checks every operation against the OpenAPI schema: no 5xx, and
every response matches its documented shape and media type.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

import severance
from server_process import server_env, serving
from severance import errors as errors_module
from severance import http as http_module
from severance import passes as passes_module
from severance.backends.base import PassRow
from severance.http import PROBLEM_STATUS, TokenBucket, create_app, problem_status
from severance.model import new_id
from severance.passes import Passes, hash_token

PROBLEM = "application/problem+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def passes(store: severance.Store) -> Passes:
    return Passes(store)


@pytest.fixture
def tokens(passes: Passes) -> dict[str, str]:
    """A read-write pass for each floor, and a read-only one for the office."""
    out = {floor: passes.issue(floor).token for floor in ("office", "house", "studio")}
    out["office-ro"] = passes.issue("office", read_only=True).token
    return out


@pytest.fixture
def app(store: severance.Store) -> FastAPI:
    return create_app(store, rate=None)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://severance.test") as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"] == f"urn:severance:problem:{body['code']}"
    assert body["title"] and body["detail"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    if code is not None:
        assert body["code"] == code, body
    return body


NOTES = {
    "office": ["The Q3 launch moved to October 12", "Acme renewal is due March 1"],
    "house": ["Dentist appointment on Friday at 4", "Anniversary dinner at Lumen, booked"],
    "studio": ["Pottery glaze order arrives Tuesday"],
}


async def seed(client: httpx.AsyncClient, tokens: dict[str, str]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for floor, texts in NOTES.items():
        ids[floor] = []
        for text in texts:
            r = await client.post("/v1/memories", json={"text": text}, headers=auth(tokens[floor]))
            assert r.status_code == 201, r.text
            ids[floor].append(r.json()["id"])
    return ids


# -- every endpoint ----------------------------------------------------------------------------
@pytest.mark.anyio
async def test_health_needs_no_pass(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": severance.__version__}


@pytest.mark.anyio
async def test_whoami(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    r = await client.get("/v1/pass", headers=auth(tokens["office-ro"]))
    assert r.status_code == 200
    body = r.json()
    assert (body["floor"], body["persona"], body["read_only"]) == ("office", "work", True)


@pytest.mark.anyio
async def test_remember_get_update_history_forget(
    client: httpx.AsyncClient, tokens: dict[str, str], store: severance.Store
) -> None:
    h = auth(tokens["office"])
    r = await client.post(
        "/v1/memories",
        json={
            "text": "Standup moved to 9:30",
            "kind": "fact",
            "tags": ["meetings", "meetings", " team "],
            "metadata": {"room": "4B"},
            "occurred_at": "2024-05-01T09:30:00Z",
            "source": "test",
        },
        headers=h,
    )
    assert r.status_code == 201
    memory = r.json()
    assert r.headers["location"] == f"/v1/memories/{memory['id']}"
    assert memory["tags"] == ["meetings", "team"]
    assert memory["occurred_at"].startswith("2024-05-01T09:30:00")
    assert (memory["kind"], memory["metadata"], memory["version"]) == ("fact", {"room": "4B"}, 1)
    # Durable and visible outside the server's session.
    with store.enter(floor="office") as s:
        assert s.get(memory["id"]).text == "Standup moved to 9:30"

    r = await client.get(f"/v1/memories/{memory['id']}", headers=h)
    assert r.status_code == 200 and r.json() == memory

    r = await client.patch(
        f"/v1/memories/{memory['id']}", json={"text": "Standup moved to 9:45"}, headers=h
    )
    assert r.status_code == 200
    assert (r.json()["text"], r.json()["version"], r.json()["tags"]) == (
        "Standup moved to 9:45",
        2,
        ["meetings", "team"],
    )
    r = await client.patch(f"/v1/memories/{memory['id']}", json={}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2

    r = await client.get(f"/v1/memories/{memory['id']}/history", headers=h)
    assert r.status_code == 200
    assert [v["text"] for v in r.json()["versions"]] == [
        "Standup moved to 9:30",
        "Standup moved to 9:45",
    ]

    r = await client.delete(f"/v1/memories/{memory['id']}", headers=h)
    assert r.status_code == 204 and r.content == b""
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/v1/memories/{memory['id']}", headers=h)
        assert_problem(r, 404, "memory_not_found")


@pytest.mark.anyio
async def test_batch_list_and_recall(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    h = auth(tokens["office"])
    batch = [{"text": f"Note number {i} about the budget", "tags": ["budget"]} for i in range(7)]
    batch.append({"text": "The Q3 launch moved to October 12", "kind": "fact", "tags": ["q3"]})
    r = await client.post("/v1/memories/batch", json={"memories": batch}, headers=h)
    assert r.status_code == 201
    ids = [m["id"] for m in r.json()["memories"]]
    assert len(ids) == 8

    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        r = await client.get("/v1/memories", params={"limit": 3, "offset": offset}, headers=h)
        assert r.status_code == 200
        page = r.json()
        assert page["total"] == 8
        seen += [m["id"] for m in page["items"]]
        offset = page["next_offset"]
    assert sorted(seen) == sorted(ids) and len(seen) == 8
    r = await client.get("/v1/memories", params={"order": "oldest", "limit": 1000}, headers=h)
    assert [m["id"] for m in r.json()["items"]] == list(reversed(seen))

    r = await client.post("/v1/recall", json={"query": "when is the launch?", "k": 3}, headers=h)
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0]["memory"]["text"] == "The Q3 launch moved to October 12"
    assert {"score", "dense_rank", "keyword_rank", "dense_score", "keyword_score"} <= set(
        results[0]
    )
    r = await client.post(
        "/v1/recall",
        json={"query": "budget", "kinds": ["fact"], "tags": ["q3"], "mode": "keyword"},
        headers=h,
    )
    assert [x["memory"]["kind"] for x in r.json()["results"]] in ([], ["fact"])
    r = await client.post(
        "/v1/recall",
        json={"query": "launch", "since": "2000-01-01T00:00:00Z", "until": "2000-01-02", "k": 5},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["results"] == []


@pytest.mark.anyio
async def test_notices_and_audit_are_the_personas_own(
    client: httpx.AsyncClient, tokens: dict[str, str], store: severance.Store
) -> None:
    await seed(client, tokens)
    r = await client.get("/v1/notices", headers=auth(tokens["office"]))
    assert r.status_code == 200 and r.json() == {"notices": []}
    r = await client.get("/v1/audit", headers=auth(tokens["office"]))
    assert r.status_code == 200
    entries = r.json()["entries"]
    events = [e["event"] for e in entries]
    assert "persona_added" in events and "pass_issued" in events and "enter" in events
    # Only the persona's own events, and no chain fields that would number other events.
    work_events = [e.event for e in store.audit("work")]
    assert events == work_events[: len(events)]
    assert all(set(e) == {"at", "event", "detail"} for e in entries)
    home_id = store.persona("home").id
    assert home_id not in r.text and "house" not in r.text


@pytest.mark.anyio
async def test_one_awake_session_per_persona(
    app: FastAPI, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for _ in range(3):
        for floor in ("office", "house"):
            r = await client.get("/v1/memories", headers=auth(tokens[floor]))
            assert r.status_code == 200
    r = await client.get("/v1/memories", headers=auth(tokens["office-ro"]))
    sessions = app.state.severance.sessions._sessions
    assert len(sessions) == 2  # work and home, each woken once and kept warm


@pytest.mark.anyio
async def test_concurrent_writes_on_one_persona_are_all_kept(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    import anyio

    h = auth(tokens["house"])
    done: list[str] = []

    async def writer(n: int) -> None:
        for i in range(5):
            r = await client.post("/v1/memories", json={"text": f"w{n} item {i}"}, headers=h)
            assert r.status_code == 201
            done.append(r.json()["id"])
            r = await client.post("/v1/recall", json={"query": f"item {i}"}, headers=h)
            assert r.status_code == 200

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(writer, n)
    r = await client.get("/v1/memories", params={"limit": 1}, headers=h)
    assert r.json()["total"] == len(set(done)) == 40


# -- isolation -----------------------------------------------------------------------------------
def _normalise(r: httpx.Response, memory_id: str) -> tuple[int, str, str]:
    return r.status_code, r.headers["content-type"], r.text.replace(memory_id, "<ID>")


@pytest.mark.anyio
async def test_a_pass_cannot_reach_another_persona_by_any_id(
    client: httpx.AsyncClient, tokens: dict[str, str], store: severance.Store
) -> None:
    ids = await seed(client, tokens)
    r = await client.patch(
        f"/v1/memories/{ids['house'][0]}",
        json={"text": "Dentist moved to Monday"},
        headers=auth(tokens["house"]),
    )
    assert r.status_code == 200
    foreign = ids["house"] + ids["studio"]
    for token_name in ("office", "office-ro"):
        h = auth(tokens[token_name])
        for method, suffix, body in [
            ("GET", "", None),
            ("GET", "/history", None),
            ("PATCH", "", {"text": "overwritten"}),
            ("DELETE", "", None),
        ]:
            random_id = new_id("m_")
            baseline = await client.request(
                method, f"/v1/memories/{random_id}{suffix}", json=body, headers=h
            )
            expected = _normalise(baseline, random_id)
            assert expected[0] in (403, 404)
            for memory_id in foreign:
                r = await client.request(
                    method, f"/v1/memories/{memory_id}{suffix}", json=body, headers=h
                )
                assert _normalise(r, memory_id) == expected, (method, suffix, r.text)
        # Reading everything the pass can reach never shows a foreign memory.
        texts = " ".join(t for floor in ("house", "studio") for t in NOTES[floor])
        for query in [texts, "dentist", "anniversary dinner", "pottery glaze", "Dentist Monday"]:
            for mode in ("hybrid", "dense", "keyword"):
                r = await client.post(
                    "/v1/recall", json={"query": query, "k": 1000, "mode": mode}, headers=h
                )
                assert r.status_code == 200
                assert {x["memory"]["id"] for x in r.json()["results"]} <= set(ids["office"])
        r = await client.get("/v1/memories", params={"limit": 1000}, headers=h)
        assert {m["id"] for m in r.json()["items"]} == set(ids["office"])
        assert r.json()["total"] == len(ids["office"])
        for path in ("/v1/audit", "/v1/notices", "/v1/pass"):
            r = await client.get(path, headers=h)
            assert r.status_code == 200
            for memory_id in foreign:
                assert memory_id not in r.text
            assert "home" not in r.text and "house" not in r.text and "studio" not in r.text
        # No header, query parameter or body field can name another persona.
        sneaky = {**h, "X-Persona": "home", "X-Floor": "house", "X-Severance-Persona": "home"}
        r = await client.get(
            "/v1/memories",
            params={"persona": "home", "floor": "house", "persona_id": store.persona("home").id},
            headers=sneaky,
        )
        assert {m["id"] for m in r.json()["items"]} == set(ids["office"])
        r = await client.post(
            "/v1/recall", json={"query": "dentist", "persona": "home"}, headers=sneaky
        )
        assert_problem(r, 422, "invalid_input")
    # The other personas' memories are untouched.
    for floor in ("house", "studio"):
        r = await client.get("/v1/memories", headers=auth(tokens[floor]))
        assert {m["id"] for m in r.json()["items"]} == set(ids[floor])
    r = await client.get(f"/v1/memories/{ids['house'][0]}", headers=auth(tokens["house"]))
    assert (r.json()["text"], r.json()["version"]) == ("Dentist moved to Monday", 2)


# -- error paths -------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer nope",
        "Basic dXNlcjpwYXNz",
        "Bearer sev_" + "A" * 43,
        "bearer sev_x y",
    ],
)
async def test_no_or_bad_pass_is_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path, body in [
        ("GET", "/v1/pass", None),
        ("POST", "/v1/memories", {"text": "x"}),
        ("POST", "/v1/memories/batch", {"memories": [{"text": "x"}]}),
        ("GET", "/v1/memories", None),
        ("GET", "/v1/memories/m_x", None),
        ("PATCH", "/v1/memories/m_x", {"text": "y"}),
        ("DELETE", "/v1/memories/m_x", None),
        ("GET", "/v1/memories/m_x/history", None),
        ("POST", "/v1/recall", {"query": "x"}),
        ("GET", "/v1/notices", None),
        ("GET", "/v1/audit", None),
    ]:
        r = await client.request(method, path, json=body, headers=headers)
        assert_problem(r, 401, "invalid_pass")
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.anyio
async def test_revoked_expired_and_orphaned_passes_stop_at_once(
    client: httpx.AsyncClient, passes: Passes, store: severance.Store
) -> None:
    issued = passes.issue("house")
    h = auth(issued.token)
    assert (await client.get("/v1/memories", headers=h)).status_code == 200
    passes.revoke(issued.info.id)
    body = assert_problem(await client.get("/v1/memories", headers=h), 401, "invalid_pass")
    assert "revoked" in body["detail"]

    token = "sev_expired-for-this-test"
    now = time.time()
    store._backend.insert_pass(
        PassRow(
            "ps_exp",
            hash_token(token),
            "house",
            store.persona("home").id,
            now - 60,
            now - 1,
            False,
            None,
            None,
            floor_id=next(f.id for f in store._backend.floors() if f.name == "house"),
        )
    )
    body = assert_problem(await client.get("/v1/memories", headers=auth(token)), 401)
    assert "expired" in body["detail"]

    studio = passes.issue("studio")
    assert (await client.get("/v1/memories", headers=auth(studio.token))).status_code == 200
    store.remove_floor("studio")
    assert_problem(await client.get("/v1/memories", headers=auth(studio.token)), 401)


@pytest.mark.anyio
async def test_a_read_only_pass_reads_but_never_writes(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    ids = await seed(client, tokens)
    h = auth(tokens["office-ro"])
    target = ids["office"][0]
    for method, path, body in [
        ("POST", "/v1/memories", {"text": "x"}),
        ("POST", "/v1/memories/batch", {"memories": [{"text": "x"}]}),
        ("PATCH", f"/v1/memories/{target}", {"text": "y"}),
        ("DELETE", f"/v1/memories/{target}", None),
    ]:
        r = await client.request(method, path, json=body, headers=h)
        assert_problem(r, 403, "read_only_pass")
    assert (await client.get(f"/v1/memories/{target}", headers=h)).json()["version"] == 1
    assert (await client.get("/v1/memories", headers=h)).json()["total"] == 2
    r = await client.post("/v1/recall", json={"query": "launch"}, headers=h)
    assert r.status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/memories", {}),
        ("POST", "/v1/memories", {"text": ""}),
        ("POST", "/v1/memories", {"text": "   \n\t"}),
        ("POST", "/v1/memories", {"text": "x" * 32_769}),
        ("POST", "/v1/memories", {"text": 42}),
        ("POST", "/v1/memories", {"text": "x", "kind": "Not A Kind"}),
        ("POST", "/v1/memories", {"text": "x", "tags": ["t"] * 33}),
        ("POST", "/v1/memories", {"text": "x", "tags": ["x" * 65]}),
        ("POST", "/v1/memories", {"text": "x", "tags": "not-a-list"}),
        ("POST", "/v1/memories", {"text": "x", "metadata": [1, 2]}),
        ("POST", "/v1/memories", {"text": "x", "metadata": {"big": "x" * 70_000}}),
        ("POST", "/v1/memories", {"text": "x", "occurred_at": "yesterday-ish"}),
        ("POST", "/v1/memories", {"text": "x", "kind": "note\n"}),
        ("POST", "/v1/memories", {"text": "x", "source": "s" * 513}),
        ("POST", "/v1/memories", {"text": "x", "persona": "home"}),
        ("POST", "/v1/memories", ["not", "an", "object"]),
        ("POST", "/v1/memories/batch", {"memories": []}),
        ("POST", "/v1/memories/batch", {"memories": [{"text": "ok"}, {"text": ""}]}),
        ("POST", "/v1/memories/batch", {"memories": [{"text": "x"}] * 1001}),
        ("PATCH", "/v1/memories/m_x", {"text": ""}),
        ("PATCH", "/v1/memories/m_x", {"version": 7}),
        ("POST", "/v1/recall", {}),
        ("POST", "/v1/recall", {"query": " "}),
        ("POST", "/v1/recall", {"query": "q" * 4097}),
        ("POST", "/v1/recall", {"query": "x", "k": 0}),
        ("POST", "/v1/recall", {"query": "x", "k": 1001}),
        ("POST", "/v1/recall", {"query": "x", "recency": 1.5}),
        ("POST", "/v1/recall", {"query": "x", "mode": "psychic"}),
        ("POST", "/v1/recall", {"query": "x", "min_similarity": 2}),
        ("POST", "/v1/recall", {"query": "x", "since": "not a date"}),
        ("GET", "/v1/memories?limit=0", None),
        ("GET", "/v1/memories?limit=1001", None),
        ("GET", "/v1/memories?limit=ten", None),
        ("GET", "/v1/memories?offset=-1", None),
        ("GET", "/v1/memories?offset=99999999999999999999999", None),
        ("GET", "/v1/memories?order=sideways", None),
        ("GET", "/v1/memories/" + "m" * 129, None),
    ],
)
async def test_bad_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient, tokens: dict[str, str], method: str, path: str, body: Any
) -> None:
    h = auth(tokens["office"])
    r = await client.request(method, path, json=body, headers=h)
    problem = assert_problem(r, 422, "invalid_input")
    assert "x" * 100 not in r.text  # rejected input is never echoed back
    assert problem["detail"]
    assert (await client.get("/v1/memories", headers=h)).json()["total"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59.999999-01:00", "9999-12-31T23:59:59Z"),
        ("2024-02-29T12:00:00+05:30", "2024-02-29T06:30:00Z"),
        ("2024-02-29T12:00:00", "2024-02-29T12:00:00Z"),
    ],
)
async def test_any_rfc3339_time_is_accepted(
    client: httpx.AsyncClient, tokens: dict[str, str], given: str, stored: str
) -> None:
    h = auth(tokens["office"])
    r = await client.post("/v1/memories", json={"text": "x", "occurred_at": given}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["occurred_at"] == stored
    r = await client.post(
        "/v1/recall", json={"query": "x", "since": given, "until": given}, headers=h
    )
    assert r.status_code == 200


@pytest.mark.anyio
async def test_malformed_json_and_wrong_media_type(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = {**auth(tokens["office"]), "content-type": "application/json"}
    assert_problem(await client.post("/v1/memories", content=b'{"text": ', headers=h), 422)
    assert_problem(await client.post("/v1/memories", content=b"\xff\xfe", headers=h), 422)
    lone_surrogate = b'{"text": "\\ud800 half a character"}'
    assert_problem(await client.post("/v1/memories", content=lone_surrogate, headers=h), 422)
    text = {**auth(tokens["office"]), "content-type": "text/plain"}
    assert_problem(await client.post("/v1/memories", content=b'{"text":"x"}', headers=text), 422)


@pytest.mark.anyio
async def test_unknown_route_and_method_are_problems(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    assert_problem(await client.get("/v2/memories"), 404, "no_such_route")
    assert_problem(await client.get("/v1/memories/a/b/c"), 404, "no_such_route")
    r = await client.put("/v1/memories", headers=auth(tokens["office"]))
    assert_problem(r, 405, "method_not_allowed")


@pytest.mark.anyio
async def test_request_size_is_limited(store: severance.Store, tokens: dict[str, str]) -> None:
    app = create_app(store, rate=None, max_body_bytes=4096)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        h = {**auth(tokens["office"]), "content-type": "application/json"}
        big = json.dumps({"text": "x" * 5000}).encode()
        assert_problem(
            await client.post("/v1/memories", content=big, headers=h), 413, "request_too_large"
        )

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b" " * 1024

        # No Content-Length: counted as it streams in.
        r = await client.post("/v1/memories", content=chunks(), headers=h)
        assert_problem(r, 413, "request_too_large")
        r = await client.post("/v1/memories", json={"text": "x" * 3000}, headers=h)
        assert r.status_code == 201
        assert (await client.get("/v1/memories", headers=h)).json()["total"] == 1


@pytest.mark.anyio
async def test_rate_limit_per_pass(store: severance.Store, tokens: dict[str, str]) -> None:
    app = create_app(store, rate=0.5, burst=3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses = []
        for _ in range(5):
            r = await client.get("/v1/memories", headers=auth(tokens["office"]))
            statuses.append(r.status_code)
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        body = assert_problem(r, 429, "rate_limited")
        assert 1 <= int(r.headers["retry-after"]) <= 2
        assert "retry" in body["detail"]
        # Another pass has its own bucket; /health is never limited.
        assert (await client.get("/v1/memories", headers=auth(tokens["house"]))).status_code == 200
        assert (await client.get("/health")).status_code == 200


@pytest.mark.anyio
async def test_an_unexpected_bug_is_a_bare_problem(
    store: severance.Store,
    tokens: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals of home")

    monkeypatch.setattr(severance.Session, "recall", broken)
    app = create_app(store, rate=None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/v1/recall", json={"query": "x"}, headers=auth(tokens["office"]))
    body = assert_problem(r, 500, "internal")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert "see the server log" in body["detail"]
    assert any("secret internals" in str(rec.exc_info) for rec in caplog.records)


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=2, clock=lambda: now[0])
    assert [bucket.take("a"), bucket.take("a")] == [0.0, 0.0]
    assert bucket.take("a") == pytest.approx(0.5)
    assert bucket.take("b") == 0.0
    now[0] = 0.5
    assert bucket.take("a") == 0.0
    now[0] = 100.0
    assert [bucket.take("a"), bucket.take("a"), bucket.take("a") > 0] == [0.0, 0.0, True]


def test_every_error_class_carries_its_status() -> None:
    classes = [
        obj
        for module in (errors_module, http_module, passes_module)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, severance.SeveranceError)
    ]
    assert len(classes) > 20
    for cls in classes:
        status = cls.http_status
        # 502: the persona's extractor (an upstream LLM endpoint) failed.
        upstream = status == 502 and issubclass(cls, severance.ExtractorError)
        assert 400 <= status < 500 or status == 503 or upstream, cls
    assert severance.MemoryNotFoundError("m_x").http_status == 404
    assert severance.InvalidInputError("x").http_status == 422


def test_one_status_table_covers_every_error() -> None:
    # The former public table, now a view of the classes' own statuses: unchanged for callers.
    classes = [
        obj
        for module in (errors_module, http_module, passes_module)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, severance.SeveranceError)
    ]
    assert len(classes) > 20
    for cls in classes:
        status = problem_status(cls.__new__(cls))
        assert status == next(s for c, s in PROBLEM_STATUS if issubclass(cls, c)) == cls.http_status
        # 502: the persona's extractor (an upstream LLM endpoint) failed.
        upstream = status == 502 and issubclass(cls, severance.ExtractorError)
        assert 400 <= status < 500 or status == 503 or upstream, cls
    # No entry is shadowed by a more general one listed before it.
    for i, (cls, _) in enumerate(PROBLEM_STATUS):
        assert not any(issubclass(cls, earlier) for earlier, _ in PROBLEM_STATUS[:i]), cls
    assert problem_status(severance.MemoryNotFoundError("m_x")) == 404
    assert problem_status(severance.InvalidInputError("x")) == 422


# -- the OpenAPI schema, fuzzed --------------------------------------------------------------
def test_openapi_fuzz(store: severance.Store) -> None:
    """Every operation, fed schema-driven data (valid and not): never a 5xx, and every response
    matches the schema (status, media type, body). Bounded: a few dozen examples each."""
    app = create_app(store, rate=None)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    token = Passes(store).issue("office").token
    with store.enter(floor="office") as s:
        s.remember("A memory so that list and recall have something to return", tags=["t"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth(token))

        check()


@pytest.mark.anyio
async def test_openapi_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    operations = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert operations == {
        ("GET", "/health"),
        ("GET", "/v1/pass"),
        ("POST", "/v1/memories"),
        ("GET", "/v1/memories"),
        ("POST", "/v1/memories/batch"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/memories/{memory_id}"),
        ("PATCH", "/v1/memories/{memory_id}"),
        ("DELETE", "/v1/memories/{memory_id}"),
        ("GET", "/v1/memories/{memory_id}/history"),
        ("POST", "/v1/recall"),
        ("POST", "/v1/extract"),
        ("GET", "/v1/notices"),
        ("GET", "/v1/audit"),
    }
    # No operation takes a persona, floor or store, in any parameter or request body.
    schemas = doc["components"]["schemas"]

    def fields(schema: dict[str, Any]) -> set[str]:
        if "$ref" in schema:
            return fields(schemas[schema["$ref"].rsplit("/", 1)[1]])
        names = set(schema.get("properties", {}))
        subs = [*schema.get("properties", {}).values(), *schema.get("anyOf", [])]
        if "items" in schema:
            subs.append(schema["items"])
        for sub in subs:
            names |= fields(sub)
        return names

    names: set[str] = set()
    for ops in doc["paths"].values():
        for op in ops.values():
            names |= {p["name"].lower() for p in op.get("parameters", [])}
            for media in op.get("requestBody", {}).get("content", {}).values():
                names |= fields(media["schema"])
    assert names, "found no parameters at all"
    assert not {n for n in names if any(w in n for w in ("persona", "floor", "store"))}


# -- a real server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A store on disk (its own key file) and the environment to serve it in."""
    root = tmp_path_factory.mktemp("served")
    location = str(root / "store")
    with severance.Store.init(location, key_file=root / "master.key") as s:
        for persona, floor in (("work", "office"), ("home", "house")):
            s.add_persona(persona)
            s.add_floor(floor, persona=persona)
    yield location, server_env(str(root / "home"))


@pytest.fixture(scope="module")
def server(served_store: tuple[str, dict[str, str]]) -> Iterator[Any]:
    location, env = served_store
    with serving(
        location,
        "--http",
        "127.0.0.1:0",
        "--rate",
        "1000",
        "--burst",
        "1000",
        "--max-body",
        "65536",
        env=env,
    ) as served:
        yield served


@pytest.fixture
def real(served_store: tuple[str, dict[str, str]]) -> Iterator[severance.Store]:
    """The served store, opened in this (other) process."""
    with severance.Store.open(served_store[0]) as s:
        yield s


def test_real_server_every_endpoint(server: Any, real: severance.Store) -> None:
    passes = Passes(real)
    work, home = passes.issue("office").token, passes.issue("house").token
    with httpx.Client(base_url=server.http, timeout=30) as c:
        assert server.http.startswith("http://127.0.0.1:")
        assert c.get("/health").json()["status"] == "ok"
        assert c.get("/openapi.json").json()["info"]["title"] == "Severance"
        assert c.get("/v1/pass", headers=auth(work)).json()["persona"] == "work"
        r = c.post("/v1/memories", json={"text": "Real server memory"}, headers=auth(work))
        assert r.status_code == 201
        mid = r.json()["id"]
        # Acknowledged means on disk: another process sees it at once.
        with real.enter(floor="office") as s:
            assert s.get(mid).text == "Real server memory"
        r = c.post(
            "/v1/memories/batch",
            json={"memories": [{"text": "b1"}, {"text": "b2"}]},
            headers=auth(work),
        )
        assert r.status_code == 201 and len(r.json()["memories"]) == 2
        assert c.get(f"/v1/memories/{mid}", headers=auth(work)).json()["text"] == (
            "Real server memory"
        )
        r = c.patch(f"/v1/memories/{mid}", json={"tags": ["real"]}, headers=auth(work))
        assert r.json()["version"] == 2
        assert len(c.get(f"/v1/memories/{mid}/history", headers=auth(work)).json()["versions"]) == 2
        r = c.post("/v1/recall", json={"query": "real server"}, headers=auth(work))
        assert r.json()["results"][0]["memory"]["id"] == mid
        assert c.get("/v1/memories", headers=auth(work)).json()["total"] == 3
        assert c.get("/v1/notices", headers=auth(work)).status_code == 200
        assert "pass_issued" in c.get("/v1/audit", headers=auth(work)).text
        # The home pass sees none of it, and the same 404 as for an id that never existed.
        r = c.get(f"/v1/memories/{mid}", headers=auth(home))
        other = c.get(f"/v1/memories/{new_id('m_')}", headers=auth(home))
        assert r.status_code == other.status_code == 404
        assert set(r.json()) == set(other.json()) and r.json()["code"] == other.json()["code"]
        assert c.get("/v1/memories", headers=auth(home)).json()["total"] == 0
        assert c.delete(f"/v1/memories/{mid}", headers=auth(home)).status_code == 404
        assert c.delete(f"/v1/memories/{mid}", headers=auth(work)).status_code == 204
        assert c.get(f"/v1/memories/{mid}", headers=auth(work)).status_code == 404


def test_real_server_error_paths(server: Any, real: severance.Store) -> None:
    passes = Passes(real)
    issued = passes.issue("office")
    ro = passes.issue("office", read_only=True).token
    h = auth(issued.token)
    with httpx.Client(base_url=server.http, timeout=30) as c:
        assert_problem(c.get("/v1/memories"), 401, "invalid_pass")
        assert_problem(c.get("/v1/memories", headers=auth("sev_nope")), 401)
        assert_problem(c.post("/v1/memories", json={"text": ""}, headers=h), 422)
        assert_problem(c.post("/v1/memories", json={"text": "x"}, headers=auth(ro)), 403)
        assert_problem(c.get(f"/v1/memories/{new_id('m_')}", headers=h), 404)
        assert_problem(c.get("/nowhere"), 404, "no_such_route")
        assert_problem(c.put("/v1/memories", headers=h), 405)
        big = {"text": "x" * 30_000, "metadata": {"pad": "y" * 40_000}}
        assert_problem(c.post("/v1/memories", json=big, headers=h), 413, "request_too_large")
        r = c.post(
            "/v1/memories",
            content=iter([b"{" + b" " * 70_000 + b"}"]),
            headers={**h, "content-type": "application/json"},
        )
        assert_problem(r, 413)
        # Revoked in this process, refused at once by the server process.
        assert c.get("/v1/memories", headers=h).status_code == 200
        passes.revoke(issued.info.id)
        assert_problem(c.get("/v1/memories", headers=h), 401, "invalid_pass")


def test_real_server_rate_limit_and_durability(
    served_store: tuple[str, dict[str, str]], real: severance.Store
) -> None:
    location, env = served_store
    token = Passes(real).issue("house").token
    with (
        serving(
            location,
            "--http",
            "127.0.0.1:0",
            "--rate",
            "1",
            "--burst",
            "3",
            env=env,
            check_exit=False,
        ) as served,
        httpx.Client(base_url=served.http) as c,
    ):
        statuses = [c.get("/v1/memories", headers=auth(token)).status_code for _ in range(5)]
        assert statuses[:3] == [200] * 3 and 429 in statuses[3:]
        r = c.get("/v1/memories", headers=auth(token))
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        time.sleep(1.1)
        r = c.post("/v1/memories", json={"text": "survives kill -9"}, headers=auth(token))
        assert r.status_code == 201
        mid = r.json()["id"]
        # A write that was acknowledged survives the server being killed outright.
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=10)
    with real.enter(floor="house") as s:
        assert s.get(mid).text == "survives kill -9"


def test_real_server_refuses_a_busy_port_and_bad_options(
    served_store: tuple[str, dict[str, str]], server: Any
) -> None:
    location, env = served_store
    port = server.http.rsplit(":", 1)[1]
    entry = ["-c", "from severance.cli import main; main()", "--store", location, "serve"]
    for args, code, words in [
        (["--http", f"127.0.0.1:{port}"], 2, "cannot listen"),
        (["--http", "127.0.0.1:99999"], 2, "invalid address"),
        ([], 2, "at least one"),
        (["--http", "0", "--rate", "-1"], 2, "--rate"),
    ]:
        result = subprocess.run(
            [sys.executable, *entry, *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == code, result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr


def test_real_server_stops_cleanly_on_sigint(served_store: tuple[str, dict[str, str]]) -> None:
    location, env = served_store
    with serving(location, "--http", "127.0.0.1:0", env=env) as served:
        served.process.send_signal(signal.SIGINT)
        assert served.process.wait(timeout=30) == 0
    assert os.path.exists(location)


def test_served_schema_matches_in_process_schema(server: Any, store: severance.Store) -> None:
    with httpx.Client(base_url=server.http) as c:
        served = c.get("/openapi.json").json()
    assert served == create_app(store).openapi()


@pytest.mark.anyio
async def test_a_reintegrated_memory_shows_its_provenance(
    client: httpx.AsyncClient, tokens: dict[str, str], store: severance.Store
) -> None:
    r = await client.post(
        "/v1/memories", json={"text": "Offsite in Lisbon in May"}, headers=auth(tokens["office"])
    )
    assert r.status_code == 201
    origin = r.json()["id"]
    store.reintegrate("work", "home")
    r = await client.get("/v1/memories?limit=10", headers=auth(tokens["house"]))
    (item,) = [m for m in r.json()["items"] if m["text"] == "Offsite in Lisbon in May"]
    assert [(p["persona"], p["memory_id"], p["mode"]) for p in item["provenance"]] == [
        ("work", origin, "copy")
    ]
