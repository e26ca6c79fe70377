"""Rollback and deletion detection through the anchor kept beside the key (issue 18 item 5).

Every attack is raw SQL on the database (tests/tamper.py), on both back-ends: the rows left
behind are all authentic, so only the anchor can tell that something is gone.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from severance import Store
from severance.cli import main
from severance.keys import default_key_dir
from severance.passes import Passes, hash_token
from tamper import RawDb


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def anchor_file(store: Store) -> Path:
    return default_key_dir() / f"{store.store_id}.anchor"


def reopen(store: Store) -> Store:
    location = store.location
    store.close()
    return Store.open(location)


def test_a_memory_deleted_by_sql_is_reported_by_id(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.enter(floor="office") as s:
        kept = s.remember("kept")
        doomed = s.remember("deleted behind the store's back")
    store = reopen(store)  # the anchor now knows both
    assert anchor_file(store).exists()
    RawDb(store).delete("memories", id=doomed.id)
    store = reopen(store)
    try:
        assert [(p.kind, p.record_id) for p in store.rollback_problems] == [("memory", doomed.id)]
        result = store.verify_audit()
        assert not result.ok
        assert result.missing == (f"memory:{doomed.id}",)
        assert any(e.event == "rollback_detected" for e in store.audit())
        with store.enter(floor="office") as s:
            assert [m.id for m in s.memories().items] == [kept.id]
        location = store.location
    finally:
        store.close()
    code, _, err = run_cli(capsys, "--store", location, "audit", "verify")
    assert code == 1 and doomed.id in err
    code, out, err = run_cli(capsys, "--store", location, "doctor", "--json")
    assert code == 1
    problems = json.loads(out)["problems"]
    assert [(p["kind"], p["id"]) for p in problems] == [("memory", doomed.id)]
    assert "restore" in problems[0]["advice"]
    # It stays reported (closing the store does not paper over it) until accepted.
    assert run_cli(capsys, "--store", location, "audit", "verify")[0] == 1
    code, _, _ = run_cli(capsys, "--store", location, "doctor", "--accept")
    assert code == 0
    assert run_cli(capsys, "--store", location, "audit", "verify")[0] == 0
    assert run_cli(capsys, "--store", location, "doctor")[0] == 0


def test_forgetting_through_severance_is_not_a_deletion(store: Store) -> None:
    with store.enter(floor="office") as s:
        ids = [s.remember(f"fact {i}").id for i in range(40)]
    store = reopen(store)
    location = store.location
    # Another open (a server, say) forgets, and snapshots its index.
    with Store.open(location) as other, other.enter(floor="office") as s:
        for memory_id in ids[:30]:
            s.forget(memory_id)
        s.recall("fact")  # builds the index, so closing may write a snapshot
    try:
        assert store.verify_audit().ok
    finally:
        store.close()
    with Store.open(location) as again:
        assert again.rollback_problems == []
        assert again.verify_audit().ok


def test_a_cut_audit_tail_with_an_older_head_is_reported(store: Store) -> None:
    db = RawDb(store)
    (head,) = db.select("meta", ["value"], key="audit_head")[0]
    cut_after = int(head.split(":")[0])
    store.add_persona("later")
    store.add_floor("later-floor", persona="later")
    store = reopen(store)
    last = store.audit()[-1].seq
    assert last > cut_after
    # The old attack: delete the newer entries and put the older head record back.
    db.run(
        "DELETE FROM severance.audit WHERE store_id = %s AND seq > %s"
        if db.postgres
        else "DELETE FROM audit WHERE seq > ?",
        (db.store_id, cut_after) if db.postgres else (cut_after,),
    )
    db.update("meta", {"value": head}, key="audit_head")
    with Store.open(store.location) as again:
        assert again._audit.verify().ok  # the chain alone cannot tell
        # Found on open, by seq (and audited: that entry takes the next seq itself).
        gap = again.rollback_problems[0]
        assert (gap.kind, gap.record_id) == ("audit", f"{cut_after + 1}-{last}")
        result = again.verify_audit()
        assert not result.ok
        assert result.missing[0].startswith("audit:")
    store.close()


def test_removing_the_signature_marker_adopts_nothing(store: Store) -> None:
    store = reopen(store)  # the anchor knows the store is signed
    db = RawDb(store)
    token = "sev_" + "forged" * 7
    db.insert(
        "passes",
        {
            "id": "ps_forged",
            "token_hash": hash_token(token),
            "floor": "office",
            "persona_id": store.persona("work").id,
            "created_at": 1.0,
            "read_only": False,
        },
    )
    db.delete("meta", key="records_signed")
    db.delete("meta", key="mac:records_signed")
    with Store.open(store.location) as again:
        with pytest.raises(Exception, match="not a valid pass"):
            Passes(again).authenticate(token)
        assert ("store", "records_signed") in [(p.kind, p.record_id) for p in again.check_records()]
    store.close()


def test_an_edited_anchor_is_reported(store: Store) -> None:
    store = reopen(store)
    path = anchor_file(store)
    data = json.loads(path.read_text())
    data["audit"]["seq"] = 1
    path.write_text(json.dumps(data))
    store = reopen(store)
    try:
        assert [p.kind for p in store.rollback_problems] == ["anchor"]
    finally:
        store.close()


def _churn(location: str, floor: str, rounds: int) -> None:
    for i in range(rounds):
        with Store.open(location) as store, store.enter(floor=floor) as s:
            s.remember(f"{floor} {i}")


def test_processes_moving_the_anchor_together_leave_it_whole(store: Store) -> None:
    location = store.location
    store.close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_churn, args=(location, f, 4)) for f in ("office", "house")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with Store.open(location) as again:
        assert again.rollback_problems == []
        assert again.verify_audit().ok
    with Store.open(location) as again:
        anchored = json.loads(anchor_file(again).read_text())["personas"]
        assert anchored[again.persona("work").id]["count"] == 4
        assert anchored[again.persona("home").id]["count"] == 4
