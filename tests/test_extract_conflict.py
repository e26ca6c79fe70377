"""A memory the extractor's answer revises, changed or forgotten by another writer between the
prompt and the apply, is a conflict: :class:`ExtractionConflictError` (a ``ConflictError``),
HTTP 409 and the CLI's conflict exit status, raised before anything of the run is written.

The other writer is a second store handle (its own connection, as another process's), called
by the extractor's server while it answers, so the change lands between prompt and apply
every time. What a failed run must leave is exactly the other writer's change.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llm_server import FakeLLM, serve
from severance import Store
from severance.cli import main
from severance.errors import ConflictError, ExtractionConflictError, ExtractorError
from severance.session import Session

T1 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
SAID = "My city is Berlin. My team is Blue."
CHANGES = ["update", "forget"]


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    yield from serve()


def state(s: Session) -> list[tuple[str, int, str, str]]:
    page = s.memories(limit=1000)
    return sorted((m.id, m.version, m.text, json.dumps(m.metadata)) for m in page.items)


class Meanwhile:
    """Sets up the persona, and has another writer change (or forget) its memory of Paris the
    first time the extractor is asked; ``expected`` is the state that change leaves."""

    def __init__(self, store: Store, location: str, llm: FakeLLM, change: str) -> None:
        store.set_extractor("work", llm.spec())
        with store.enter(floor="office") as s:
            self.paris = s.remember("My city is Paris", kind="fact").id
        self.expected: list[tuple[str, int, str, str]] | None = None
        self.audit = len(store.audit())

        def other_writer() -> None:
            if self.expected is not None:
                return
            with Store.open(location) as other, other.enter(floor="office") as theirs:
                if change == "update":
                    theirs.update(self.paris, "My city is Lyon")
                else:
                    theirs.forget(self.paris)
                self.expected = state(theirs)

        llm.before_answer = other_writer

    def check(self, store: Store) -> None:
        """Nothing but the other writer's change: no fact, no episode, no extraction entry."""
        assert self.expected is not None, "the extractor was never asked"
        with store.enter(floor="office") as s:
            assert state(s) == self.expected
        events = [e.event for e in store.audit()[self.audit :]]
        assert "extraction" not in events
        assert store.verify_audit().ok


@pytest.mark.parametrize("change", CHANGES)
def test_python_raises_a_conflict_and_writes_nothing(
    store: Store, store_location: str, llm: FakeLLM, change: str
) -> None:
    meanwhile = Meanwhile(store, store_location, llm, change)
    with store.enter(floor="office") as s:
        with pytest.raises(ExtractionConflictError) as caught:
            s.remember_messages(
                [{"role": "user", "content": SAID}], at=T1, infer=True, keep_turns=True
            )
        # A conflict (retry it), not a failure of the extractor upstream.
        assert isinstance(caught.value, ConflictError)
        assert not isinstance(caught.value, ExtractorError)
        assert (caught.value.http_status, caught.value.exit_code) == (409, 1)
        assert caught.value.code == "extraction_conflict"
        assert caught.value.memory_id == meanwhile.paris
        assert "run the extraction again" in str(caught.value)
    meanwhile.check(store)
    # Run again, it reads the memory as it now is and goes through.
    with store.enter(floor="office") as s:
        made = s.remember_messages([{"role": "user", "content": SAID}], at=T1, infer=True)
    assert "My team is Blue" in [m.text for m in made]


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("change", CHANGES)
def test_the_cli_prints_one_line_and_exits_with_the_conflict_status(
    store: Store,
    store_location: str,
    llm: FakeLLM,
    change: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    meanwhile = Meanwhile(store, store_location, llm, change)
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": SAID}]))
    code, out, err = _cli(
        monkeypatch, capsys, "--store", store_location, "remember", "--floor", "office",
        "--file", str(chat), "--infer", "--keep-turns",
    )  # fmt: skip
    assert code == ExtractionConflictError.exit_code == 1
    assert "Traceback" not in err and out == ""
    assert err.splitlines()[-1] == (
        f"severance: error: memory {meanwhile.paris!r} was changed or forgotten by another "
        "writer while the extractor was reading it; nothing was written: run the extraction again"
    )
    meanwhile.check(store)


@pytest.mark.parametrize("change", CHANGES)
def test_http_answers_409_with_its_own_code(
    store: Store, store_location: str, llm: FakeLLM, change: str
) -> None:
    from fastapi.testclient import TestClient

    from severance.http import create_app
    from severance.passes import Passes

    meanwhile = Meanwhile(store, store_location, llm, change)
    token = Passes(store).issue("office").token
    with TestClient(create_app(store, rate=None)) as client:
        body = {"messages": [{"role": "user", "content": SAID}], "keep_turns": True}
        r = client.post("/v1/extract", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 409, r.text
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == "extraction_conflict" and problem["status"] == 409
        assert problem["type"] == "urn:severance:problem:extraction_conflict"
        assert meanwhile.paris in problem["detail"]
        # The OpenAPI document lists the 409 for the route.
        spec = client.get("/openapi.json").json()
        assert "409" in spec["paths"]["/v1/extract"]["post"]["responses"]
    meanwhile.check(store)


@pytest.mark.anyio
@pytest.mark.parametrize("change", CHANGES)
async def test_an_mcp_client_sees_only_the_other_writers_change(
    store: Store, store_location: str, llm: FakeLLM, change: str
) -> None:
    from mcp import Client
    from mcp.types import Implementation

    from severance.mcp import create_mcp_server

    store.add_floor("code", persona="work", clients=["claude-code"])
    meanwhile = Meanwhile(store, store_location, llm, change)
    with store.enter(floor="office") as s, pytest.raises(ExtractionConflictError):
        s.remember_messages([{"role": "user", "content": SAID}], at=T1, infer=True)
    meanwhile.check(store)
    assert meanwhile.expected is not None
    info = Implementation(name="claude-code", version="1")
    async with Client(create_mcp_server(store), mode="legacy", client_info=info) as c:
        listed = await c.call_tool("list_memories", {})
        assert not listed.is_error and isinstance(listed.structured_content, dict)
        items = listed.structured_content["items"]
        assert sorted((i["id"], i["text"]) for i in items) == [
            (memory_id, text) for memory_id, _, text, _ in meanwhile.expected
        ]
        got = await c.call_tool("get_memory", {"memory_id": meanwhile.paris})
        if change == "update":
            assert got.structured_content is not None
            assert got.structured_content["version"] == 2
            assert got.structured_content["memory"]["text"] == "My city is Lyon"
        else:
            assert got.is_error


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
