"""The audit log: an append-only HMAC chain that names the first bad entry when tampered with.

Tampering is done the way an attacker with the files would do it: raw ``sqlite3`` statements on
``store.db`` (a copy of one long random history per test), then ``store.verify_audit()`` and
``severance audit verify`` are asked.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

import severance
from severance.cli import main
from severance.crossings import Selection
from severance.store import MAX_OVERRIDE_MINUTES

WORDS = ["budget", "garden", "launch", "recipe", "contract", "holiday", "deploy", "dentist"]


def build_history(store: severance.Store, rng: random.Random, steps: int) -> list[str]:
    """Many enters and exits, overrides, reintegrations, persona and floor changes, exports.

    Every memory text, tag, metadata value and query holds a ``canary`` marker; returns them.
    """
    floors = {"work": "office", "home": "house", "side": "studio"}
    canaries: list[str] = []
    ops = ["session"] * 4 + ["override", "reintegrate", "persona", "floor", "export"]
    for step in range(steps):
        op = rng.choice(ops) if step > 2 else "session"
        persona = rng.choice(sorted(floors))
        marks = [f"canary-text-{step}", f"canarytag{step}", f"canary-meta-{step}"]
        if op == "session":
            with store.enter(floor=floors[persona]) as s:
                s.remember(
                    f"{marks[0]} {rng.choice(WORDS)} {rng.choice(WORDS)}",
                    tags=[marks[1]],
                    metadata={"note": marks[2]},
                )
                s.recall(f"canary-query-{step} {rng.choice(WORDS)}")
            canaries += [*marks, f"canary-query-{step}"]
        elif op == "override":
            minutes = rng.randint(1, MAX_OVERRIDE_MINUTES)
            with store.override(persona, reason=f"reason {step}", minutes=minutes) as s:
                s.count()
        elif op == "reintegrate":
            into = rng.choice(sorted(set(floors) - {persona}))
            store.reintegrate(
                persona,
                into,
                select=Selection(query=f"canary-query-{step} {rng.choice(WORDS)}", limit=2),
                mode=rng.choice(["copy", "move"]),
            )
            canaries.append(f"canary-query-{step}")
        elif op == "persona":
            name = f"extra{step}"
            store.add_persona(name)
            store.add_floor(f"floor{step}", persona=name)
            floors[name] = f"floor{step}"
        elif op == "floor":
            store.add_floor(f"spare{step}", persona=persona)
            store.remove_floor(f"spare{step}")
        else:
            with store.enter(floor=floors[persona]) as s:
                s.export()
    return canaries


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


# -- a long random history verifies --------------------------------------------------------------
def test_a_long_random_history_verifies(store: severance.Store) -> None:
    build_history(store, random.Random(20240603), steps=40)
    result = store.verify_audit()
    entries = store.audit()
    assert result.ok, result
    assert (result.entries, result.first_bad_seq, result.reason) == (len(entries), None, None)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    events = {e.event for e in entries}
    assert {"store_created", "persona_added", "floor_added", "enter", "exit"} <= events
    assert {"override", "reintegrated_into", "reintegrated_from", "export"} <= events
    assert result.to_dict()["ok"] is True


def test_no_audit_entry_holds_memory_content(
    store: severance.Store,
    store_location: str,
    backend_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canaries = build_history(store, random.Random(7), steps=25)
    assert canaries
    dumped = json.dumps([e.to_dict() for e in store.audit()])
    assert "canary" not in dumped
    code, out, _ = run_cli(capsys, "--store", store_location, "audit", "show", "--json")
    assert code == 0 and json.loads(out) and "canary" not in out
    code, out, _ = run_cli(capsys, "--store", store_location, "audit", "show")
    assert code == 0 and "override" in out and "canary" not in out
    if backend_name == "sqlite":
        with closing(sqlite3.connect(Path(store_location) / "store.db")) as db:
            raw = repr(db.execute("SELECT * FROM audit").fetchall())
        assert "canary" not in raw


def test_a_session_reads_only_the_entries_about_its_own_persona(store: severance.Store) -> None:
    build_history(store, random.Random(11), steps=20)
    everyone = store.audit()
    for persona, floor in (("work", "office"), ("home", "house"), ("side", "studio")):
        with store.enter(floor=floor) as s:
            own = s.audit()
            assert own == store.audit(persona)
        persona_id = store.persona(persona).id
        assert own and all(e.persona_id == persona_id for e in own)
        assert all(e.persona == persona for e in own)
        others = [e for e in everyone if e.persona_id not in (None, persona_id)]
        assert others and not {e.seq for e in others} & {e.seq for e in own}
        assert own[-1].event == "enter"  # this very session's wake is in its own trail


def test_the_cli_shows_one_personas_entries(
    store: severance.Store, store_location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build_history(store, random.Random(5), steps=10)
    code, out, _ = run_cli(
        capsys, "--store", store_location, "audit", "show", "--persona", "home", "--json"
    )
    assert code == 0
    shown = json.loads(out)
    assert shown == [e.to_dict() for e in store.audit("home")]
    assert {e["persona"] for e in shown} == {"home"}


# -- tampering with the raw file -----------------------------------------------------------------
@dataclass(frozen=True)
class History:
    location: Path
    entries: int


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> History:
    """One long random history on SQLite, copied afresh for every tampering test."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("audit-home")
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        for name in [n for n in os.environ if n.startswith("SEVERANCE_")]:
            mp.delenv(name)
        location = tmp_path_factory.mktemp("audit") / "store"
        with severance.Store.init(location, key_file=home / "master.key") as store:
            for persona, floor in (("work", "office"), ("home", "house"), ("side", "studio")):
                store.add_persona(persona)
                store.add_floor(floor, persona=persona)
            build_history(store, random.Random(99), steps=40)
            result = store.verify_audit()
        assert result.ok and result.entries > 60
        return History(location, result.entries)


@pytest.fixture
def copy(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> History:
    if backend_name != "sqlite":
        pytest.skip("tampers with the SQLite file")
    pristine: History = request.getfixturevalue("pristine")
    target = tmp_path / "store"
    shutil.copytree(pristine.location, target)
    return History(target, pristine.entries)


Tamper = Callable[[sqlite3.Connection, int, int], int]
COLUMNS = "seq, at, event, persona_id, persona, detail, prev_hash, hash"


def row(db: sqlite3.Connection, seq: int) -> tuple[object, ...]:
    found: tuple[object, ...] = db.execute(
        f"SELECT {COLUMNS} FROM audit WHERE seq = ?", (seq,)
    ).fetchone()
    return found


def flip(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


def edit(column: str, change: Callable[[object], object], which: str = "middle") -> Tamper:
    def tamper(db: sqlite3.Connection, n: int, k: int) -> int:
        target = n if which == "last" else k
        (old,) = db.execute(f"SELECT {column} FROM audit WHERE seq = ?", (target,)).fetchone()
        new = change(old)
        assert new != old
        db.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", (new, target))
        return target

    return tamper


def forged_detail(old: object) -> str:
    return json.dumps({**json.loads(str(old)), "forged": 1}, sort_keys=True, separators=(",", ":"))


def delete(which: str) -> Tamper:
    def tamper(db: sqlite3.Connection, n: int, k: int) -> int:
        if which == "middle":
            db.execute("DELETE FROM audit WHERE seq = ?", (k,))
            return k + 1  # the first entry out of place: it should have been k
        if which == "first":
            db.execute("DELETE FROM audit WHERE seq = 1")
            return 2
        if which == "last":
            db.execute("DELETE FROM audit WHERE seq = ?", (n,))
            return n  # the head record still says n
        db.execute("DELETE FROM audit WHERE seq >= ?", (n - 1,))  # the last two
        return n - 1

    return tamper


def shift_up_from(db: sqlite3.Connection, k: int) -> None:
    """Renumber entries k.. to k+1.. (through negatives, to keep seq unique meanwhile)."""
    db.execute("UPDATE audit SET seq = -(seq + 1) WHERE seq >= ?", (k,))
    db.execute("UPDATE audit SET seq = -seq WHERE seq < 0")


def insert(which: str) -> Tamper:
    def tamper(db: sqlite3.Connection, n: int, k: int) -> int:
        if which == "end":
            (_, at, _, pid, persona, _, _, last_hash) = row(db, n)
            db.execute(
                "INSERT INTO audit VALUES (?, ?, 'exit', ?, ?, '{}', ?, ?)",
                (n + 1, float(str(at)) + 1, pid, persona, last_hash, "ab" * 32),
            )
            return n + 1
        if which == "replay":  # a genuine entry copied to the end, relinked
            (_, at, event, pid, persona, detail, _, h) = row(db, k)
            db.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (n + 1, at, event, pid, persona, detail, row(db, n)[7], h),
            )
            return n + 1
        # A forged entry in the middle, linked to the one before it.
        (_, at, _, pid, persona, _, _, prev) = row(db, k - 1)
        shift_up_from(db, k)
        db.execute(
            "INSERT INTO audit VALUES (?, ?, 'exit', ?, ?, '{}', ?, ?)",
            (k, at, pid, persona, prev, "cd" * 32),
        )
        return k

    return tamper


def swap(distance: int) -> Tamper:
    """Exchange two entries' contents, keeping their places: a reordering."""

    def tamper(db: sqlite3.Connection, n: int, k: int) -> int:
        first, second = k - distance, k
        a, b = row(db, first), row(db, second)
        for seq, values in ((first, b), (second, a)):
            db.execute(
                "UPDATE audit SET at = ?, event = ?, persona_id = ?, persona = ?, detail = ?,"
                " prev_hash = ?, hash = ? WHERE seq = ?",
                (*values[1:], seq),
            )
        return first

    return tamper


def swap_seq(db: sqlite3.Connection, n: int, k: int) -> int:
    """The same reordering done by exchanging sequence numbers."""
    db.execute("UPDATE audit SET seq = -1 WHERE seq = ?", (k,))
    db.execute("UPDATE audit SET seq = ? WHERE seq = ?", (k, k + 1))
    db.execute("UPDATE audit SET seq = ? WHERE seq = -1", (k + 1,))
    return k


TAMPERS: dict[str, Tamper] = {
    "edit-at": edit("at", lambda v: float(str(v)) + 0.5),
    "edit-event": edit("event", lambda v: "exit" if v != "exit" else "enter"),
    "edit-persona": edit("persona", lambda v: "home" if v != "home" else "work"),
    "edit-persona_id": edit("persona_id", lambda v: "p_" + "0" * 20),
    "edit-detail": edit("detail", forged_detail),
    "edit-detail-of-last": edit("detail", forged_detail, which="last"),
    "edit-hash": edit("hash", lambda v: flip(str(v))),
    "edit-hash-of-last": edit("hash", lambda v: flip(str(v)), which="last"),
    "edit-prev_hash": edit("prev_hash", lambda v: flip(str(v))),
    "delete-middle": delete("middle"),
    "delete-first": delete("first"),
    "delete-last": delete("last"),
    "delete-last-two": delete("last-two"),
    "insert-forged-at-end": insert("end"),
    "insert-replayed-at-end": insert("replay"),
    "insert-forged-in-middle": insert("middle"),
    "swap-adjacent": swap(1),
    "swap-distant": swap(17),
    "swap-seq": swap_seq,
}


@pytest.mark.parametrize("name", TAMPERS)
def test_any_single_tampering_is_detected_and_named(
    copy: History, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    k = copy.entries // 2
    with closing(sqlite3.connect(copy.location / "store.db", isolation_level=None)) as db:
        expected = TAMPERS[name](db, copy.entries, k)

    with severance.Store.open(copy.location) as store:
        result = store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == expected, result
    assert result.reason

    code, out, err = run_cli(capsys, "--store", str(copy.location), "audit", "verify")
    assert code == 1
    assert f"audit chain BROKEN at entry {expected}:" in err and out == ""
    code, out, _ = run_cli(capsys, "--store", str(copy.location), "audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["first_bad_seq"] == expected


def test_a_missing_or_forged_head_record_is_detected(
    copy: History, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = copy.location / "store.db"
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        (head,) = db.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
        seq, digest, mac = head.split(":")
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'audit_head'",
            (f"{int(seq) + 1}:{digest}:{mac}",),
        )
    with severance.Store.open(copy.location) as store:
        assert not store.verify_audit().ok
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("DELETE FROM meta WHERE key = 'audit_head'")
    with severance.Store.open(copy.location) as store:
        assert not store.verify_audit().ok
    assert run_cli(capsys, "--store", str(copy.location), "audit", "verify")[0] == 1


def test_an_intact_chain_verifies_from_the_cli(
    copy: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "--store", str(copy.location), "audit", "verify")
    assert (code, err) == (0, "")
    assert out.strip() == f"audit chain intact: {copy.entries} entries"
    code, out, _ = run_cli(capsys, "--store", str(copy.location), "audit", "verify", "--json")
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "entries": copy.entries,
        "first_bad_seq": None,
        "reason": None,
        "missing": [],
    }


def test_the_chain_goes_on_verifying_after_more_history(copy: History) -> None:
    with severance.Store.open(copy.location) as store:
        build_history(store, random.Random(3), steps=8)
        store.rotate_key()
        build_history(store, random.Random(4), steps=4)
        result = store.verify_audit()
    assert result.ok and result.entries > copy.entries
