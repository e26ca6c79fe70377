"""The crossing commands from the command line, run in-process through ``severance.cli.main``.

Each bad input gives exactly one stderr line ``severance: error: …``, the exit code that
the error's class carries (``exit_code``), and changes nothing in the store.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import severance
from severance import (
    InvalidInputError,
    PersonaNotFoundError,
    SessionClosedError,
    SeveranceError,
    UnlockError,
    WrongKeyError,
)
from severance.cli import main
from severance.keys import Secret, default_key_file, write_key_file
from severance.store import MAX_OVERRIDE_MINUTES

BUDGET = "The quarterly budget review moved to Friday afternoon."
ACME = "The Acme contract renewal is due in March."
DEPLOY = "Deploy the billing service on Tuesdays only."
LUNCH = "Lunch with the design team on Thursday."
SKETCH = "Sketch the logo for the bakery."
WORK = {BUDGET: ("finance",), ACME: ("acme",), DEPLOY: ("ops",), LUNCH: ()}


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    store_location: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cli(*args, stdin=None)`` runs ``severance --store LOCATION *args``."""

    def run(*args: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        try:
            main(["--store", store_location, *args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def exit_code_of(error: type[SeveranceError]) -> int:
    return error.exit_code


def assert_one_error_line(result: Result, error: type[SeveranceError]) -> None:
    assert result.code == exit_code_of(error), result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("severance: error: ") and len(lines[0]) > 20
    assert "Traceback" not in result.err


def raw_tables(location: str) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(Path(location) / "store.db")) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(db.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def fingerprint(store: severance.Store, backend_name: str, location: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "audit": [(e.seq, e.event, e.hash) for e in store.audit()],
        "personas": store.personas(),
        "floors": store.floors(),
    }
    if backend_name == "sqlite":
        state["rows"] = raw_tables(location)
    return state


def memory_state(store: severance.Store, backend_name: str, location: str) -> dict[str, Any]:
    """Everything but the audit chain (a preview records one entry and nothing else)."""
    state = fingerprint(store, backend_name, location)
    del state["audit"]
    if "rows" in state:
        del state["rows"]["audit"]
        state["rows"]["meta"] = [r for r in state["rows"]["meta"] if r[0] != "audit_head"]
    return state


def texts(store: severance.Store, floor: str, secret: Secret | None = None) -> list[str]:
    with store.enter(floor=floor, secret=secret) as s:
        return sorted(m.text for m in s.memories(limit=1000).items)


@pytest.fixture
def filled(store: severance.Store, tmp_path: Path) -> severance.Store:
    """work: four memories; home: none; side: one memory, sealed with ``side.key``."""
    with store.enter(floor="office") as s:
        for text, tags in WORK.items():
            s.remember(text, tags=tags)
    with store.enter(floor="studio") as s:
        s.remember(SKETCH)
    store.seal_persona("side", Secret(key_file=tmp_path / "side.key"))
    write_key_file(tmp_path / "wrong.key", os.urandom(32))
    return store


# -- reintegrate ---------------------------------------------------------------------------------
def test_reintegrate_copies_and_moves(filled: severance.Store, cli: Any, tmp_path: Path) -> None:
    r = cli("reintegrate", "work", "--into", "home", "--yes")
    assert r.code == 0, r.err
    assert r.out.strip() == "Reintegrated 4 memories from work into home: 4 copied, 0 merged."
    assert texts(filled, "office") == texts(filled, "house") == sorted(WORK)

    r = cli("reintegrate", "home", "--into", "work", "--move", "--tag", "acme", "--yes")
    assert r.code == 0, r.err
    assert r.out.strip() == (
        "Reintegrated 1 memories from home into work: 0 copied, 1 merged, 1 removed from home."
    )
    assert texts(filled, "house") == sorted(set(WORK) - {ACME})

    key = str(tmp_path / "side.key")
    r = cli(
        *("reintegrate", "work", "--into", "side", "--query", "budget review", "--limit", "1"),
        *("--into-secret-file", key, "--move", "--yes", "--json"),
    )
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert (report["selected"], report["copied"], report["removed_from_source"]) == (1, 1, 1)
    assert texts(filled, "office") == sorted(set(WORK) - {BUDGET})
    assert texts(filled, "studio", Secret(key_file=key)) == sorted([BUDGET, SKETCH])


def test_reintegrate_dry_run_lists_and_changes_nothing(
    filled: severance.Store, cli: Any, backend_name: str, store_location: str
) -> None:
    before = memory_state(filled, backend_name, store_location)
    r = cli("reintegrate", "work", "--into", "home", "--move", "--dry-run")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "Would move 4 memories from work into home (4 new, 0 merged as identical):"
    assert sorted(line.split("  ", 2)[2] for line in lines[1:]) == sorted(WORK)
    r = cli("reintegrate", "work", "--into", "home", "--tag", "ops", "--dry-run", "--json")
    assert r.code == 0
    plan = json.loads(r.out)
    assert plan["dry_run"] and [m["text"] for m in plan["memories"]] == [DEPLOY]
    assert memory_state(filled, backend_name, store_location) == before
    assert [e.event for e in filled.audit()[-2:]] == ["reintegration_previewed"] * 2


def test_reintegrate_dry_run_lists_similar_memories_kept_apart(
    store: severance.Store, cli: Any
) -> None:
    with store.enter(floor="house") as s:
        s.remember("Invoice 4411 is paid")
    with store.enter(floor="office") as s:
        crossing = s.remember("Invoice 4412 is paid")
    r = cli("reintegrate", "work", "--into", "home", "--move", "--dry-run")
    assert r.code == 0, r.err
    assert "(1 new, 0 merged as identical)" in r.out
    assert "Similar, kept apart (1; --merge-similar would merge them):" in r.out
    assert crossing.id in r.out.splitlines()[-1]
    r = cli("reintegrate", "work", "--into", "home", "--move", "--merge-similar", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert (report["copied"], report["merged"]) == (0, 1)
    assert report["similar"][0]["merged"] is True


def test_reintegrate_asks_before_crossing(
    filled: severance.Store, cli: Any, backend_name: str, store_location: str
) -> None:
    before = memory_state(filled, backend_name, store_location)
    r = cli("reintegrate", "work", "--into", "home", "--move", stdin="n\n")
    assert r.code == 130 and r.err.strip() == "severance: aborted"
    assert "Move 4 memories from work into home?" in r.out
    assert memory_state(filled, backend_name, store_location) == before

    r = cli("reintegrate", "work", "--into", "home", "--move", stdin="y\n")
    assert r.code == 0, r.err
    assert texts(filled, "office") == [] and texts(filled, "house") == sorted(WORK)


# -- bad input, every crossing command ------------------------------------------------------------
BAD = [
    (("reintegrate", "nobody", "--into", "home", "--yes"), PersonaNotFoundError),
    (("reintegrate", "work", "--into", "nobody", "--yes"), PersonaNotFoundError),
    (("reintegrate", "work", "--into", "work", "--yes"), InvalidInputError),
    (("reintegrate", "work", "--into", "work", "--dry-run"), InvalidInputError),
    (("reintegrate", "side", "--into", "home", "--yes"), UnlockError),
    (("reintegrate", "work", "--into", "side", "--move", "--yes"), UnlockError),
    (("reintegrate", "side", "--into", "home", "--source-secret-file", "{wrong}"), WrongKeyError),
    (("reintegrate", "work", "--into", "side", "--into-secret-file", "{wrong}"), WrongKeyError),
    (("reintegrate", "work", "--into", "home", "--query", "x", "--limit", "0"), InvalidInputError),
    (("override", "nobody", "--reason", "r", "--minutes", "5"), PersonaNotFoundError),
    (("override", "work", "--reason", "   ", "--minutes", "5"), InvalidInputError),
    (("override", "work", "--reason", "", "--minutes", "5"), InvalidInputError),
    (("override", "work", "--reason", "r", "--minutes", "0"), InvalidInputError),
    (("override", "work", "--reason", "r", "--minutes", "-3"), InvalidInputError),
    (
        ("override", "work", "--reason", "r", "--minutes", str(MAX_OVERRIDE_MINUTES + 1)),
        InvalidInputError,
    ),
    (("override", "side", "--reason", "r", "--minutes", "5"), UnlockError),
    (
        ("override", "side", "--reason", "r", "--minutes", "5", "--secret-file", "{wrong}"),
        WrongKeyError,
    ),
    (("recall", "--override", "work", "budget"), SessionClosedError),
    (("remember", "--override", "home", "note"), SessionClosedError),
    (("recall", "--override", "nobody", "budget"), PersonaNotFoundError),
    (("recall", "--floor", "studio", "logo"), UnlockError),
    (("--persona-key-file", "{wrong}", "recall", "--floor", "studio", "logo"), WrongKeyError),
    (("clean-slate", "nobody", "--yes"), PersonaNotFoundError),
    (("persona", "seal", "nobody", "--secret-file", "{fresh}"), PersonaNotFoundError),
    (("persona", "seal", "side", "--secret-file", "{fresh}"), InvalidInputError),
    (("persona", "unseal", "side", "--secret-file", "{wrong}"), WrongKeyError),
    (("persona", "unseal", "work", "--secret-file", "{wrong}"), InvalidInputError),
]


@pytest.mark.parametrize(("args", "error"), BAD, ids=[" ".join(args) for args, _ in BAD])
def test_bad_input_is_one_typed_error_line_and_changes_nothing(
    filled: severance.Store,
    cli: Any,
    backend_name: str,
    store_location: str,
    tmp_path: Path,
    args: tuple[str, ...],
    error: type[SeveranceError],
) -> None:
    paths = {"wrong": str(tmp_path / "wrong.key"), "fresh": str(tmp_path / "fresh.key")}
    before = fingerprint(filled, backend_name, store_location)
    r = cli(*(a.format(**paths) for a in args))
    assert_one_error_line(r, error)
    assert r.out == ""
    assert fingerprint(filled, backend_name, store_location) == before
    assert not (tmp_path / "fresh.key").exists()


def test_keys_rotate_with_a_passphrase_and_a_key_file_is_refused(
    filled: severance.Store,
    cli: Any,
    backend_name: str,
    store_location: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEVERANCE_PASSPHRASE_NEW", "new passphrase")
    before = fingerprint(filled, backend_name, store_location)
    r = cli("keys", "rotate", "--passphrase", "--key-file", str(tmp_path / "new.key"))
    assert_one_error_line(r, InvalidInputError)
    assert fingerprint(filled, backend_name, store_location) == before


def test_override_without_a_reason_is_a_usage_error(
    filled: severance.Store, cli: Any, backend_name: str, store_location: str
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    r = cli("override", "work", "--minutes", "30")
    assert r.code == 2 and "--reason" in r.err and "Traceback" not in r.err
    r = cli("override", "work", "--reason", "on call", "--minutes", "soon")
    assert r.code == 2 and "--minutes" in r.err
    assert fingerprint(filled, backend_name, store_location) == before


# -- override ------------------------------------------------------------------------------------
def test_override_then_recall_until_it_expires(
    filled: severance.Store,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    backend_name: str,
    store_location: str,
) -> None:
    r = cli("override", "work", "--reason", "incident 77", "--minutes", "30")
    assert r.code == 0, r.err
    assert r.out.startswith("Override of work granted until ")

    r = cli("recall", "--override", "work", "Acme contract", "--json")
    assert r.code == 0, r.err
    found = json.loads(r.out)
    assert found["persona"] == "work"
    assert found["results"][0]["memory"]["text"] == ACME
    r = cli("recall", "--override", "work", "billing deploy")
    assert r.code == 0 and DEPLOY in r.out
    r = cli("remember", "--override", "work", "Postmortem on Monday.")
    assert r.code == 0 and r.out.startswith("Remembered in work: ")

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 31 * 60)
    before = fingerprint(filled, backend_name, store_location)
    for args in (
        ("recall", "--override", "work", "Acme"),
        ("remember", "--override", "work", "too late"),
        ("memories", "--override", "work"),
    ):
        assert_one_error_line(cli(*args), SessionClosedError)
    assert fingerprint(filled, backend_name, store_location) == before

    grants = [e for e in filled.audit("work") if e.event == "override"]
    assert [(g.detail["reason"], g.detail["minutes"]) for g in grants] == [("incident 77", 30)]


def test_override_of_a_sealed_persona_needs_its_secret(
    filled: severance.Store, cli: Any, tmp_path: Path
) -> None:
    key = str(tmp_path / "side.key")
    r = cli("override", "side", "--reason", "client call", "--minutes", "5", "--secret-file", key)
    assert r.code == 0, r.err
    assert_one_error_line(cli("recall", "--override", "side", "logo"), UnlockError)
    r = cli("--persona-key-file", key, "recall", "--override", "side", "logo")
    assert r.code == 0 and SKETCH in r.out


# -- sealing -------------------------------------------------------------------------------------
def test_persona_seal_and_unseal(
    filled: severance.Store, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "employer" / "work.key"
    r = cli("persona", "seal", "work", "--secret-file", str(key))
    assert r.code == 0, r.err
    assert key.is_file()
    assert r.out.strip() == "Sealed persona work: only its own secret opens it now."
    assert_one_error_line(cli("recall", "--floor", "office", "Acme"), UnlockError)
    r = cli("--persona-key-file", str(key), "recall", "--floor", "office", "Acme")
    assert r.code == 0 and ACME in r.out
    monkeypatch.setenv("SEVERANCE_PERSONA_KEY_FILE", str(key))
    assert cli("recall", "--floor", "office", "Acme").code == 0
    monkeypatch.delenv("SEVERANCE_PERSONA_KEY_FILE")

    r = cli("persona", "list", "--json")
    assert {p["name"]: p["sealed"] for p in json.loads(r.out)} == {
        "work": True,
        "home": False,
        "side": True,
    }
    r = cli("persona", "unseal", "work", "--secret-file", str(key))
    assert r.code == 0 and r.out.strip() == "Unsealed persona work."
    r = cli("recall", "--floor", "office", "Acme")
    assert r.code == 0 and ACME in r.out


def test_persona_add_sealed_with_a_passphrase_from_the_environment(
    store: severance.Store, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEVERANCE_PERSONA_PASSPHRASE", "acme holds this one")
    r = cli("persona", "add", "acme", "--sealed", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["sealed"] is True
    store.add_floor("client", persona="acme")
    r = cli("remember", "--floor", "client", "The Acme launch is on the 12th.")
    assert r.code == 0, r.err

    monkeypatch.setenv("SEVERANCE_PERSONA_PASSPHRASE", "a wrong guess")
    assert_one_error_line(cli("recall", "--floor", "client", "launch"), WrongKeyError)
    monkeypatch.delenv("SEVERANCE_PERSONA_PASSPHRASE")
    assert_one_error_line(cli("recall", "--floor", "client", "launch"), UnlockError)
    with pytest.raises(UnlockError):
        store.enter(floor="client")  # the master key alone
    assert texts(store, "client", Secret(passphrase="acme holds this one")) == [
        "The Acme launch is on the 12th."
    ]


# -- clean slate ---------------------------------------------------------------------------------
def test_clean_slate_asks_to_type_the_name(
    filled: severance.Store, cli: Any, backend_name: str, store_location: str
) -> None:
    before = fingerprint(filled, backend_name, store_location)
    for typed in ("wrok\n", "Work\n", "\n"):
        r = cli("clean-slate", "work", stdin=typed)
        assert_one_error_line(r, InvalidInputError)
        assert "nothing was erased" in r.err
        assert "cannot be undone" in r.out and "Type work to confirm" in r.out
    assert fingerprint(filled, backend_name, store_location) == before

    r = cli("clean-slate", "work", stdin="work\n")
    assert r.code == 0, r.err
    assert r.out.rstrip().endswith(
        "Erased persona work: 4 memories, its key and its index are gone."
    )
    assert [p.name for p in filled.personas()] == ["home", "side"]


def test_clean_slate_yes_for_scripts(filled: severance.Store, cli: Any) -> None:
    r = cli("clean-slate", "home", "--yes")
    assert r.code == 0, r.err
    assert r.out.strip() == "Erased persona home: 0 memories, its key and its index are gone."
    assert [p.name for p in filled.personas()] == ["work", "side"]
    assert texts(filled, "office") == sorted(WORK)
    r = cli("persona", "add", "home")  # the name is free again
    assert r.code == 0, r.err


# -- keys rotate ---------------------------------------------------------------------------------
def test_keys_rotate(
    filled: severance.Store,
    cli: Any,
    store_location: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = default_key_file(filled.store_id)
    old = tmp_path / "old.key"
    old.write_text(key_file.read_text())
    filled.close()

    r = cli("keys", "rotate")
    assert r.code == 0, r.err
    assert r.out.strip() == f"Rotated the master key. New key file: {key_file}"
    r = cli("recall", "--floor", "office", "Acme")
    assert r.code == 0 and ACME in r.out
    assert_one_error_line(
        cli("--key-file", str(old), "recall", "--floor", "office", "Acme"), WrongKeyError
    )
    r = cli("--persona-key-file", str(tmp_path / "side.key"), "recall", "--floor", "studio", "logo")
    assert r.code == 0 and SKETCH in r.out  # the sealed persona kept its own secret

    monkeypatch.setenv("SEVERANCE_PASSPHRASE_NEW", "correct horse")
    r = cli("keys", "rotate", "--passphrase")
    assert r.code == 0 and r.out.strip() == "Rotated the master key."
    assert_one_error_line(cli("recall", "--floor", "office", "Acme"), UnlockError)
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", "correct horse")
    r = cli("recall", "--floor", "office", "Acme")
    assert r.code == 0 and ACME in r.out
    r = cli("audit", "verify")
    assert r.code == 0 and r.out.startswith("audit chain intact")


def test_reintegrate_reaches_a_persona_sealed_with_a_passphrase(
    filled: severance.Store, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passphrase-sealed persona has no key file to pass: the persona secret of the
    environment (or --persona-key-file) serves the end that was given no secret file."""
    monkeypatch.setenv("SEVERANCE_PERSONA_PASSPHRASE", "acme holds this one")
    assert cli("persona", "add", "acme", "--sealed").code == 0
    filled.add_floor("client", persona="acme")

    r = cli("reintegrate", "work", "--into", "acme", "--tag", "acme", "--move", "--yes")
    assert r.code == 0, r.err
    r = cli("reintegrate", "acme", "--into", "home", "--yes")
    assert r.code == 0, r.err
    secret = Secret(passphrase="acme holds this one")
    assert texts(filled, "client", secret) == texts(filled, "house") == [ACME]

    monkeypatch.setenv("SEVERANCE_PERSONA_PASSPHRASE", "a wrong guess")
    assert_one_error_line(cli("reintegrate", "acme", "--into", "home", "--yes"), WrongKeyError)
    monkeypatch.delenv("SEVERANCE_PERSONA_PASSPHRASE")
    assert_one_error_line(cli("reintegrate", "acme", "--into", "home", "--yes"), UnlockError)
