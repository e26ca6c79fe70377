"""Poison input (issue 9, finding 8): nothing that is stored can break a persona.

Deeply nested metadata, lone surrogates in any string (a JSON ``\\ud800`` escape parses into a
Python ``str`` no UTF-8 output can carry), non-finite numbers and huge integers are refused with
a 4xx problem (HTTP) or :class:`InvalidInputError` (Python) *before* anything is written. The
HTTP API is fuzzed with schemathesis cases whose bodies are replaced by hostile values; after
every example, listing, recall, export and ``get`` of every stored memory still work, through
the Python API and over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import severance
from severance import InvalidInputError
from severance.http import create_app
from severance.passes import Passes
from severance.validate import MAX_METADATA_DEPTH

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
#: Strings that are mostly ordinary, often hold a lone surrogate.
HOSTILE_TEXT = st.one_of(
    st.text(min_size=1, max_size=12),
    st.builds(
        lambda a, s, b: a + s + b,
        st.text(max_size=5),
        SURROGATES,
        st.text(max_size=5),
    ),
)


def nested(depth: int, leaf: Any, as_list: bool) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


HOSTILE_VALUE = st.one_of(
    HOSTILE_TEXT,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.just(10**4400),  # over Python's int-to-text limit
    st.builds(nested, st.integers(1, 400), HOSTILE_TEXT, st.booleans()),
)
HOSTILE_METADATA = st.dictionaries(HOSTILE_TEXT, HOSTILE_VALUE, min_size=1, max_size=3)


def body_json(body: Any) -> bytes:
    """JSON as a client would send it (``\\uXXXX`` escapes for surrogates, ``NaN`` literals
    as Python's encoder writes them); for a value even that cannot encode (an integer over
    Python's digit limit), a body nested far deeper than any parser allows instead."""
    try:
        return json.dumps(body).encode()
    except (ValueError, RecursionError):
        return b'{"text": "unencodable", "metadata": ' + b"[" * 3000 + b"]" * 3000 + b"}"


# -- the Python API ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "metadata",
    [
        nested(MAX_METADATA_DEPTH, 1, False),
        nested(256, 1, False),
        nested(300, "x", True),
        {"\ud800": 1},
        {"a": "b\udfff"},
        {"a": [1, {"b": "\ud83d"}]},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": 10**4400},
        {"a": {1, 2}},
        {1: "int key"},
    ],
)
def test_poison_metadata_is_refused_before_any_write(
    store: severance.Store, metadata: dict[Any, Any]
) -> None:
    with store.enter(floor="office") as s:
        with pytest.raises(InvalidInputError):
            s.remember("x", metadata=metadata)
        kept = s.remember("kept")
        with pytest.raises(InvalidInputError):
            s.update(kept.id, metadata=metadata)
        with pytest.raises(InvalidInputError):
            s.remember_many(["fine", {"text": "poisoned", "metadata": metadata}])
        assert [m.text for m in s.export()] == ["kept"]  # the valid one of the batch too
        assert s.get(kept.id).version == 1


def test_metadata_at_the_depth_limit_is_stored_and_reads_back(store: severance.Store) -> None:
    deepest = nested(MAX_METADATA_DEPTH - 1, "leaf", False)
    with store.enter(floor="office") as s:
        m = s.remember("deep but legal", metadata=deepest)
        assert s.get(m.id).metadata == deepest


@pytest.mark.parametrize("field", ["text", "tags", "source", "query", "kind", "id"])
def test_lone_surrogates_are_refused_in_every_string(store: severance.Store, field: str) -> None:
    bad = "note \ud800 here"
    with store.enter(floor="office") as s:
        with pytest.raises(InvalidInputError):
            if field == "text":
                s.remember(bad)
            elif field == "tags":
                s.remember("x", tags=[bad])
            elif field == "source":
                s.remember("x", source=bad)
            elif field == "kind":
                s.remember("x", kind=bad)
            elif field == "query":
                s.recall(bad)
            else:
                s.get("m_\udc80")
        assert s.count() == 0


# -- the HTTP API, fuzzed ------------------------------------------------------------------------
def test_http_fuzz_with_hostile_bodies_leaves_the_persona_readable(
    store: severance.Store,
) -> None:
    app = create_app(store, rate=None)
    token = Passes(store).issue("office").token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with store.enter(floor="office") as s:
        first = s.remember("A memory for the update operations to aim at", tags=["t"])
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    writes = {
        ("POST", "/v1/memories"),
        ("POST", "/v1/memories/batch"),
        ("PATCH", "/v1/memories/{memory_id}"),
    }
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if (op.method.upper(), op.path) in writes
    ]
    assert len(operations) == 3
    statuses: list[int] = []
    client = TestClient(app, raise_server_exceptions=False)

    for operation in operations:

        @given(case=operation.as_strategy(), metadata=HOSTILE_METADATA, text=HOSTILE_TEXT)
        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any, metadata: dict[str, Any], text: str) -> None:
            operation = case.operation
            body = case.body if isinstance(case.body, dict) else {}
            hostile = {**body, "text": text, "metadata": metadata}
            if operation.path.endswith("/batch"):
                hostile = {"memories": [hostile, {"text": "a valid neighbour"}]}
            path = operation.path.replace("{memory_id}", first.id)
            r = client.request(
                operation.method.upper(), path, content=body_json(hostile), headers=headers
            )
            statuses.append(r.status_code)
            assert r.status_code < 500, r.text
            assert "Traceback" not in r.text

        check()

    assert any(400 <= s < 500 for s in statuses)
    # Afterwards the persona is whole: every interface reads every stored memory.
    listed = client.get("/v1/memories?limit=1000", headers=headers)
    assert listed.status_code == 200, listed.text
    ids = [m["id"] for m in listed.json()["items"]]
    for memory_id in ids:
        assert client.get(f"/v1/memories/{memory_id}", headers=headers).status_code == 200
    recalled = client.post("/v1/recall", json={"query": "memory"}, headers=headers)
    assert recalled.status_code == 200, recalled.text
    with store.enter(floor="office") as s:
        exported = s.export()
        assert sorted(m.id for m in exported) == sorted(ids)
        for m in exported:  # encodable, as any export file or terminal needs
            json.dumps(m.to_dict(), ensure_ascii=False).encode("utf-8")
        assert s.quarantined() == []
