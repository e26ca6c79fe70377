"""Configuration rows written by anyone without the key are never obeyed (issue 18, items 1
and 4; issue 9 item 7). Every attack is raw SQL on the database — the SQLite file edited
directly, or statements on the PostgreSQL store's tables — and runs on both back-ends."""

from __future__ import annotations

import time

import pytest

from severance import (
    IntegrityError,
    PassError,
    SessionClosedError,
    Store,
    TamperedRecordError,
)
from severance.passes import Passes, hash_token
from tamper import RawDb


def rejected(store: Store, kind: str) -> list[str]:
    """Ids of the rows of ``kind`` that the audit log says were rejected."""
    return [
        e.detail["record"]
        for e in store.audit()
        if e.event == "record_rejected" and e.detail["kind"] == kind
    ]


def test_a_forged_pass_opens_nothing_and_is_reported(store: Store) -> None:
    passes = Passes(store)
    real = passes.issue("office")
    db = RawDb(store)
    floor_id, mac = db.select("passes", ["floor_id", "mac"], id=real.info.id)[0]
    token = "sev_" + "forged" * 7
    # Her own token's hash, and (for good measure) a copy of a real pass's floor id and MAC.
    db.insert(
        "passes",
        {
            "id": "ps_forged",
            "token_hash": hash_token(token),
            "floor": "office",
            "persona_id": store.persona("work").id,
            "created_at": time.time(),
            "read_only": False,
            "floor_id": floor_id,
            "mac": mac,
        },
    )
    with pytest.raises(PassError, match="not a valid pass"):
        passes.authenticate(token)
    assert passes.authenticate(real.token).floor == "office"  # the real one still works
    assert [p.id for p in passes.list()] == [real.info.id]
    assert rejected(store, "pass") == ["ps_forged"]
    assert [(p.kind, p.record_id) for p in store.check_records()] == [("pass", "ps_forged")]


def test_a_revoked_pass_cannot_be_revived_by_sql(store: Store) -> None:
    passes = Passes(store)
    issued = passes.issue("office")
    passes.revoke(issued.info.id)
    db = RawDb(store)
    db.update("passes", {"revoked_at": None}, id=issued.info.id)
    with pytest.raises(PassError):
        passes.authenticate(issued.token)
    assert rejected(store, "pass") == [issued.info.id]


def test_a_revoked_pass_put_back_from_an_older_row_is_diagnosed(store: Store) -> None:
    # The row as it was before revocation carries an authentic MAC: only the audit log,
    # which says it was revoked, gives the replay away.
    passes = Passes(store)
    issued = passes.issue("office")
    db = RawDb(store)
    columns = ["revoked_at", "mac"]
    before = dict(zip(columns, db.select("passes", columns, id=issued.info.id)[0], strict=True))
    passes.revoke(issued.info.id)
    db.update("passes", before, id=issued.info.id)
    problems = store.diagnose().records
    assert [(p.kind, p.record_id) for p in problems] == [("pass", issued.info.id)]
    assert "older row" in problems[0].reason


def test_a_removed_floor_put_back_from_its_older_row_is_diagnosed(store: Store) -> None:
    passes = Passes(store)
    issued = passes.issue("office")
    db = RawDb(store)
    columns = ["name", "position", "persona_id", "rule", "is_default", "floor_id", "mac"]
    old = dict(zip(columns, db.select("floors", columns, name="office")[0], strict=True))
    store.remove_floor("office")
    db.insert("floors", old)  # authentic, MAC and all: the floor and its pass are back
    assert passes.authenticate(issued.token).floor == "office"
    problems = store.diagnose().records
    assert [(p.kind, p.record_id) for p in problems] == [("floor", old["floor_id"])]


def test_a_pass_made_read_write_by_sql_is_refused(store: Store) -> None:
    passes = Passes(store)
    issued = passes.issue("office", read_only=True)
    RawDb(store).update("passes", {"read_only": False}, id=issued.info.id)
    with pytest.raises(PassError):
        passes.authenticate(issued.token)


def test_a_repointed_floor_routes_nothing(store: Store) -> None:
    with store.enter(floor="office") as s:
        s.remember("a work fact")
    RawDb(store).update("floors", {"persona_id": store.persona("work").id}, name="house")
    with pytest.raises(TamperedRecordError, match="house") as caught:
        store.enter(floor="house")
    assert caught.value.kind == "floor"
    # Not re-routed to the next floor either: routing refuses as a whole until it is fixed.
    with pytest.raises(TamperedRecordError):
        store.enter(floor="office")
    assert len(rejected(store, "floor")) == 1
    assert [p.kind for p in store.check_records()] == ["floor"]
    # The owner's way out: remove the floor (and add it again).
    store.remove_floor("house")
    store.add_floor("house", persona="home")
    with store.enter(floor="house") as s:
        assert s.persona == "home"
        assert s.memories().total == 0
    assert store.check_records() == []


def test_a_floor_inserted_by_sql_is_refused(store: Store) -> None:
    RawDb(store).insert(
        "floors",
        {
            "name": "attic",
            "position": 0,
            "persona_id": store.persona("work").id,
            "rule": "{}",
            "is_default": True,
            "floor_id": "f_forged",
        },
    )
    with pytest.raises(TamperedRecordError, match="attic"):
        store.enter(floor="attic")


def test_swapped_persona_rows_are_quarantined(store: Store) -> None:
    with store.enter(floor="house") as s:
        home = s.remember("home memory")
    db = RawDb(store)
    work, side = store.persona("work").id, store.persona("side").id
    # Swap the names of two personas: every floor now leads to the wrong one.
    db.update("personas", {"name": "tmp"}, id=work)
    db.update("personas", {"name": "work"}, id=side)
    db.update("personas", {"name": "side"}, id=work)
    with pytest.raises(TamperedRecordError) as caught:
        store.enter(floor="office")
    assert caught.value.kind == "persona"
    with pytest.raises(IntegrityError):
        store.enter(floor="studio")
    with store.enter(floor="house") as s:  # an untouched persona is unaffected
        assert s.get(home.id).text == "home memory"
    assert sorted(rejected(store, "persona")) == sorted([work, side])


def test_a_persona_key_swapped_by_sql_is_refused(store: Store) -> None:
    db = RawDb(store)
    (home_key,) = db.select("personas", ["wrapped_key"], id=store.persona("home").id)[0]
    db.update("personas", {"wrapped_key": home_key}, id=store.persona("work").id)
    with pytest.raises(TamperedRecordError):
        store.enter(floor="office")
    with pytest.raises(TamperedRecordError):
        Passes(store).issue("office")


def test_a_forged_setting_is_ignored_and_reported(store: Store) -> None:
    RawDb(store).update("meta", {"value": "st:someone-elses-model"}, key="embedder")
    with Store.open(store.location) as again:
        assert [(p.kind, p.record_id) for p in again.check_records()] == [("setting", "embedder")]
        assert again.embedder.name == store.embedder.name  # the forged model is not loaded


def test_a_forged_override_grant_is_not_obeyed(store: Store) -> None:
    db = RawDb(store)
    grant = {"key": f"override:{store.persona('work').id}", "value": repr(time.time() + 600)}
    db.insert("meta", grant)
    with Store.open(store.location) as again, pytest.raises(SessionClosedError):
        again.resume_override("work")


def test_a_voided_pass_stays_void_when_its_floor_comes_back(store: Store) -> None:
    # Issue 9 item 7: passes follow a floor by id, not by name.
    passes = Passes(store)
    issued = passes.issue("office")
    store.remove_floor("office")
    store.add_floor("office", persona="work", clients=["other-rules"])
    with pytest.raises(PassError, match="no longer matches"):
        passes.authenticate(issued.token)
    store.remove_floor("office")
    store.add_floor("office", persona="work")  # even with the very same rules
    with pytest.raises(PassError, match="no longer matches"):
        passes.authenticate(issued.token)
    assert passes.authenticate(passes.issue("office").token).floor == "office"


def test_a_running_server_notices_a_removed_floor_and_a_revoked_pass(store: Store) -> None:
    # The server's store and the CLI's store are two opens of one location.
    server = Passes(store)
    office, house = server.issue("office"), server.issue("house")
    assert server.authenticate(office.token).floor == "office"
    with Store.open(store.location) as cli:
        cli.remove_floor("office")
        Passes(cli).revoke(house.info.id)
    with pytest.raises(PassError):
        server.authenticate(office.token)
    with pytest.raises(PassError, match="revoked"):
        server.authenticate(house.token)


def test_a_store_without_signatures_is_signed_on_first_open_and_audited(store: Store) -> None:
    passes = Passes(store)
    issued = passes.issue("office")
    db = RawDb(store)
    # What a store made before signatures looks like: no MACs, no floor ids, no marker.
    db.update("personas", {"mac": b""})
    db.update("floors", {"mac": b"", "floor_id": ""})
    db.update("passes", {"mac": b"", "floor_id": ""})
    db.run(
        "DELETE FROM severance.meta WHERE key LIKE 'mac:%%' OR key = 'records_signed'"
        if db.postgres
        else "DELETE FROM meta WHERE key LIKE 'mac:%' OR key = 'records_signed'"
    )
    with Store.open(store.location) as again:
        assert Passes(again).authenticate(issued.token).floor == "office"
        assert again.check_records() == []
        signed = [e for e in again.audit() if e.event == "records_signed"]
        assert len(signed) == 1
        assert signed[0].detail["passes"] == 1
        with again.enter(floor="house") as s:
            assert s.persona == "home"


def test_indexed_vector_mode_forged_by_sql_is_not_obeyed(store: Store, backend_name: str) -> None:
    if backend_name != "postgres":
        pytest.skip("only PostgreSQL keeps vectors in the database")
    db = RawDb(store)
    work = store.persona("work").id
    # Tell the victim's client that its persona keeps plain vectors in the database.
    db.insert("vector_indexes", {"persona_id": work, "dimension": store.embedder.dimension})
    with store.enter(floor="office") as s:
        s.remember("a fact whose vector must stay sealed")
    assert db.select("memory_vectors", ["memory_id"], persona_id=work) == []
    assert store.persona("work").vectors == "sealed"
    assert ("vectors", work) in [(p.kind, p.record_id) for p in store.check_records()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_forged_pass_gets_401_from_the_running_server(store: Store) -> None:
    # Item 1 exactly: one INSERT of a token hash she chose, then /v1/recall on the victim's
    # own server. The server answers 401 and the victim's memory never leaves.
    httpx = pytest.importorskip("httpx")
    from severance.http import create_app

    with store.enter(floor="office") as s:
        s.remember("the victim's plaintext")
    app = create_app(store, rate=None)
    real = Passes(store).issue("office")
    db = RawDb(store)
    token = "sev_" + "forged" * 7
    db.insert(
        "passes",
        {
            "id": "ps_forged",
            "token_hash": hash_token(token),
            "floor": "office",
            "persona_id": store.persona("work").id,
            "created_at": time.time(),
            "read_only": False,
            "floor_id": db.select("passes", ["floor_id"], id=real.info.id)[0][0],
        },
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sev.test") as client:
        forged = {"Authorization": f"Bearer {token}"}
        r = await client.post("/v1/recall", json={"query": "plaintext"}, headers=forged)
        assert r.status_code == 401
        assert "plaintext" not in r.text
        r = await client.post("/v1/memories", json={"text": "planted"}, headers=forged)
        assert r.status_code == 401
        ok = {"Authorization": f"Bearer {real.token}"}
        r = await client.post("/v1/recall", json={"query": "plaintext"}, headers=ok)
        assert r.status_code == 200
    assert "ps_forged" in rejected(store, "pass")
