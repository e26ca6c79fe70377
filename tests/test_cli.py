"""The ``severance`` command line, in process through ``severance.cli.main`` (plus one real
subprocess). HOME and XDG_CONFIG_HOME are private to each test (conftest ``isolated_env``)."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from severance import (
    AlreadyExistsError,
    IntegrityError,
    InvalidInputError,
    MissingKeyError,
    NoFloorError,
    NotFoundError,
    SeveranceError,
    StoreError,
    WrongKeyError,
)
from severance.cli import EXIT_CODES, exit_code, main


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def sev(capsys: pytest.CaptureFixture[str]):
    def run(*argv: str) -> Result:
        try:
            main(list(argv))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(code, out, err)

    return run


def code_of(error: type[SeveranceError]) -> int:
    return error.exit_code


def assert_error(result: Result, error: type[SeveranceError]) -> None:
    assert result.code == code_of(error) != 0, result
    assert result.err.startswith("severance: error: "), result
    assert result.err.count("\n") == 1, result  # one line
    assert result.out == ""


@pytest.fixture
def cli_store(sev, store_location: str) -> str:
    """A store made through the CLI with the issue's floors: office (work) and house (home)."""
    s = ("--store", store_location)
    assert sev(*s, "init").code == 0
    assert sev(*s, "persona", "add", "work").code == 0
    assert sev(*s, "persona", "add", "home").code == 0
    r = sev(
        *s,
        "floor",
        "add",
        "office",
        "--persona",
        "work",
        "--path",
        "~/work/**",
        "--client",
        "claude-code",
    )
    assert r.code == 0 and r.out == "Added floor office -> persona work at position 1.\n"
    r = sev(*s, "floor", "add", "house", "--persona", "home", "--default")
    assert r.code == 0, r
    return store_location


# -- init and finding the store -------------------------------------------------------------------
def test_init_writes_a_key_file_outside_the_store(
    sev, store_location: str, isolated_env: Path
) -> None:
    r = sev("--store", store_location, "init", "--json")
    assert r.code == 0, r
    info = r.json()
    assert info["key_mode"] == "key-file"
    key_file = Path(info["key_file"])
    assert key_file.parent == isolated_env / ".config" / "severance" / "keys"
    assert key_file.name == f"{info['store_id']}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    r = sev("--store", store_location, "persona", "list")
    assert r.code == 0 and r.out.startswith("No personas yet")
    r = sev("--store", store_location, "init")
    assert_error(r, StoreError)


def test_init_text_output(sev, store_location: str) -> None:
    r = sev("init", store_location)
    assert r.code == 0
    assert r.out.startswith(f"Created store {store_location}\nMaster key written to ")
    assert "(mode 0600)" in r.out


def test_init_with_a_passphrase(sev, store_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", "correct horse battery staple")
    r = sev("--store", store_location, "init", "--passphrase", "--json")
    assert r.code == 0, r
    assert r.json()["key_mode"] == "passphrase"
    assert r.json()["key_file"] is None
    assert sev("--store", store_location, "persona", "add", "work").code == 0
    monkeypatch.setenv("SEVERANCE_PASSPHRASE", "wrong horse")
    assert_error(sev("--store", store_location, "persona", "list"), WrongKeyError)
    monkeypatch.delenv("SEVERANCE_PASSPHRASE")
    assert_error(sev("--store", store_location, "persona", "list"), MissingKeyError)


def test_init_with_an_explicit_key_file(sev, store_location: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "master.key"
    r = sev("--store", store_location, "init", "--key-file", str(key_file), "--json")
    assert r.code == 0, r
    assert r.json()["key_file"] == str(key_file)
    moved = tmp_path / "moved.key"
    key_file.rename(moved)
    assert_error(sev("--store", store_location, "persona", "list"), MissingKeyError)
    r = sev("--store", store_location, "--key-file", str(moved), "persona", "list")
    assert r.code == 0, r


def test_store_from_the_environment(sev, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location = tmp_path / "env-store"
    monkeypatch.setenv("SEVERANCE_STORE", str(location))
    assert sev("init").code == 0
    assert (location / "store.db").is_file()
    assert sev("persona", "add", "work").code == 0
    assert [p["name"] for p in sev("persona", "list", "--json").json()] == ["work"]
    # --store wins over the environment.
    other = tmp_path / "flag-store"
    assert sev("--store", str(other), "init").code == 0
    assert sev("--store", str(other), "persona", "list", "--json").json() == []


def test_default_store_is_in_home(sev, isolated_env: Path) -> None:
    assert sev("init").code == 0
    assert (isolated_env / ".severance" / "store.db").is_file()
    assert sev("persona", "add", "home").code == 0
    assert "home" in sev("persona", "list").out


def test_missing_store(sev, tmp_path: Path) -> None:
    r = sev("--store", str(tmp_path / "none"), "persona", "list")
    assert_error(r, StoreError)
    assert "severance init" in r.err
    assert not (tmp_path / "none").exists()


# -- personas and floors --------------------------------------------------------------------------
def test_personas(sev, cli_store: str) -> None:
    s = ("--store", cli_store)
    r = sev(*s, "persona", "list")
    assert [line.split()[0] for line in r.out.splitlines()] == ["work", "home"]
    data = sev(*s, "persona", "list", "--json").json()
    assert [p["name"] for p in data] == ["work", "home"]
    assert all(p["id"].startswith("p_") and p["sealed"] is False for p in data)
    r = sev(*s, "persona", "add", "side", "--json")
    assert r.code == 0 and r.json()["name"] == "side"
    assert_error(sev(*s, "persona", "add", "side"), AlreadyExistsError)
    assert_error(sev(*s, "persona", "add", "Side"), InvalidInputError)


def test_floors(sev, cli_store: str) -> None:
    s = ("--store", cli_store)
    r = sev(*s, "floor", "list")
    assert r.out.splitlines() == [
        "1. office -> work  client=claude-code path=~/work/**",
        "2. house -> home  default",
    ]
    data = sev(*s, "floor", "list", "--json").json()
    assert data[0] == {
        "name": "office",
        "persona": "work",
        "clients": ["claude-code"],
        "paths": ["~/work/**"],
        "hosts": [],
        "hours": [],
        "timezone": None,
        "default": False,
        "position": 1,
        "shadowed_by": None,
    }
    r = sev(
        *s,
        "floor",
        "add",
        "late",
        "--persona",
        "work",
        "--hours",
        "mon-fri 20:00-23:00",
        "--tz",
        "Europe/Berlin",
        "--host",
        "laptop-*",
        "--json",
    )
    assert r.code == 0, r
    assert r.json()["timezone"] == "Europe/Berlin"
    assert sev(*s, "floor", "list").out.splitlines()[2] == (
        "3. late -> work  host=laptop-* hours=mon-fri 20:00-23:00 tz=Europe/Berlin"
    )
    assert_error(sev(*s, "floor", "add", "office", "--persona", "work"), AlreadyExistsError)
    assert_error(sev(*s, "floor", "add", "attic", "--persona", "nobody"), NotFoundError)
    assert_error(
        sev(*s, "floor", "add", "attic", "--persona", "work", "--hours", "9 to 5"),
        InvalidInputError,
    )
    assert_error(
        sev(*s, "floor", "add", "attic", "--persona", "work", "--default"), InvalidInputError
    )
    r = sev(*s, "floor", "remove", "late")
    assert r.code == 0 and r.out == "Removed floor late.\n"
    assert_error(sev(*s, "floor", "remove", "late"), NotFoundError)
    assert [f["name"] for f in sev(*s, "floor", "list", "--json").json()] == ["office", "house"]


def test_floor_test(sev, cli_store: str) -> None:
    s = ("--store", cli_store)
    # The example: only the path is given, and office needs claude-code too.
    r = sev(*s, "floor", "test", "--path", "~/work/acme", "--host", "vm")
    assert r.code == 0
    home = str(Path("~").expanduser())
    assert r.out == (
        "client 'severance-cli' (terminal)\n"
        f"path   ~/work/acme -> {home}/work/acme\n"
        "host   vm\n"
        "floor house wakes persona home\n"
        "  because no floor matched; this is the default floor\n"
        "Every floor, in order:\n"
        "  1. office (work): no match\n"
        "       client 'severance-cli' (terminal) matches none of 'claude-code'\n"
        "       path '~/work/acme' matches '~/work/**'\n"
        "  2. house (home): no match\n"
        "       it has no conditions: it wakes by name, or as the default when no floor matches\n"
    )
    r = sev(*s, "floor", "test", "--client", "claude-code", "--path", "~/work/acme")
    assert r.out.splitlines()[3:6] == [
        "floor office wakes persona work",
        "  because client 'claude-code' matches 'claude-code'",
        "  because path '~/work/acme' matches '~/work/**'",
    ]
    r = sev(*s, "floor", "test", "--client", "Claude-Code", "--path", "~/work/acme/x", "--json")
    assert r.json()["floor"] == "office" and r.json()["persona"] == "work"
    r = sev(*s, "floor", "test", "--floor", "office", "--json")
    assert r.json() == {
        "floor": "office",
        "persona": "work",
        "reasons": ["floor 'office' named explicitly"],
    }
    assert_error(sev(*s, "floor", "test", "--floor", "attic"), NotFoundError)
    assert sev(*s, "floor", "remove", "house").code == 0
    # Refused, in one line on stderr, after saying on stdout why each floor did not match.
    r = sev(*s, "floor", "test", "--path", "~/elsewhere")
    assert_error(Result(r.code, "", r.err), NoFloorError)
    assert "Every floor, in order:" in r.out and "matches none of '~/work/**'" in r.out


# -- memories -------------------------------------------------------------------------------------
WORK = ("--client", "claude-code", "--path", "~/work/acme")


def test_memory_commands(sev, cli_store: str, tmp_path: Path) -> None:
    s = ("--store", cli_store)
    r = sev(
        *s,
        "remember",
        *WORK,
        "Q3 launch moved to Oct 12",
        "--kind",
        "fact",
        "--tag",
        "launch",
        "--meta",
        '{"ticket": "PLAT-1"}',
        "--occurred",
        "2024-05-01T09:00:00Z",
        "--source",
        "standup",
        "--json",
    )
    assert r.code == 0, r
    assert r.json()["persona"] == "work"
    launch = r.json()["memory"]
    assert (launch["kind"], launch["tags"], launch["metadata"], launch["source"]) == (
        "fact",
        ["launch"],
        {"ticket": "PLAT-1"},
        "standup",
    )
    assert launch["occurred_at"] == "2024-05-01T09:00:00+00:00"
    r = sev(*s, "remember", *WORK, "The Acme renewal is due March 1")
    assert r.code == 0 and r.out.startswith("Remembered in work: m_")
    acme_id = r.out.split(": ")[1].strip()
    # No context flags: the current directory and host, which land on the default floor.
    r = sev(*s, "remember", "Sarah's birthday is June 3")
    assert r.code == 0 and r.out.startswith("Remembered in home: m_")

    r = sev(*s, "recall", *WORK, "when is the launch?", "--json")
    assert r.code == 0, r
    data = r.json()
    assert data["persona"] == "work"
    assert data["results"][0]["memory"]["text"] == "Q3 launch moved to Oct 12"
    assert {x["memory"]["text"] for x in data["results"]} == {
        "Q3 launch moved to Oct 12",
        "The Acme renewal is due March 1",
    }
    first = data["results"][0]
    assert set(first) == {
        "memory",
        "score",
        "dense_rank",
        "keyword_rank",
        "dense_score",
        "keyword_score",
    }
    r = sev(*s, "recall", "--floor", "house", "launch birthday", "--json")
    assert [x["memory"]["text"] for x in r.json()["results"]] == ["Sarah's birthday is June 3"]
    r = sev(
        *s,
        "recall",
        *WORK,
        "launch",
        "-k",
        "1",
        "--mode",
        "keyword",
        "--kind",
        "fact",
        "--tag",
        "launch",
        "--since",
        "2024-01-01",
        "--until",
        "2025-01-01",
    )
    assert r.code == 0
    assert r.out.splitlines()[0].endswith("  Q3 launch moved to Oct 12")
    assert "keyword #1" in r.out.splitlines()[1]
    r = sev(*s, "recall", *WORK, "zebra", "--mode", "keyword")
    assert r.out == "work remembers nothing about that.\n"
    r = sev(*s, "recall", *WORK, "quantum chromodynamics", "--min-similarity", "0.9", "--json")
    assert r.json()["results"] == []

    r = sev(*s, "get", *WORK, launch["id"], "--json")
    assert r.json() == launch
    r = sev(*s, "get", "--floor", "office", launch["id"])
    assert r.out.splitlines()[1] == "  Q3 launch moved to Oct 12"
    assert "[fact]" in r.out and "#launch" in r.out
    # The home persona cannot see it: the same error as an id that never existed.
    foreign = sev(*s, "get", "--floor", "house", launch["id"])
    made_up = sev(*s, "get", "--floor", "house", "m_00000000000000000000")
    assert_error(foreign, NotFoundError)
    assert foreign.err == made_up.err.replace("m_00000000000000000000", launch["id"])

    r = sev(*s, "update", "--floor", "office", launch["id"], "Q3 launch moved to Oct 19", "--json")
    assert r.code == 0 and r.json()["version"] == 2
    r = sev(*s, "update", "--floor", "office", launch["id"], "--tag", "q3", "--tag", "launch")
    assert r.out == f"Updated {launch['id']} in work (version 3).\n"
    r = sev(
        *s,
        "update",
        "--floor",
        "office",
        launch["id"],
        "--meta",
        '{"ticket": "PLAT-2"}',
        "--kind",
        "note",
        "--occurred",
        "2024-06-01T00:00:00Z",
        "--json",
    )
    assert (r.json()["version"], r.json()["kind"], r.json()["metadata"]) == (
        4,
        "note",
        {"ticket": "PLAT-2"},
    )
    history = sev(*s, "history", "--floor", "office", launch["id"], "--json").json()
    assert [v["version"] for v in history] == [1, 2, 3, 4]
    assert [v["text"] for v in history][:2] == [
        "Q3 launch moved to Oct 12",
        "Q3 launch moved to Oct 19",
    ]
    r = sev(*s, "history", "--floor", "office", launch["id"])
    assert r.out.splitlines()[0].startswith("v1  ")
    assert r.out.splitlines()[0].endswith("Q3 launch moved to Oct 12")

    page = sev(*s, "memories", "--floor", "office", "--json").json()
    assert (page["persona"], page["total"], page["next_offset"]) == ("work", 2, None)
    assert [m["id"] for m in page["items"]] == [acme_id, launch["id"]]
    page = sev(*s, "memories", "--floor", "office", "--limit", "1", "--oldest-first", "--json")
    assert [m["id"] for m in page.json()["items"]] == [launch["id"]]
    assert page.json()["next_offset"] == 1
    r = sev(*s, "memories", "--floor", "office", "--limit", "1")
    assert r.out.splitlines()[0] == "work: 2 memories"
    assert r.out.splitlines()[-1] == "(more: --offset 1)"

    # export from work, import into home
    out = tmp_path / "work.jsonl"
    r = sev(*s, "export", "--floor", "office", "-o", str(out))
    assert r.code == 0 and "Exported 2 memories" in r.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {m["id"] for m in lines} == {launch["id"], acme_id}
    r = sev(*s, "export", "--floor", "office")
    assert [json.loads(line)["id"] for line in r.out.splitlines()] == [m["id"] for m in lines]
    r = sev(*s, "import", "--floor", "house", str(out))
    assert r.out == "Imported 2 memories into home.\n"
    home = sev(*s, "memories", "--floor", "house", "--json").json()
    assert home["total"] == 3
    imported = {m["text"]: m for m in home["items"]}
    assert imported["Q3 launch moved to Oct 19"]["tags"] == ["q3", "launch"]
    assert imported["Q3 launch moved to Oct 19"]["id"] != launch["id"]  # a new memory

    r = sev(*s, "forget", "--floor", "office", launch["id"])
    assert r.out == f"Forgot {launch['id']} in work.\n"
    assert_error(sev(*s, "get", "--floor", "office", launch["id"]), NotFoundError)
    assert_error(sev(*s, "forget", "--floor", "office", launch["id"]), NotFoundError)
    assert_error(sev(*s, "history", "--floor", "office", launch["id"]), NotFoundError)
    assert sev(*s, "memories", "--floor", "office", "--json").json()["total"] == 1


TURNS = [
    {
        "speaker": "ann",
        "text": "Shall we move the offsite to Lisbon?",
        "timestamp": "2024-05-01T10:00:00Z",
        "session": "s1",
    },
    {
        "speaker": "bob",
        "text": "Lisbon works, book the venue",
        "timestamp": "2024-05-01T10:01:00Z",
        "session": "s1",
    },
    {"speaker": "ann", "text": "Venue booked for June 3", "session": 2, "tags": ["offsite"]},
]


@pytest.mark.parametrize("form", ["json", "jsonl"])
def test_remember_turns_from_a_file(sev, cli_store: str, tmp_path: Path, form: str) -> None:
    s = ("--store", cli_store)
    path = tmp_path / f"turns.{form}"
    if form == "json":
        path.write_text(json.dumps(TURNS, indent=2))
    else:
        path.write_text("".join(json.dumps(t) + "\n" for t in TURNS) + "\n")
    r = sev(*s, "remember", *WORK, "--file", str(path))
    assert r.code == 0, r
    assert r.out == "Remembered 3 turns in persona work.\n"
    r = sev(*s, "remember", "--floor", "house", "--file", str(path), "--json")
    assert r.json()["persona"] == "home" and r.json()["remembered"] == 3
    assert len(r.json()["ids"]) == 3
    page = sev(*s, "memories", *WORK, "--oldest-first", "--json").json()
    # One batch shares its learned-at time, so the page order within it is not asserted.
    items = sorted(page["items"], key=lambda m: m["occurred_at"])
    assert [m["text"] for m in items] == [
        "ann: Shall we move the offsite to Lisbon?",
        "bob: Lisbon works, book the venue",
        "ann: Venue booked for June 3",
    ]
    first = items[0]
    assert first["kind"] == "episode" and first["source"] == "turns"
    assert first["metadata"] == {"speaker": "ann", "session": "s1", "turn": 0}
    assert first["occurred_at"] == "2024-05-01T10:00:00+00:00"
    assert items[2]["tags"] == ["offsite"]
    r = sev(*s, "recall", *WORK, "where is the offsite?", "-k", "1", "--json")
    assert "Lisbon" in r.json()["results"][0]["memory"]["text"]


# -- audit ----------------------------------------------------------------------------------------
def test_audit_show_and_verify(sev, cli_store: str) -> None:
    s = ("--store", cli_store)
    assert sev(*s, "remember", "--floor", "office", "secret launch plan").code == 0
    entries = sev(*s, "audit", "show", "--json").json()
    events = [e["event"] for e in entries]
    assert events[0] == "store_created"
    assert events.count("persona_added") == 2
    assert events[-2:] == ["enter", "exit"]
    assert entries[-1]["detail"]["remembered"] == 1
    assert "secret" not in json.dumps(entries)  # never memory content
    work_only = sev(*s, "audit", "show", "--persona", "work", "--json").json()
    assert work_only and all(e["persona"] == "work" for e in work_only)
    text = sev(*s, "audit", "show").out.splitlines()
    assert len(text) == len(entries)
    assert "store_created" in text[0]
    r = sev(*s, "audit", "verify")
    assert r.code == 0 and r.out == f"audit chain intact: {len(entries)} entries\n"
    assert sev(*s, "audit", "verify", "--json").json() == {
        "ok": True,
        "entries": len(entries),
        "first_bad_seq": None,
        "reason": None,
        "missing": [],
    }
    assert_error(sev(*s, "audit", "show", "--persona", "nobody"), NotFoundError)


def test_audit_verify_detects_tampering(sev, cli_store: str, backend_name: str) -> None:
    if backend_name != "sqlite":
        pytest.skip("edits the SQLite file directly")
    s = ("--store", cli_store)
    with closing(sqlite3.connect(Path(cli_store) / "store.db")) as db:
        db.execute("UPDATE audit SET event = 'persona_renamed' WHERE seq = 3")
        db.commit()
    r = sev(*s, "audit", "verify")
    assert r.code == 1
    assert r.err == "audit chain BROKEN at entry 3: content does not match its hash\n"
    r = sev(*s, "audit", "verify", "--json")
    assert r.code == 1 and r.json()["first_bad_seq"] == 3


# -- errors ---------------------------------------------------------------------------------------
def test_errors_are_one_line_and_mapped_exit_codes(
    sev, cli_store: str, tmp_path: Path, backend_name: str
) -> None:
    s = ("--store", cli_store)
    cases: list[tuple[tuple[str, ...], type[SeveranceError]]] = [
        (("remember", "--floor", "office"), InvalidInputError),  # neither TEXT nor --file
        (("remember", "--floor", "office", "   "), InvalidInputError),
        (("remember", "--floor", "office", "x", "--kind", "Fact"), InvalidInputError),
        (("remember", "--floor", "office", "x", "--meta", "[1]"), InvalidInputError),
        (("remember", "--floor", "office", "x", "--meta", "{oops"), InvalidInputError),
        (("remember", "--floor", "office", "x", "--occurred", "someday"), InvalidInputError),
        (("recall", "--floor", "office", "q", "-k", "0"), InvalidInputError),
        (("recall", "--floor", "office", "q", "--since", "last week"), InvalidInputError),
        (("recall", "--floor", "office", "   "), InvalidInputError),
        (("remember", "--floor", "attic", "x"), NotFoundError),
        (("get", "--floor", "office", "m_nope"), NotFoundError),
        (("update", "--floor", "office", "m_nope", "x"), NotFoundError),
        (("persona", "add", "work"), AlreadyExistsError),
        (("remember", "--path", "/srv/elsewhere", "x"), NotFoundError),
    ]
    assert sev(*s, "floor", "remove", "house").code == 0
    cases[-1] = (("remember", "--path", "/srv/elsewhere", "x"), NoFloorError)
    for argv, error in cases:
        r = sev(*s, *argv)
        assert_error(r, error)
    # Unlocking and the store itself.
    wrong = tmp_path / "wrong.key"
    wrong.write_text("A" * 43 + "=\n")
    assert_error(sev(*s, "--key-file", str(wrong), "persona", "list"), WrongKeyError)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert_error(sev("--store", str(not_a_dir), "persona", "list"), StoreError)
    assert_error(sev("--store", str(not_a_dir), "init"), StoreError)
    if backend_name == "sqlite":
        with closing(sqlite3.connect(Path(cli_store) / "store.db")) as db:
            (wrapped,) = db.execute(
                "SELECT wrapped_key FROM personas WHERE name = 'work'"
            ).fetchone()
            flipped = bytes([wrapped[0], wrapped[1] ^ 1, *wrapped[2:]])
            db.execute("UPDATE personas SET wrapped_key = ? WHERE name = 'work'", (flipped,))
            db.commit()
        assert_error(sev(*s, "remember", "--floor", "office", "x"), IntegrityError)


def test_every_error_class_carries_its_exit_code() -> None:
    import severance.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert cls.exit_code != 0, cls
    # The codes of the top-level families are distinct: a script can tell them apart.
    families = [cls for cls in SeveranceError.__subclasses__() if "exit_code" in vars(cls)]
    codes = [cls.exit_code for cls in families if cls.exit_code != 1]
    assert len(set(codes)) == len(codes)


def test_exit_code_table_covers_every_error() -> None:
    # The former public table, now a view of the classes' own codes: unchanged for its callers.
    import severance.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        code = exit_code(cls.__new__(cls))
        assert code == next(c for family, c in EXIT_CODES if issubclass(cls, family))
        assert code == code_of(cls)
        assert code != 0
    # More specific classes come before their bases, so no entry is shadowed.
    classes = [cls for cls, _ in EXIT_CODES]
    for i, cls in enumerate(classes):
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls
    assert len({code for _, code in EXIT_CODES}) == len(EXIT_CODES)


def test_usage_errors_exit_2_without_a_traceback(sev, cli_store: str) -> None:
    s = ("--store", cli_store)
    for argv in (
        ("recall", "--floor", "office"),  # missing QUERY
        ("recall", "--floor", "office", "q", "-k", "many"),
        ("recall", "--floor", "office", "q", "--mode", "fuzzy"),
        ("remember", "--floor", "office", "--file", "/nonexistent/turns.jsonl"),
        ("no-such-command",),
    ):
        r = sev(*s, *argv)
        assert r.code == 2, r
        assert r.err.startswith("severance: error: "), r.err
        assert len(r.err.strip().splitlines()) == 1, r.err  # one line, like every error
        assert r.out == ""


def test_version_and_help(sev) -> None:
    r = sev("--version")
    assert r.code == 0 and "0.1.0" in r.out
    r = sev("--help")
    assert r.code == 0
    for command in (
        "init",
        "persona",
        "floor",
        "remember",
        "recall",
        "get",
        "update",
        "forget",
        "history",
        "memories",
        "export",
        "import",
        "audit",
        "demo",
    ):
        assert f"  {command} " in r.out, command


# -- demo -----------------------------------------------------------------------------------------
def test_demo_in_process(sev) -> None:
    r = sev("demo")
    assert r.code == 0, r
    assert "home asks for a work memory by its id: no memory with id" in r.out
    assert "none found — all of it is encrypted." in r.out
    assert r.out.rstrip().endswith("Every check held: work and home never met.")
    assert "LEAK" not in r.out


def test_demo_as_a_real_command(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "severance"
    assert script.is_file(), "the console script is installed next to the interpreter"
    proc = subprocess.run(
        [str(script), "demo"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "Every check held" in proc.stdout
    assert proc.stderr == ""
