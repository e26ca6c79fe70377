"""Passes: issue, list, revoke, authenticate; only hashes stored; the CLI group."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

import severance
from severance import FloorNotFoundError, InvalidInputError, Store
from severance.backends.base import PassRow
from severance.backends.sqlite import MIGRATIONS
from severance.cli import main
from severance.keys import Secret
from severance.passes import (
    TOKEN_PREFIX,
    PassError,
    Passes,
    PassNotFoundError,
    hash_token,
    parse_duration,
)


@pytest.fixture
def passes(store: Store) -> Passes:
    return Passes(store)


def test_issue_gives_a_token_for_one_floor(passes: Passes, store: Store) -> None:
    issued = passes.issue("office", label="laptop")
    assert issued.token.startswith(TOKEN_PREFIX)
    assert len(issued.token) == len(TOKEN_PREFIX) + 43  # 32 bytes, URL-safe base64, unpadded
    info = issued.info
    assert (info.floor, info.persona, info.read_only, info.label) == (
        "office",
        "work",
        False,
        "laptop",
    )
    assert info.status == "active" and info.expires_at is None and info.revoked_at is None
    grant = passes.authenticate(issued.token)
    assert grant.floor == "office"
    assert grant.persona_id == store.persona("work").id
    assert grant.pass_id == info.id and not grant.read_only


def test_tokens_are_random_and_only_their_hash_is_stored(
    passes: Passes, store: Store, store_location: str, backend_name: str
) -> None:
    tokens = {passes.issue("office").token for _ in range(20)}
    assert len(tokens) == 20
    rows = store._backend.passes()
    assert {r.token_hash for r in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    if backend_name == "sqlite":
        store.close()
        blob = b"".join(p.read_bytes() for p in Path(store_location).iterdir() if p.is_file())
        for token in tokens:
            assert token.encode() not in blob
            assert token[len(TOKEN_PREFIX) :].encode() not in blob


@pytest.mark.parametrize(
    "token",
    [None, "", "sev_", "sev_nope", "Bearer sev_x", "x" * 5000, "sev_" + "A" * 43, "s\udcffv_"],
)
def test_a_token_that_is_no_pass_opens_nothing(passes: Passes, token: str | None) -> None:
    passes.issue("office")
    with pytest.raises(PassError):
        passes.authenticate(token)


def test_a_revoked_pass_stops_at_once_and_revoking_twice_is_harmless(passes: Passes) -> None:
    issued = passes.issue("house")
    passes.authenticate(issued.token)
    info = passes.revoke(issued.info.id)
    assert info.status == "revoked" and info.revoked_at is not None
    with pytest.raises(PassError, match="revoked"):
        passes.authenticate(issued.token)
    assert passes.revoke(issued.info.id).revoked_at == info.revoked_at
    with pytest.raises(PassNotFoundError):
        passes.revoke("ps_doesnotexist")


def test_an_expired_pass_opens_nothing(passes: Passes, store: Store) -> None:
    token = TOKEN_PREFIX + "expired-token-for-the-test"
    now = time.time()
    store._backend.insert_pass(
        PassRow(
            "ps_expired",
            hash_token(token),
            "office",
            store.persona("work").id,
            now - 100,
            now - 1,
            False,
            None,
            None,
            floor_id=next(f.id for f in store._backend.floors() if f.name == "office"),
        )
    )
    with pytest.raises(PassError, match="expired"):
        passes.authenticate(token)
    assert [p.status for p in passes.list()] == ["expired"]
    short = passes.issue("office", expires_in=timedelta(days=30))
    assert short.info.expires_at is not None
    assert 29.9 * 86400 < short.info.expires_at.timestamp() - now < 30.1 * 86400
    passes.authenticate(short.token)


def test_a_pass_dies_with_its_floor_and_never_follows_it_to_another_persona(
    passes: Passes, store: Store
) -> None:
    issued = passes.issue("office")
    store.remove_floor("office")
    with pytest.raises(PassError, match="floor"):
        passes.authenticate(issued.token)
    # Same floor name, now waking another persona: the old pass must not open it.
    store.add_floor("office", persona="home")
    with pytest.raises(PassError, match="floor"):
        passes.authenticate(issued.token)


def test_clean_slate_deletes_the_personas_passes(passes: Passes, store: Store) -> None:
    issued = passes.issue("studio")
    kept = passes.issue("office")
    store.clean_slate("side", confirm="side")
    assert [p.id for p in passes.list()] == [kept.info.id]
    with pytest.raises(PassError):
        passes.authenticate(issued.token)


def test_read_only_is_carried(passes: Passes) -> None:
    issued = passes.issue("office", read_only=True)
    assert passes.authenticate(issued.token).read_only


def test_issue_checks_its_input(passes: Passes, store: Store, tmp_path: Path) -> None:
    with pytest.raises(FloorNotFoundError):
        passes.issue("nowhere")
    with pytest.raises(InvalidInputError):
        passes.issue("office", expires_in=timedelta(0))
    with pytest.raises(InvalidInputError):
        passes.issue("office", expires_in=timedelta(days=100_000))
    with pytest.raises(InvalidInputError):
        passes.issue("office", label="x" * 201)
    store.add_persona("vault", sealed_with=Secret(key_file=str(tmp_path / "vault.key")))
    store.add_floor("safe", persona="vault")
    with pytest.raises(InvalidInputError, match="sealed"):
        passes.issue("safe")
    assert passes.list() == []


def test_issue_and_revoke_are_audited_without_the_token(passes: Passes, store: Store) -> None:
    issued = passes.issue("office", read_only=True)
    passes.revoke(issued.info.id)
    entries = store.audit("work")
    events = {e.event: e for e in entries}
    assert events["pass_issued"].detail == {
        "pass_id": issued.info.id,
        "floor": "office",
        "read_only": True,
        "expires_at": None,
    }
    assert events["pass_revoked"].detail == {"pass_id": issued.info.id, "floor": "office"}
    dump = json.dumps([e.to_dict() for e in store.audit()])
    assert issued.token not in dump and hash_token(issued.token) not in dump
    assert store.verify_audit().ok


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("90m", 5400),
        ("2w", 14 * 86400),
        ("1d12h", 129600),
        (" 1d 12h ", 129600),
        ("45s", 45),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "0d", "1y", "1d x", "soon"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_duration(text)


def test_an_older_store_gains_the_passes_table(tmp_path: Path) -> None:
    location = tmp_path / "old"
    severance.Store.init(location).close()
    with closing(sqlite3.connect(location / "store.db")) as db:
        # Back to the version-1 schema: no passes, no record MACs, no floor ids.
        db.execute("DROP TABLE passes")
        db.execute("ALTER TABLE personas DROP COLUMN mac")
        db.execute("ALTER TABLE floors DROP COLUMN floor_id")
        db.execute("ALTER TABLE floors DROP COLUMN mac")
        db.execute("PRAGMA user_version = 1")
        db.commit()
    with severance.Store.open(location) as store:
        store.add_persona("work")
        store.add_floor("office", persona="work")
        issued = Passes(store).issue("office")
        assert Passes(store).authenticate(issued.token).floor == "office"
        assert store._backend.schema_version() == len(MIGRATIONS)


# -- the CLI ---------------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_issue_list_revoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    location = str(tmp_path / "cli-store")
    with severance.Store.init(location) as store:
        store.add_persona("work")
        store.add_floor("office", persona="work")
    s = ("--store", location)
    code, out, err = _cli(capsys, *s, "pass", "issue", "--floor", "office", "--expires", "30d")
    assert code == 0
    token = out.strip()
    assert token.startswith(TOKEN_PREFIX) and "\n" not in token
    assert "office" in err and "cannot be shown again" in err
    code, out, _ = _cli(
        capsys,
        *s,
        "pass",
        "issue",
        "--floor",
        "office",
        "--read-only",
        "--label",
        "phone",
        "--json",
    )
    assert code == 0
    issued = json.loads(out)
    assert issued["pass"]["read_only"] and issued["pass"]["label"] == "phone"
    code, out, _ = _cli(capsys, *s, "pass", "list", "--json")
    listed = json.loads(out)
    assert [p["status"] for p in listed] == ["active", "active"]
    assert token not in out and issued["token"] not in out
    code, out, _ = _cli(capsys, *s, "pass", "list")
    assert code == 0 and "read-only" in out and "phone" in out and token not in out
    code, out, _ = _cli(capsys, *s, "pass", "revoke", issued["pass"]["id"])
    assert code == 0 and "Revoked" in out
    with severance.Store.open(location) as store:
        with pytest.raises(PassError):
            Passes(store).authenticate(issued["token"])
        Passes(store).authenticate(token)
    code, _, err = _cli(capsys, *s, "pass", "revoke", "ps_nope")
    assert code == 3 and "no pass" in err
    code, _, err = _cli(capsys, *s, "pass", "issue", "--floor", "office", "--expires", "soon")
    assert code == 2 and "duration" in err
    code, _, err = _cli(capsys, *s, "pass", "issue", "--floor", "gone")
    assert code == 3
