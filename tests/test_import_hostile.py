"""Importers against hostile and quirky input: ZIP bombs and damaged archives, deep nesting,
links out of a notes folder, front matter edge cases, errors that name the file and record,
conversations without ids, standard input, and personas named in rules that match nothing."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from severance import InvalidExportError, Store
from severance.cli import main
from severance.importers import Item, base, parse_route, read, route

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _conversation(title: str | None, text: str, ident: str | None = None) -> dict[str, Any]:
    conv: dict[str, Any] = {
        "title": title,
        "mapping": {
            "root": {"id": "root", "message": None, "parent": None, "children": ["a"]},
            "a": {
                "id": "a",
                "parent": "root",
                "children": [],
                "message": {
                    "author": {"role": "user"},
                    "content": {"content_type": "text", "parts": [text]},
                },
            },
        },
    }
    if ident is not None:
        conv["id"] = ident
    return conv


# -- size limits ---------------------------------------------------------------------------------
def test_a_zip_bomb_and_oversized_files_are_refused_before_they_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "MAX_FILE_BYTES", 1 << 20)
    bomb = tmp_path / "export.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("conversations.json", b"[" + b" " * (4 << 20) + b"]")
    assert bomb.stat().st_size < 64 << 10  # tiny on disk, 4 MiB unpacked
    with pytest.raises(InvalidExportError, match=r"export\.zip: conversations\.json is 4,194,3"):
        read("chatgpt", bomb)
    big = b'{"text": "x"}\n' * ((1 << 20) // 14 + 1)
    for fmt, name in (("jsonl", "big.jsonl"), ("mcp-memory", "memory.jsonl"), ("mem0", "m.json")):
        (tmp_path / name).write_bytes(big)
        with pytest.raises(InvalidExportError, match=rf"{name} is 1,048,5\d\d bytes"):
            read(fmt, tmp_path / name)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "huge.md").write_bytes(b"# Huge\n" + b"word " * (1 << 18))
    with pytest.raises(InvalidExportError, match=r"huge\.md is"):
        read("markdown", notes)


def _patched(archive: Path, *, local: int, central: int, value: bytes) -> None:
    """Overwrite a field of the (single) member's local and central headers."""
    raw = bytearray(archive.read_bytes())
    lo, ce = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    raw[lo + local : lo + local + len(value)] = value
    raw[ce + central : ce + central + len(value)] = value
    archive.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["encrypted", "deflate64", "corrupt"])
def test_damaged_archives_are_refused_with_a_typed_error(tmp_path: Path, damage: str) -> None:
    archive = tmp_path / "export.zip"
    payload = json.dumps([_conversation("t", "hello " * 200)]).encode()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("conversations.json", payload)
    if damage == "encrypted":
        _patched(archive, local=6, central=8, value=b"\x01\x00")
    elif damage == "deflate64":
        _patched(archive, local=8, central=10, value=b"\x09\x00")
    else:
        raw = bytearray(archive.read_bytes())
        start = raw.index(b"conversations.json") + len("conversations.json")
        raw[start + 5 : start + 25] = b"\xff" * 20
        archive.write_bytes(bytes(raw))
    with pytest.raises(InvalidExportError, match=r"export\.zip: conversations\.json"):
        read("chatgpt", archive)


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        ("chatgpt", b"[" * 100_000),
        ("claude", b"[" * 100_000 + b"]" * 100_000),
        ("mem0", b'{"results": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("jsonl", b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
        ("jsonl", b"[" * 100_000 + b"]" * 100_000),
        ("mcp-memory", b'{"type": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
    ],
)
def test_deeply_nested_json_is_refused_not_a_crash(
    tmp_path: Path, fmt: str, content: bytes
) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(content)
    with pytest.raises(InvalidExportError, match=r"deep\.json"):
        read(fmt, path)


# -- errors name the file and the record -------------------------------------------------------
def test_jsonl_errors_name_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"\n')
    with pytest.raises(InvalidExportError, match=r"^export\.jsonl: line 3 is not JSON"):
        read("jsonl", path)
    path.write_text('{"text": "a"}\n\n{"kind": "fact"}\n')
    with pytest.raises(InvalidExportError, match=r"^export\.jsonl: line 3: text must be"):
        read("jsonl", path)
    path.write_text('[{"text": "a"}, 5]')
    with pytest.raises(InvalidExportError, match=r"^export\.jsonl: record 2: expected a JSON"):
        read("jsonl", path)


def test_mcp_memory_errors_name_the_entity_line(tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    lines = [
        {"type": "entity", "name": "Alice", "entityType": "person", "observations": ["ok"]},
        {"type": "entity", "name": "Bob", "entityType": "person", "observations": ["x" * 40_000]},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with pytest.raises(InvalidExportError, match=r"^memory\.jsonl: line 2 \(entity 'Bob'\)"):
        read("mcp-memory", path)


# -- Markdown folders ----------------------------------------------------------------------------
def test_markdown_leaves_out_links_out_of_the_folder_and_reads_front_matter_edges(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\nthe bank PIN is 0000\n")
    notes = tmp_path / "vault"
    (notes / "journal").mkdir(parents=True)
    (notes / "leak.md").symlink_to(outside / "secret.md")
    (notes / "journal" / "linked").symlink_to(outside, target_is_directory=True)
    (notes / "journal" / "day.md").write_text("the day\n")
    (notes / "alias.md").symlink_to(notes / "journal" / "day.md")  # inside: kept
    (notes / "empty-fm.md").write_text("---\n---\nbody after empty front matter\n")
    (notes / "only-fm.md").write_text("---\ntags: [a]\n---")
    (notes / "crlf.md").write_bytes(b"---\r\ntitle: x\r\n---\r\n# Windows\r\ntext\r\n")
    items = read("markdown", notes)
    texts = {i.ref: [d.text for d in i.drafts] for i in items}
    assert texts == {
        "alias.md": ["the day"],
        "crlf.md": ["# Windows\r\ntext"],
        "empty-fm.md": ["body after empty front matter"],
        "journal/day.md": ["the day"],
    }
    assert all("PIN" not in t for ts in texts.values() for t in ts)


def test_a_non_utf8_note_is_named_in_a_one_line_error(tmp_path: Path) -> None:
    notes = tmp_path / "vault"
    (notes / "old").mkdir(parents=True)
    (notes / "old" / "latin1.md").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
    with pytest.raises(InvalidExportError) as raised:
        read("markdown", notes)
    assert str(raised.value) == "old/latin1.md is not UTF-8 (byte 3)"


# -- identities ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["chatgpt", "claude"])
def test_conversations_without_ids_stay_apart(tmp_path: Path, fmt: str) -> None:
    if fmt == "chatgpt":
        convs = [
            _conversation(None, "hi"),
            _conversation(None, "hi"),
            _conversation("x" * 300, "a"),
        ]
    else:
        convs = [
            {"name": "", "chat_messages": [{"sender": "human", "text": "hi"}]},
            {"name": "", "chat_messages": [{"sender": "human", "text": "hi"}]},
            {"name": "x" * 300, "chat_messages": [{"sender": "human", "text": "a"}]},
        ]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(convs))
    items = read(fmt, path)
    sessions = [i.drafts[0].metadata["session"] for i in items]
    assert len(items) == 3 and len(set(sessions)) == 3
    again = [i.drafts[0].metadata["session"] for i in read(fmt, path)]
    assert again == sessions  # stable: a rerun finds the same turns


def test_id_less_conversations_import_as_two_and_rerun_as_none(
    store: Store, store_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([_conversation(None, "hi"), _conversation(None, "hi")]))
    args = ("--store", store_location, "import", "chatgpt", str(path), "--floor", "office")
    assert run_cli(capsys, *args)[1] == "Imported 2 memories into work.\n"
    assert run_cli(capsys, *args)[1] == "Imported 0 memories into work (2 already there).\n"


# -- the command ---------------------------------------------------------------------------------
def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_dash_reads_standard_input(
    store: Store,
    store_location: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stdin(monkeypatch, (FIXTURES / "mem0.json").read_bytes())
    args = ("--store", store_location, "import", "mem0", "-", "--floor", "office")
    code, out, err = run_cli(capsys, *args)
    assert (code, out) == (0, "Imported 3 memories into work.\n"), err
    _stdin(monkeypatch, b'{"text": "from a pipe"}\n')
    code, out, err = run_cli(capsys, "--store", store_location, "import", "-", "--floor", "office")
    assert (code, out) == (0, "Imported 1 memories into work.\n"), err
    _stdin(monkeypatch, b'{"text": "ok"}\n{"text": 5}\n')
    code, out, err = run_cli(capsys, "--store", store_location, "import", "-", "--floor", "office")
    assert code == 2 and err == "severance: error: stdin: line 2: text must be a string\n"
    code, out, err = run_cli(
        capsys, "--store", store_location, "import", "markdown", "-", "--floor", "office"
    )
    assert code == 2 and "not standard input" in err
    with store.enter(floor="office") as s:
        assert s.count() == 4


@pytest.mark.parametrize(
    "extra",
    [
        ("--route", "title~no-title-has-this -> nobody"),
        ("--route", "title~. -> work", "--default", "nobody"),
    ],
)
def test_a_persona_named_by_an_unused_rule_is_checked_too(
    store: Store,
    store_location: str,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
) -> None:
    audit = len(store.audit())
    args = ("--store", store_location, "import", "mem0", str(FIXTURES / "mem0.json"))
    for dry in ((), ("--dry-run",)):
        code, out, err = run_cli(capsys, *args, "--floor", "office", *extra, *dry)
        assert (code, out) == (3, "")
        assert err == "severance: error: no persona named 'nobody'\n"
    assert len(store.audit()) == audit
    with store.enter(floor="office") as s:
        assert s.count() == 0


def test_chatgpt_parts_as_one_string_or_as_text_are_read_whole(tmp_path: Path) -> None:
    one = _conversation("a", "ignored", ident="c1")
    one["mapping"]["a"]["message"]["content"] = {"content_type": "text", "parts": "whole words"}
    two = _conversation("b", "ignored", ident="c2")
    two["mapping"]["a"]["message"]["content"] = {"content_type": "text", "text": "as text"}
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([one, two]))
    assert [i.drafts[0].text for i in read("chatgpt", path)] == [
        "user: whole words",
        "user: as text",
    ]


def test_routes_match_whatever_unicode_form_the_export_used() -> None:
    rule = parse_route("title~caf\u00e9 -> home")  # typed composed
    decomposed = Item("Cafe\u0301 plans", ())  # as some exports (macOS file names) write it
    assert route([decomposed], [rule], "work")[0].persona == "home"
    rule = parse_route("project~^cre\u0300me$ -> home")  # typed decomposed
    assert route([Item("x", (), project="Cr\u00e8me")], [rule], "work")[0].persona == "home"
