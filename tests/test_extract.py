"""Optional fact extraction and supersession, through the real HTTP client, on every back-end.

The extractor is ``tests/llm_server.py``: a real chat server on 127.0.0.1 with deterministic
rules ("X is Y" facts, replacements, misbehaviour on markers). Time comes from the
conversations' own timestamps, never the clock.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from llm_server import FakeLLM, serve
from severance import Store
from severance.chat import read_conversation
from severance.cli import main
from severance.errors import (
    ExtractionConflictError,
    ExtractorError,
    ExtractorOutputError,
    ExtractorUnavailableError,
    IntegrityError,
    InvalidInputError,
    MissingKeyError,
    NoExtractorError,
    UnlockError,
)
from severance.extract import meta_key, parse_spec
from severance.keys import Secret
from severance.session import Session

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=30)


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    yield from serve()


def user(*lines: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": line} for line in lines]


def state(s: Session) -> list[tuple[str, int, str, str]]:
    """Everything a failed run must leave as it was: ids, versions, texts, metadata."""
    page = s.memories(limit=1000)
    return sorted((m.id, m.version, m.text, json.dumps(m.metadata)) for m in page.items)


# -- the happy paths ----------------------------------------------------------------------------
def test_facts_are_extracted_and_a_replaced_one_is_superseded(store: Store, llm: FakeLLM) -> None:
    shown = store.set_extractor("work", llm.spec())
    assert shown == {"extractor": llm.spec(), "api_key": None}
    with store.enter(floor="office") as s:
        first = s.remember_messages(
            [
                {"role": "user", "content": "Hello there. My city is Paris."},
                {"role": "assistant", "content": "Your city is Rome, then?"},
            ],
            at=T0,
            session="s1",
            infer=True,
        )
        assert [m.text for m in first] == ["My city is Paris"]
        paris = first[0]
        assert paris.kind == "fact" and paris.occurred_at == T0
        assert paris.provenance == (
            {"via": "extraction", "extractor": llm.spec(), "session": "s1", "turns": [0]},
        )
        assert s.count() == 1  # the turns themselves were not kept

        second = s.remember_messages(user("I moved. My city is Berlin."), at=T1, infer=True)
        berlin, old = second
        assert berlin.text == "My city is Berlin" and old.id == paris.id
        now = s.get(paris.id)
        assert now.text == "My city is Paris"  # kept, never deleted
        assert now.valid_until == T1 and now.superseded_by == berlin.id and now.version == 2
        assert [v.valid_until for v in s.history(paris.id)] == [None, T1]
        assert berlin.superseded_by is None and berlin.valid_until is None

        # The prompt of the second call showed the persona's own memory of Paris.
        assert f"- {paris.id}: My city is Paris" in llm.requests[-1].prompt()

        current = [r.memory.id for r in s.recall("what is my city", k=5)]
        assert current == [berlin.id]
        history = {r.memory.id: r.memory for r in s.recall("my city", k=5, include_superseded=True)}
        assert set(history) == {berlin.id, paris.id}
        assert history[paris.id].superseded_by == berlin.id
        assert s.count() == 2


def test_a_refined_fact_is_a_new_version(store: Store, llm: FakeLLM) -> None:
    store.set_extractor("work", llm.spec())
    with store.enter(floor="office") as s:
        (dog,) = s.remember_messages(user("My dog is Rex"), at=T0, session="a", infer=True)
        (again,) = s.remember_messages(user("My dog is now Max"), at=T1, session="b", infer=True)
        assert again.id == dog.id and again.version == 2 and again.text == "My dog is Max"
        assert [v.text for v in s.history(dog.id)] == ["My dog is Rex", "My dog is Max"]
        assert [p["session"] for p in again.provenance] == ["a", "b"]
        # Saying a known fact again changes nothing.
        assert s.remember_messages(user("My dog is Max"), at=T1, infer=True) == []
        assert s.get(dog.id).version == 2


def test_ollama_protocol_keeps_turns_as_episodes(store: Store, llm: FakeLLM) -> None:
    store.set_extractor("home", llm.spec("ollama"))
    with store.enter(floor="house") as s:
        result = s.extract(
            [read_conversation(user("Good morning", "My sister is Ana"), at=T0, session="k")],
            keep_turns=True,
        )
        assert [m.kind for m in result.episodes] == ["episode", "episode"]
        (fact,) = result.added
        assert fact.provenance[0]["episodes"] == [result.episodes[1].id]
        assert fact.provenance[0]["turns"] == [1]
        assert s.count() == 3
    request = llm.requests[-1]
    assert request.path == "/api/chat"
    assert request.body["stream"] is False and request.body["format"]["type"] == "object"
    assert result.cost.calls == 1 and result.cost.retries == 0
    assert result.cost.prompt_tokens and result.cost.completion_tokens


def test_batches_of_one_conversation_see_facts_proposed_earlier(store: Store, llm: FakeLLM) -> None:
    store.set_extractor("work", llm.spec(batch=1))
    with store.enter(floor="office") as s:
        lines = user("My city is Paris", "Lovely weather", "My city is Lyon")
        result = s.extract([read_conversation(lines, at=T0, session="x")])
        assert result.cost.calls == 3
        (lyon,) = result.added
        (paris,) = result.superseded
        assert lyon.text == "My city is Lyon" and paris.text == "My city is Paris"
        assert paris.superseded_by == lyon.id and paris.valid_until == T0
        assert "new-1: My city is Paris" in llm.requests[-1].prompt()
        assert [r.memory.id for r in s.recall("my city", k=5)] == [lyon.id]


def test_a_chain_of_replacements_in_one_run(store: Store, llm: FakeLLM) -> None:
    store.set_extractor("work", llm.spec(batch=1))
    with store.enter(floor="office") as s:
        paris = s.remember("My city is Paris", kind="fact", occurred_at=T0)
        lines = [
            {"role": "user", "content": "My city is Lyon", "timestamp": T1.isoformat()},
            {
                "role": "user",
                "content": "My city is Nice",
                "timestamp": (T1 + timedelta(1)).isoformat(),
            },
        ]
        result = s.extract([read_conversation(lines)])
        (nice,) = result.added
        lyon, old = result.superseded
        # The second call was shown Lyon (proposed) and not Paris (already superseded).
        last = llm.requests[-1].prompt()
        assert "new-1: My city is Lyon" in last and paris.id not in last
        assert old.id == paris.id and old.superseded_by == lyon.id and old.valid_until == T1
        assert lyon.superseded_by == nice.id and lyon.valid_until == T1 + timedelta(1)
        assert nice.valid_until is None
        assert [r.memory.id for r in s.recall("my city", k=5)] == [nice.id]
        assert len(s.recall("my city", k=5, include_superseded=True)) == 3


def test_one_malformed_answer_is_retried_once(store: Store, llm: FakeLLM) -> None:
    store.set_extractor("work", llm.spec())
    with store.enter(floor="office") as s:
        conversation = read_conversation(user("#malformed-once. My car is blue"), at=T0)
        result = s.extract([conversation])
    assert [m.text for m in result.added] == ["My car is blue"]
    assert result.cost.calls == 2 and result.cost.retries == 1
    assert "That answer was rejected" in llm.requests[-1].prompt()


def test_conversations_are_extracted_concurrently_up_to_the_limit(
    store: Store, llm: FakeLLM
) -> None:
    # "#gate" answers only once two requests are in flight together: a sequential client
    # would fail, and the limit keeps a third from ever joining.
    store.set_extractor("work", llm.spec(concurrency=2))
    seen: list[tuple[int, int]] = []
    with store.enter(floor="office") as s:
        conversations = [
            read_conversation(user(f"#gate. My project {n} is on"), at=T0) for n in range(4)
        ]
        result = s.extract(conversations, progress=lambda n, total: seen.append((n, total)))
    assert len(result.added) == 4
    assert llm.max_in_flight == 2
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


# -- failures change nothing ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("marker", "error", "calls"),
    [
        ("#malformed", ExtractorOutputError, 2),
        ("#schema", ExtractorOutputError, 2),
        ("#blank", ExtractorOutputError, 2),
        ("#body", ExtractorOutputError, 2),
        ("#http500", ExtractorUnavailableError, 1),
        ("#redirect", ExtractorUnavailableError, 1),
        ("#sleep", ExtractorUnavailableError, 1),
    ],
)
def test_a_failing_extractor_changes_nothing(
    store: Store, llm: FakeLLM, marker: str, error: type[ExtractorError], calls: int
) -> None:
    # Only the hung server needs a short timeout; elsewhere one would fail on a loaded machine.
    store.set_extractor("work", llm.spec(timeout=0.2) if marker == "#sleep" else llm.spec())
    with store.enter(floor="office") as s:
        s.remember_messages(user("My city is Paris"), at=T0, infer=True, keep_turns=True)
        before = state(s)
        sent = len(llm.requests)
        lines = user("My city is Berlin", f"{marker} My boss is Kim")
        with pytest.raises(error):
            s.remember_messages(lines, at=T1, infer=True, keep_turns=True)
        assert state(s) == before
        assert len(llm.requests) - sent == calls
        assert [r.memory.text for r in s.recall("my city", k=3, kind="fact")] == [
            "My city is Paris"
        ]
    assert store.audit("work")[-2].event == "extraction"  # only the first run's entry


@pytest.mark.parametrize(
    ("marker", "error", "match"),
    [
        ("#endless", ExtractorOutputError, "answered more than 1,048,576 bytes"),
        ("#flood", ExtractorOutputError, "does not fit the schema"),
        ("#echo-key", ExtractorUnavailableError, "HTTP 401: Incorrect API key provided"),
    ],
)
def test_a_hostile_endpoint_is_cut_off_and_never_shown_the_key(
    store: Store,
    llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
    marker: str,
    error: type[ExtractorError],
    match: str,
) -> None:
    key = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("HOSTILE_KEY", key)
    store.set_extractor("work", llm.spec(), api_key_env="HOSTILE_KEY")
    with store.enter(floor="office") as s:
        s.remember("My city is Paris", kind="fact")
        before = state(s)
        with pytest.raises(error, match=match) as caught:
            s.remember_messages(user(f"{marker} My city is Berlin"), infer=True)
        assert state(s) == before
    assert llm.requests[-1].authorization == f"Bearer {key}"
    for n in range(len(key) - 7):
        assert key[n : n + 8] not in str(caught.value)
    assert key not in json.dumps([e.detail for e in store.audit()])


@pytest.mark.parametrize("bad", ["sk-\u00e9t\u00e9", "sk-abc\nInjected: 1", "sk abc"])
def test_an_api_key_that_cannot_be_a_header_is_refused(
    store: Store, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    with pytest.raises(InvalidInputError, match="printable ASCII") as caught:
        store.set_extractor("work", llm.spec(), api_key=bad)
    assert bad not in str(caught.value)
    monkeypatch.setenv("BAD_KEY", bad)
    store.set_extractor("work", llm.spec(), api_key_env="BAD_KEY")
    with store.enter(floor="office") as s, pytest.raises(InvalidInputError) as caught:
        s.remember_messages(user("My city is Berlin"), infer=True)
    assert bad not in str(caught.value) and llm.requests == []
    with store.enter(floor="office") as s:
        assert s.count() == 0


@pytest.mark.parametrize("change", ["update", "forget"])
def test_a_memory_changed_by_another_writer_during_the_call_is_not_overwritten(
    store: Store, store_location: str, llm: FakeLLM, change: str
) -> None:
    store.set_extractor("work", llm.spec(timeout=60))
    with store.enter(floor="office") as s:
        paris = s.remember("My city is Paris", kind="fact")
        failure: list[BaseException] = []

        def extract() -> None:
            try:
                s.remember_messages(user("#sleep. My city is Berlin"), infer=True)
            except BaseException as e:  # handed to the test's thread
                failure.append(e)

        worker = threading.Thread(target=extract)
        worker.start()
        try:
            for _ in range(1000):  # until the call is in flight (10 s at most)
                if llm.requests:
                    break
                threading.Event().wait(0.01)
            assert llm.requests, "the extractor was never called"
            # Another process's writer changes the memory while the extractor decides.
            with Store.open(store_location) as other, other.enter(floor="office") as theirs:
                if change == "update":
                    theirs.update(paris.id, "My city is Lyon")
                else:
                    theirs.forget(paris.id)
        finally:
            llm.release.set()
            worker.join(30)
        assert not worker.is_alive() and len(failure) == 1
        # A conflict, not an upstream failure, and the same whether changed or forgotten.
        assert isinstance(failure[0], ExtractionConflictError)
        assert (failure[0].http_status, failure[0].memory_id) == (409, paris.id)
        texts = sorted(m.text for m in s.memories(limit=100).items)
        assert texts == (["My city is Lyon"] if change == "update" else [])
        if change == "update":
            lyon = s.get(paris.id)
            assert lyon.version == 2 and "valid_until" not in json.dumps(lyon.metadata)


def test_an_endpoint_that_is_down_changes_nothing(store: Store) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        store.set_extractor("work", f"openai:http://127.0.0.1:{port}/v1#model=m&timeout=5")
        with store.enter(floor="office") as s:
            s.remember("My city is Paris", kind="fact")
            before = state(s)
            with pytest.raises(ExtractorUnavailableError, match="unreachable"):
                s.remember_messages(user("My city is Berlin"), infer=True)
            assert state(s) == before


def test_an_update_of_an_id_not_shown_is_refused_alike(store: Store, llm: FakeLLM) -> None:
    with store.enter(floor="house") as h:
        theirs = h.remember("Home secret", kind="fact").id
    store.set_extractor("work", llm.spec(context=0))  # shows no existing memory at all
    messages = []
    with store.enter(floor="office") as s:
        mine = s.remember("My city is Paris", kind="fact").id  # this persona's, but not shown
        before = state(s)
        for target in (theirs, "m_neverexisted000000000", mine):
            with pytest.raises(ExtractorOutputError) as caught:
                s.remember_messages(user(f"#foreign={target} hi"), infer=True)
            messages.append(str(caught.value).replace(target, "ID"))
            assert state(s) == before
    assert len(set(messages)) == 1  # another persona's id reads like one that never existed
    with store.enter(floor="house") as h:
        assert h.get(theirs).version == 1


def test_no_extractor_no_key_and_bad_specs(
    store: Store, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.enter(floor="office") as s:
        with pytest.raises(NoExtractorError):
            s.remember_messages(user("My city is Paris"), infer=True)
        with pytest.raises(InvalidInputError):
            s.remember_messages(user("My city is Paris"), keep_turns=True)
        assert s.count() == 0
    store.set_extractor("work", llm.spec(), api_key_env="WORK_LLM_KEY")
    with store.enter(floor="office") as s, pytest.raises(MissingKeyError):
        s.remember_messages(user("My city is Paris"), infer=True)
    assert llm.requests == []
    monkeypatch.setenv("WORK_LLM_KEY", "sk-work-123")
    with store.enter(floor="office") as s:
        s.remember_messages(user("My city is Paris"), infer=True)
        assert s.extractor() is not None
    assert llm.requests[-1].authorization == "Bearer sk-work-123"
    assert store.set_extractor("work", "none") is None
    with store.enter(floor="office") as s:
        assert s.extractor() is None
    for bad in ("openai:ftp://x#model=m", "gpt4", "openai:http://h/v1", "ollama:http://h#x=1"):
        with pytest.raises(InvalidInputError):
            store.set_extractor("work", bad)
    with pytest.raises(InvalidInputError):
        store.set_extractor("work", llm.spec(), api_key_env="WORK KEY")
    with pytest.raises(InvalidInputError):
        store.set_extractor("work", "none", api_key="sk-x")


def test_spec_parsing() -> None:
    spec = parse_spec("ollama:http://127.0.0.1:11434/#model=llama3.1&timeout=2.5&concurrency=8")
    assert spec is not None
    assert (spec.protocol, spec.url, spec.model) == ("ollama", "http://127.0.0.1:11434", "llama3.1")
    assert (spec.timeout, spec.concurrency, spec.batch) == (2.5, 8, 20)
    assert parse_spec(spec.to_text()) == spec
    assert parse_spec(" none ") is None
    for bad in (
        "",
        "openai:https://user:pw@h/v1#model=m",
        "openai:https://h/v1?key=1#model=m",
        "openai:https://h/v1#model=m&timeout=0",
        "openai:https://h/v1#model=m&batch=x",
        "anthropic:https://h#model=m",
    ):
        with pytest.raises(InvalidInputError):
            parse_spec(bad)


# -- privacy ------------------------------------------------------------------------------------
def test_each_prompt_holds_only_its_own_personas_text(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two personas, two endpoints, the same kind of words: every prompt either endpoint got
    is scanned for the other persona's canaries and key."""
    servers = serve(), serve()
    work_llm, home_llm = (next(g) for g in servers)
    try:
        monkeypatch.setenv("WORK_KEY", "sk-work-canary")
        store.set_extractor("work", work_llm.spec(), api_key_env="WORK_KEY")
        store.set_extractor("home", home_llm.spec("ollama"), api_key="sk-home-canary")
        canaries = {"work": "WORKCANARY", "home": "HOMECANARY"}
        for floor, persona in (("office", "work"), ("house", "home")):
            with store.enter(floor=floor) as s:
                c = canaries[persona]
                s.remember(f"My city is {c}town", kind="fact")
                s.remember(f"The {c} plan is secret", kind="note")
        for round_ in range(2):
            for floor, persona in (("office", "work"), ("house", "home")):
                c = canaries[persona]
                with store.enter(floor=floor) as s:
                    s.remember_messages(
                        user(f"My city is {c}ville{round_}", f"The {c} plan is shared"),
                        at=T0,
                        infer=True,
                        keep_turns=True,
                    )
        for mine, theirs, server, key in (
            ("work", "home", work_llm, "sk-work-canary"),
            ("home", "work", home_llm, "sk-home-canary"),
        ):
            assert len(server.requests) == 2
            for request in server.requests:
                sent = json.dumps(request.body)
                assert canaries[mine] in sent
                assert canaries[theirs] not in sent
                assert request.authorization == f"Bearer {key}"
    finally:
        for g in servers:
            g.close()


def test_settings_are_sealed_with_the_persona(
    store_location: str, backend_name: str, llm: FakeLLM, tmp_path: Path
) -> None:
    store = Store.init(store_location)
    try:
        store.add_persona("work")
        store.add_persona("vault", sealed_with=Secret(passphrase="vault pass phrase"))
        store.add_floor("office", persona="work")
        store.add_floor("cellar", persona="vault")
        store.set_extractor("work", llm.spec(), api_key="sk-plain-canary")
        with pytest.raises(UnlockError):
            store.set_extractor("vault", llm.spec())
        secret = Secret(passphrase="vault pass phrase")
        store.set_extractor("vault", llm.spec(), secret=secret)
        with store.enter(floor="cellar", secret=secret) as v:
            settings = v.extractor()
            assert settings is not None and settings.spec.url == f"{llm.url}/v1"
        # Nothing readable at rest.
        meta = store._backend.get_meta()
        ids = {p.name: p.id for p in store.personas()}
        for value in (meta[meta_key(ids["work"])], meta[meta_key(ids["vault"])]):
            assert "sk-plain" not in value and "rules-1" not in value and "127.0.0.1" not in value
        if backend_name == "sqlite":
            raw = b"".join(p.read_bytes() for p in Path(store_location).rglob("*") if p.is_file())
            assert b"sk-plain-canary" not in raw and b"rules-1" not in raw
        # A blob moved to another persona does not open there.
        store._backend.set_meta(meta_key(ids["vault"]), meta[meta_key(ids["work"])])
        with store.enter(floor="cellar", secret=secret) as v, pytest.raises(IntegrityError):
            v.extractor()
        # Clean slate erases them with the persona; a new persona of that name has none.
        store.clean_slate("work", confirm="work")
        assert store._backend.get_meta().get(meta_key(ids["work"])) == ""
        store.add_persona("work")
        store.add_floor("desk", persona="work")
        with store.enter(floor="desk") as w:
            assert w.extractor() is None
    finally:
        store.close()


# -- the command line -----------------------------------------------------------------------------
def _cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    stdin: bytes = b"",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_sets_an_extractor_and_remembers_with_infer(
    store: Store,
    store_location: str,
    llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    s = ("--store", store_location)
    code, out, err = _cli(
        monkeypatch, capsys, *s, "persona", "set", "work", "--extractor", llm.spec(),
        "--api-key-stdin", "--json", stdin=b"sk-cli-canary\n",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == {"persona": "work", "extractor": llm.spec(), "api_key": "sealed"}
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps({"messages": user("My city is Paris", "My team is Blue")}))
    remember = (*s, "remember", "--floor", "office", "--file", str(chat), "--infer")
    code, out, err = _cli(monkeypatch, capsys, *remember, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["persona"] == "work" and len(report["added"]) == 2
    assert report["cost"]["calls"] == 1 and report["cost"]["prompt_tokens"] > 0
    assert llm.requests[-1].authorization == "Bearer sk-cli-canary"

    chat.write_text(json.dumps(user("I moved. My city is Rome.")))
    code, out, err = _cli(monkeypatch, capsys, *remember, "--keep-turns")
    assert code == 0, err
    assert "1 facts added, 0 updated, 1 superseded; 1 turns kept (1 call, " in out
    code, out, err = _cli(
        monkeypatch, capsys, *s, "recall", "--floor", "office", "city", "--kind", "fact",
        "--include-superseded",
    )  # fmt: skip
    assert code == 0, err
    assert "My city is Rome" in out and "superseded" in out

    # Failures: one line, a non-zero exit, nothing written.
    chat.write_text(json.dumps(user("#malformed. My city is Oslo")))
    with store.enter(floor="office") as w:
        before = state(w)
    code, out, err = _cli(monkeypatch, capsys, *remember)
    assert code == 12 and "Traceback" not in err
    assert err.splitlines()[-1] == "severance: error: the extractor's answer is not valid JSON"
    with store.enter(floor="office") as w:
        assert state(w) == before
    code, out, err = _cli(monkeypatch, capsys, *s, "remember", "--floor", "office", "x", "--infer")
    assert code == 2 and "--infer goes with --file" in err
    code, out, err = _cli(monkeypatch, capsys, *s, "persona", "set", "work", "--extractor", "gpt")
    assert code == 2 and "unknown extractor" in err
    code, out, err = _cli(monkeypatch, capsys, *s, "persona", "set", "work", "--extractor", "none")
    assert code == 0 and "LLM-free" in out
    code, out, err = _cli(monkeypatch, capsys, *remember)
    assert code == 12 and "has no extractor" in err


# -- HTTP -----------------------------------------------------------------------------------------
def test_http_extract_and_recall_with_history(store: Store, llm: FakeLLM) -> None:
    from fastapi.testclient import TestClient

    from severance.http import create_app
    from severance.passes import Passes

    token = Passes(store).issue("office").token
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(store, rate=None)) as client:
        body = {"messages": user("My city is Paris"), "at": T0.isoformat()}
        r = client.post("/v1/extract", json=body, headers=headers)
        assert r.status_code == 409 and r.json()["code"] == "no_extractor"
        store.set_extractor("work", llm.spec())
        r = client.post("/v1/extract", json=body, headers=headers)
        assert r.status_code == 200, r.text
        paris = r.json()["added"][0]["id"]
        body = {"messages": user("My city is Rome"), "at": T1.isoformat(), "keep_turns": True}
        r = client.post("/v1/extract", json=body, headers=headers)
        out = r.json()
        assert [m["id"] for m in out["superseded"]] == [paris] and len(out["episodes"]) == 1
        rome = out["added"][0]["id"]
        assert out["superseded"][0]["metadata"]["superseded_by"] == rome
        assert out["cost"]["calls"] == 1
        query = {"query": "my city", "kinds": ["fact"]}
        r = client.post("/v1/recall", json=query, headers=headers)
        assert [h["memory"]["id"] for h in r.json()["results"]] == [rome]
        r = client.post("/v1/recall", json={**query, "include_superseded": True}, headers=headers)
        assert {h["memory"]["id"] for h in r.json()["results"]} == {rome, paris}
        with store.enter(floor="office") as s:
            before = state(s)
        body = {"messages": user("#http500. My city is Oslo")}
        r = client.post("/v1/extract", json=body, headers=headers)
        assert r.status_code == 502 and r.json()["code"] == "extractor_unavailable"
        reader = Passes(store).issue("office", read_only=True).token
        sent = len(llm.requests)
        body = {"messages": user("My city is Oslo")}
        r = client.post("/v1/extract", json=body, headers={"Authorization": f"Bearer {reader}"})
        assert r.status_code == 403 and len(llm.requests) == sent
        with store.enter(floor="office") as s:
            assert state(s) == before


def test_cli_import_infer_keeps_each_persona_to_its_own_endpoint(
    store: Store,
    store_location: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = Path(__file__).parent / "fixtures" / "import" / "chatgpt" / "conversations.json"
    command = (
        "--store", store_location, "import", "--floor", "office", "chatgpt", str(export),
        "--route", "title~launch -> work", "--default", "home", "--infer", "--json",
    )  # fmt: skip
    servers = serve(), serve()
    work_llm, home_llm = (next(g) for g in servers)
    try:
        store.set_extractor("work", work_llm.spec())
        code, out, err = _cli(monkeypatch, capsys, *command)
        assert code == 12 and "'home' has no extractor" in err
        for floor in ("office", "house"):
            with store.enter(floor=floor) as s:
                assert s.count() == 0
        store.set_extractor("home", home_llm.spec("ollama"))
        code, out, err = _cli(monkeypatch, capsys, *command)
        assert code == 0, err
        reports = {r["persona"]: r for r in json.loads(out)}
        assert set(reports) == {"work", "home"}
        assert all(r["cost"]["calls"] >= 1 and r["episodes"] for r in reports.values())
        work_sent = " ".join(json.dumps(r.body) for r in work_llm.requests)
        home_sent = " ".join(json.dumps(r.body) for r in home_llm.requests)
        assert "Q3 launch" in work_sent and "tarte" not in work_sent
        assert "tarte" in home_sent and "Q3 launch" not in home_sent
        # Audited as an import too, as without --infer (counts, never content).
        imports = [(e.persona, e.detail) for e in store.audit() if e.event == "import"]
        assert imports == [
            ("work", {"importer": "chatgpt", "items": 1, "remembered": 3, "already_known": 0}),
            ("home", {"importer": "chatgpt", "items": 1, "remembered": 2, "already_known": 0}),
        ]
    finally:
        for g in servers:
            g.close()
