"""Importers (severance.importers, `severance import`): real export files written by hand in
each format (tests/fixtures/import), routing and dry runs, idempotent reruns, kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from severance import InvalidExportError, InvalidInputError, Store
from severance.cli import main
from severance.importers import parse_route, read, route
from severance.importers.base import CHUNK_CHARS, Item, chunks

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def zipped(tmp_path: Path, folder: str, prefix: str = "") -> Path:
    """An export ZIP as the service sends it, built from the fixture folder."""
    archive = tmp_path / f"{folder}-export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for file in sorted((FIXTURES / folder).iterdir()):
            z.write(file, prefix + file.name)
        z.writestr(prefix + "user.json", '{"id": "user-0001"}')
    return archive


# -- the formats -------------------------------------------------------------------------------
def test_chatgpt_reads_the_current_branch_of_each_conversation(tmp_path: Path) -> None:
    items = read("chatgpt", zipped(tmp_path, "chatgpt"))
    assert [(i.title, len(i.drafts), i.project) for i in items] == [
        ("Q3 launch planning", 3, "g-p-6632acmeproject"),
        ("(untitled)", 2, None),  # title null; the photo-only conversation holds no text
    ]
    launch = items[0]
    assert [d.text for d in launch.drafts] == [
        "user: The Q3 launch moves to October 12. Draft the announcement.",
        "assistant: Announcement: the Q3 launch is now on October 12.",
        "user: Here is the slide; make the date bold.",
    ]  # no hidden context, no abandoned branch, no tool call or output, no image
    assert launch.drafts[2].metadata["attachments"] == ["launch-slide.png"]
    assert launch.drafts[2].occurred_at == launch.drafts[1].occurred_at  # create_time null
    assert {d.metadata["session"] for d in launch.drafts} == {
        "chatgpt:6632a1f0-0000-4000-8000-000000000001"
    }
    assert {(d.kind, d.source) for d in launch.drafts} == {("episode", "chatgpt")}
    assert "🍎 — 苹果派" in items[1].drafts[0].text
    # The bare conversations.json reads the same as the archive.
    assert read("chatgpt", FIXTURES / "chatgpt" / "conversations.json") == items


def test_claude_reads_text_parts_attachments_and_projects(tmp_path: Path) -> None:
    items = read("claude", zipped(tmp_path, "claude", prefix="data-2024-08-01-10-00-00/"))
    assert [(i.title, len(i.drafts), i.project, i.skipped) for i in items] == [
        ("Acme contract review", 3, "Acme", 0),
        ("(untitled)", 2, "Family garden", 1),  # project by uuid; a photo-only message
        ("Old export shape", 2, None, 0),
    ]  # the conversation with no messages is left out
    acme = [d.text for d in items[0].drafts]
    assert acme[1].startswith("user: [acme-msa.txt] 7. Renewal.")
    assert acme[2] == (
        "assistant: Clause 7: the contract renews on 1 March 2025; notice is due 60 days before."
    )
    assert all("tool output" not in t and "wants the renewal" not in t for t in acme)
    old = items[2].drafts
    assert old[1].occurred_at == old[0].occurred_at  # no created_at: the previous turn's
    # Without projects.json (the bare file) a project named by uuid only is unknown.
    bare = read("claude", FIXTURES / "claude" / "conversations.json")
    assert [i.project for i in bare] == ["Acme", None, None]


def test_mem0_get_all_output() -> None:
    items = read("mem0", FIXTURES / "mem0.json")
    assert [(i.title, i.project) for i in items] == [
        ("Prefers aisle seats on flights", "alice"),
        ("Is allergic to penicillin", "alice"),
        ("Leads the Ω-platform team at work", "work-assistant"),
    ]
    first = items[0].drafts[0]
    assert (first.kind, first.tags, first.source) == ("fact", ("travel", "preferences"), "mem0")
    assert first.metadata == {
        "origin": "travel chat",
        "mem0_id": "3f0d2b9e-0000-4000-8000-0000000000a1",
    }
    assert first.occurred_at is not None and first.occurred_at.utcoffset() is not None


def test_mem0_accepts_the_older_list_shape(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps([{"id": "1", "memory": "Likes tea", "created_at": None}]))
    assert [i.title for i in read("mem0", path)] == ["Likes tea"]


def test_mcp_memory_knowledge_graph() -> None:
    items = {i.title: i for i in read("mcp-memory", FIXTURES / "memory.jsonl")}
    assert list(items) == ["Alice_Moreau", "Acme_Corp", "Garden", "Bob"]
    assert [d.text for d in items["Alice_Moreau"].drafts] == [
        "Alice_Moreau (person)",
        "Alice_Moreau: Speaks fluent Portuguese",
        "Alice_Moreau: Prefers morning meetings",
        "Alice_Moreau: Café au lait, no sugar ☕",  # a second line for the same entity
        "Alice_Moreau works_at Acme_Corp",
    ]
    assert items["Acme_Corp"].project == "organization"
    assert [d.text for d in items["Bob"].drafts] == ["Bob tends Garden"]  # undefined entity


def test_markdown_folder() -> None:
    items = read("markdown", FIXTURES / "notes")
    assert [(i.title, i.project, i.ref) for i in items] == [
        ("borage", "home/garden", "home/garden/borage.md"),
        ("someday", None, "someday.markdown"),
        ("Weekly standup", "work", "work/standup.md"),
    ]  # empty and hidden files left out
    borage = items[0].drafts[0]
    assert borage.text.startswith("Borage grows")  # no front matter
    assert "## Seeds" in borage.text
    assert (borage.kind, borage.source) == ("note", "markdown")


def test_a_huge_conversation_is_cut_into_turns_within_the_limits(tmp_path: Path) -> None:
    long_answer = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 60 for i in range(250))
    assert len(long_answer) > 5 * CHUNK_CHARS
    messages = [
        {
            "uuid": f"m{i}",
            "text": f"message {i}",
            "sender": "human" if i % 2 else "assistant",
            "created_at": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
        }
        for i in range(5_000)
    ]
    messages.append({"uuid": "long", "text": long_answer, "sender": "assistant"})
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([{"uuid": "big", "name": "Huge", "chat_messages": messages}]))
    (item,) = read("claude", path)
    pieces = chunks(long_answer)
    assert len(item.drafts) == 5_000 + len(pieces)
    assert all(len(d.text) <= CHUNK_CHARS + len("assistant: ") for d in item.drafts)
    assert [d.metadata["turn"] for d in item.drafts] == list(range(len(item.drafts)))
    # Nothing of the long message is lost in the cutting.
    rejoined = " ".join(d.text.removeprefix("assistant: ") for d in item.drafts[5_000:])
    assert rejoined.split() == long_answer.split()


BAD_EXPORTS: list[tuple[str, str, bytes]] = [
    ("chatgpt", "conversations.json", b'{"not": "a list"}'),
    ("chatgpt", "conversations.json", b'[{"title": "x"}]'),
    ("chatgpt", "conversations.json", b"[{"),
    ("chatgpt", "export.zip", b"PK\x03\x04 broken"),
    ("claude", "conversations.json", b'[{"chat_messages": [{"sender": "robot", "text": "x"}]}]'),
    ("claude", "conversations.json", b'[{"chat_messages": [{"sender": "human", "text": 5}]}]'),
    ("claude", "conversations.json", "[]".encode("utf-16")),
    ("mem0", "mem0.json", b'{"results": [{"memory": ""}]}'),
    ("mem0", "mem0.json", b'{"results": [{"memory": "x", "created_at": "soon"}]}'),
    ("mem0", "mem0.json", b'{"something": "else"}'),
    ("mcp-memory", "memory.jsonl", b'{"type": "entity", "name": "A", "observations": [1]}\n'),
    ("mcp-memory", "memory.jsonl", b'{"type": "relation", "from": "A"}\n'),
    ("mcp-memory", "memory.jsonl", b'{"type": "thing"}\n'),
    ("mcp-memory", "memory.jsonl", b"not json\n"),
    ("jsonl", "export.jsonl", b'{"text": "fine"}\n{"text": ""}\n'),
]


@pytest.mark.parametrize(("fmt", "name", "content"), BAD_EXPORTS)
def test_malformed_exports_are_refused(tmp_path: Path, fmt: str, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidExportError):
        read(fmt, path)


def test_a_zip_without_the_file_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("chat.html", "<html></html>")
    with pytest.raises(InvalidExportError, match=r"holds no conversations\.json"):
        read("chatgpt", archive)


# -- routing -----------------------------------------------------------------------------------
def test_routes_first_match_wins_case_insensitive() -> None:
    items = [
        Item("Q3 LAUNCH planning", (), project=None),
        Item("Dinner recipes", (), project="Family"),
        Item("Acme -> renewal", (), project="Acme"),
        Item("misc", (), project=None),
    ]
    rules = [
        parse_route("title~launch|acme -> work"),
        parse_route("project~^family$ -> home"),
        parse_route("  title ~ recipes->side "),
    ]
    assert [(r.persona, r.rule) for r in route(items, rules, "home")] == [
        ("work", "title~launch|acme -> work"),
        ("home", "project~^family$ -> home"),
        ("work", "title~launch|acme -> work"),
        ("home", "default"),
    ]
    # A regex may itself contain "->": the last arrow names the persona.
    assert parse_route("title~a->b -> work").pattern.pattern == "a->b"


@pytest.mark.parametrize(
    "spec", ["work", "title~x", "name~x -> work", "title~ -> work", "title~( -> work", "-> work"]
)
def test_bad_routes_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_route(spec)


# -- the command -------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def state(store: Store) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for floor in ("office", "house", "studio"):
        with store.enter(floor=floor) as s:
            out[s.persona] = sorted(m.text for m in s.export())
    return out


def test_dry_run_shows_where_each_conversation_goes_and_writes_nothing(
    store: Store, store_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = zipped(tmp_path, "claude")
    before = len(store.audit())
    args = ("--store", store_location, "import", "claude", str(archive), "--floor", "house")
    code, out, err = run_cli(capsys, *args, "--route", "project~acme -> work", "--dry-run")
    assert code == 0, err
    assert out.splitlines() == [
        "persona   turns  title",
        "work          3  Acme contract review  [Acme]",
        "home          2  (untitled)  [Family garden]",
        "home          2  Old export shape",
        "Dry run: 3 items, 3 to work, 4 to home; nothing written.",
    ]
    code, out, err = run_cli(
        capsys,
        *args,
        "--route",
        "TITLE~dentist|OLD -> side",
        "--default",
        "work",
        "--dry-run",
        "--json",
    )
    assert [(r["title"], r["persona"], r["turns"], r["rule"]) for r in json.loads(out)] == [
        ("Acme contract review", "work", 3, "default"),
        ("(untitled)", "work", 2, "default"),
        ("Old export shape", "side", 2, "TITLE~dentist|OLD -> side"),
    ]
    assert len(store.audit()) == before
    for floor in ("office", "house", "studio"):
        with store.enter(floor=floor) as s:
            assert s.count() == 0


def test_import_routes_into_personas_and_a_rerun_adds_nothing(
    store: Store, store_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = zipped(tmp_path, "chatgpt")
    args = (
        "--store",
        store_location,
        "import",
        "chatgpt",
        str(archive),
        "--floor",
        "house",
        "--route",
        "title~launch -> work",
    )
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert out.splitlines() == ["Imported 3 memories into work.", "Imported 2 memories into home."]
    assert "Importing" in err  # the progress bar, on stderr
    first = state(store)
    assert first["work"][0].startswith("assistant: Announcement")
    assert len(first["home"]) == 2 and first["side"] == []
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "format": "chatgpt",
        "personas": [
            {"persona": "work", "items": 1, "remembered": 0, "already_known": 3},
            {"persona": "home", "items": 1, "remembered": 0, "already_known": 2},
        ],
    }
    again = state(store)
    assert {k: v for k, v in again.items() if k != "audit"} == {
        k: v for k, v in first.items() if k != "audit"
    }
    imports = [e for e in store.audit() if e.event == "import"]
    assert [(e.persona, e.detail) for e in imports] == [
        ("work", {"importer": "chatgpt", "items": 1, "remembered": 3, "already_known": 0}),
        ("home", {"importer": "chatgpt", "items": 1, "remembered": 2, "already_known": 0}),
        ("work", {"importer": "chatgpt", "items": 1, "remembered": 0, "already_known": 3}),
        ("home", {"importer": "chatgpt", "items": 1, "remembered": 0, "already_known": 2}),
    ]
    assert all("Q3" not in json.dumps(e.detail) for e in store.audit())  # no content


@pytest.mark.parametrize(
    ("fmt", "source", "expected"),
    [
        ("mem0", "mem0.json", 3),
        ("mcp-memory", "memory.jsonl", 9),
        ("markdown", "notes", 3),
        ("claude", "claude/conversations.json", 7),
    ],
)
def test_every_format_imports_through_the_cli(
    store: Store,
    store_location: str,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    source: str,
    expected: int,
) -> None:
    args = ("--store", store_location, "import", fmt, str(FIXTURES / source), "--floor", "office")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert out == f"Imported {expected} memories into work.\n"
    code, out, err = run_cli(capsys, *args)
    assert out == f"Imported 0 memories into work ({expected} already there).\n"
    with store.enter(floor="office") as s:
        assert s.count() == expected


@pytest.mark.parametrize(
    ("argv", "message", "exit_code"),
    [
        (("import", "word", str(FIXTURES / "mem0.json")), "unknown format 'word'", 2),
        (("import", "mem0", str(FIXTURES / "mem0.json"), "--route", "bad"), "invalid route", 2),
        (("import", "mem0", str(FIXTURES / "mem0.json"), "--default", "nobody"), "no persona", 3),
        (("import", "mem0", str(FIXTURES / "memory.jsonl")), "memory.jsonl is not JSON", 2),
        (("import", "/no/such/file.jsonl"), "no such file", 2),
    ],
)
def test_bad_imports_change_nothing(
    store: Store,
    store_location: str,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
    exit_code: int,
) -> None:
    before = state(store)
    audit = len(store.audit())
    code, out, err = run_cli(capsys, "--store", store_location, *argv, "--floor", "office")
    assert code == exit_code and out == ""
    assert err.startswith("severance: error: ") and message in err and err.count("\n") == 1
    assert len(store.audit()) == audit  # not even an enter: everything is checked first
    assert state(store) == before


# -- atomicity: kill -9 in the middle of a real import, then run it again ----------------------
def test_kill_9_during_an_import_then_a_rerun_finishes_it_without_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = str(tmp_path / "store")
    with Store.init(location) as st:
        st.add_persona("work")
        st.add_floor("office", persona="work")
    export = tmp_path / "big.jsonl"
    n = 3_000
    export.write_text(
        "".join(
            json.dumps({"text": f"record {i} of the big import", "kind": "fact"}) + "\n"
            for i in range(n)
        )
    )
    severance = str(Path(sys.executable).parent / "severance")
    argv = [severance, "--store", location, "import", str(export), "--floor", "office"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stored() -> int:
        with closing(sqlite3.connect(f"file:{location}/store.db?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM memories").fetchone()[0])

    deadline = time.monotonic() + 300
    try:
        while stored() == 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the import stored nothing"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    partial = stored()
    assert 0 < partial < n, "the kill must land in the middle of the import"
    rerun = subprocess.run(argv, capture_output=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.decode() == (
        f"Imported {n - partial} memories into work ({partial} already there).\n"
    )
    with Store.open(location) as st:
        assert st.verify_audit().ok
        with st.enter(floor="office") as s:
            texts = [m.text for m in s.export()]
    assert sorted(texts) == sorted(f"record {i} of the big import" for i in range(n))
