"""Chat-shaped input (severance.chat, Session.remember_messages, `remember --file`) and no
accidental duplicates (severance.duplicates), on every back-end."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from severance import InvalidInputError, Store
from severance.chat import message_text, read_conversation
from severance.cli import main
from severance.duplicates import identity, normalise
from severance.errors import InvalidTurnsError

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

OPENAI = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Book the Lisbon offsite", "timestamp": "2024-05-01T10:00:00Z"},
    {"role": "assistant", "content": [{"type": "text", "text": "Booked for June 3."}]},
    {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "input_text", "text": "Here is the venue."},
            {"type": "text", "text": "Café Lumière, 2º andar ✓"},
        ],
    },
    {"role": "assistant", "content": None, "tool_calls": []},
]


def test_message_text_joins_text_parts_and_skips_the_rest() -> None:
    assert message_text("hi") == "hi"
    assert message_text(None) == ""
    assert message_text([{"type": "image", "source": {}}, "a", {"type": "text", "text": "b"}]) == (
        "a\n\nb"
    )
    assert message_text([{"type": "tool_use", "name": "x", "input": {}}]) == ""
    for bad in (3, {"type": "text"}, [3], [{"type": "text", "text": 5}]):
        with pytest.raises(InvalidInputError):
            message_text(bad)


def test_openai_and_anthropic_messages_become_one_conversation() -> None:
    records = [dict(r) for r in OPENAI]
    records[-1].pop("tool_calls")
    conv = read_conversation(records, now=T0)
    texts = [d.text for d in conv.drafts]
    assert texts == [
        "system: You are helpful.",
        "user: Book the Lisbon offsite",
        "assistant: Booked for June 3.",
        "user: Here is the venue.\n\nCafé Lumière, 2º andar ✓",
    ]
    assert conv.skipped == 1  # the assistant message with content null
    assert conv.session.startswith("s_")
    assert {d.metadata["session"] for d in conv.drafts} == {conv.session}
    assert [d.metadata["turn"] for d in conv.drafts] == [0, 1, 2, 3]
    # The first turn has no time: `now`; later ones inherit the previous turn's.
    assert [d.occurred_at for d in conv.drafts] == [
        T0,
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
    ]
    assert {(d.kind, d.source) for d in conv.drafts} == {("episode", "chat")}


def test_conversation_options_apply_to_every_turn() -> None:
    conv = read_conversation(
        [{"speaker": "ann", "text": "hi"}, {"role": "user", "content": "yo", "tags": ["x"]}],
        session="call-7",
        at="2024-01-02T03:04:05+01:00",
        tags=["offsite"],
        metadata={"channel": "slack"},
        source="slack-export",
        kind="note",
    )
    assert [d.tags for d in conv.drafts] == [("offsite",), ("offsite", "x")]
    assert all(d.metadata["channel"] == "slack" for d in conv.drafts)
    assert {d.source for d in conv.drafts} == {"slack-export"}
    assert {d.kind for d in conv.drafts} == {"note"}
    assert {d.occurred_at for d in conv.drafts} == {datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)}
    assert conv.session == "call-7"


BAD: list[tuple[str, Any]] = [
    ("not a list", {"role": "user", "content": "x"}),
    ("a string", "hello"),
    ("no role", [{"content": "x"}]),
    ("empty role", [{"role": " ", "content": "x"}]),
    ("unknown field", [{"role": "user", "content": "x", "mood": "ok"}]),
    ("mixed fields", [{"role": "user", "text": "x"}]),
    ("neither shape", [{"body": "x"}]),
    ("content a number", [{"role": "user", "content": 5}]),
    ("bad timestamp", [{"role": "user", "content": "x", "timestamp": "soon"}]),
    ("session conflict", [{"role": "user", "content": "x", "session": "other"}]),
    ("only images", [{"role": "user", "content": [{"type": "image"}]}]),
    ("empty", []),
    ("second bad", [{"role": "user", "content": "x"}, {"role": "user", "content": 5}]),
]


@pytest.mark.parametrize(("case", "records"), BAD, ids=[c for c, _ in BAD])
def test_bad_conversations_are_refused(case: str, records: Any) -> None:
    with pytest.raises(InvalidTurnsError) as info:
        read_conversation(records, session="mine")
    if case == "second bad":
        assert str(info.value).startswith("turn 2:")


def test_remember_messages_keeps_one_session_and_is_idempotent(store: Store) -> None:
    with store.enter(floor="office") as s:
        first = s.remember_messages(OPENAI[:3], session="c1", at=T0)
        assert [m.metadata["session"] for m in first] == ["c1"] * 3
        assert not any(m.duplicate for m in first)
        # The same conversation again: nothing new; the same memories come back, marked.
        again = s.remember_messages(OPENAI[:3], session="c1", at=T0)
        assert [m.id for m in again] == [m.id for m in first]
        assert all(m.duplicate for m in again)
        # The same words in another conversation are other memories.
        other = s.remember_messages(OPENAI[:3], session="c2", at=T0)
        assert not any(m.duplicate for m in other)
        assert s.count() == 6
        hits = s.recall("Lisbon offsite", k=1)
        assert hits[0].memory.text == "user: Book the Lisbon offsite"


def test_identity_rules() -> None:
    assert normalise("  Dentist\u00a0on  THURSDAY\n") == "dentist on thursday"
    same = identity("Invoice 4411 is paid", "fact", ("a", "b"), {})
    assert identity("invoice  4411 IS paid", "fact", ("b", "a"), {"x": 1}) == same
    assert identity("Invoice 4412 is paid", "fact", ("a", "b"), {}) != same
    assert identity("Invoice 4411 is paid", "note", ("a", "b"), {}) != same
    assert identity("Invoice 4411 is paid", "fact", ("a",), {}) != same


def test_unicode_spellings_of_one_text_merge_but_distinct_characters_do_not(
    store: Store,
) -> None:
    # One text, two spellings: composed or decomposed accents, case, odd white space.
    assert normalise("Caf\u00e9 cr\u00e8me") == normalise("CAFE\u0301  cre\u0300me")
    assert normalise("Stra\u00dfe") == normalise("STRASSE")
    # Compatibility characters change what a fact says: never folded together.
    for a, b in (("2\u2075 = 32", "25 = 32"), ("H\u2082O", "H2O"), ("\u00bd cup", "12 cup")):
        assert normalise(a) != normalise(b)
    with store.enter(floor="office") as s:
        kept = s.remember_many(["2\u2075 = 32", "25 = 32", "x\u00b2 + 1", "x2 + 1"])
        assert not any(m.duplicate for m in kept) and len({m.id for m in kept}) == 4
        assert s.remember("cafe\u0301 order").id == s.remember("CAF\u00c9 ORDER").id


def test_remembering_a_live_memory_returns_it(store: Store, store_location: str) -> None:
    with store.enter(floor="office") as s:
        a = s.remember("Invoice 4411 is paid", kind="fact", tags=["billing"])
        b = s.remember("  invoice 4411 IS paid ", kind="fact", tags=["billing"])
        assert (b.id, b.duplicate, a.duplicate) == (a.id, True, False)
        assert b.to_dict()["duplicate"] is True and a.to_dict()["duplicate"] is False
        # Near-duplicates, another kind, other tags: all kept apart.
        kept = [
            s.remember("Invoice 4412 is paid", kind="fact", tags=["billing"]),
            s.remember("Invoice 4411 is paid", kind="note", tags=["billing"]),
            s.remember("Invoice 4411 is paid", kind="fact"),
        ]
        assert not any(m.duplicate for m in kept)
        # Same words, an explicit other time: another event.
        lunch1 = s.remember("Team lunch at the ramen place", occurred_at="2023-01-01T12:00:00Z")
        lunch2 = s.remember("Team lunch at the ramen place", occurred_at="2024-06-01T12:00:00Z")
        lunch3 = s.remember("Team lunch at the ramen place", occurred_at="2024-06-01T12:00:00Z")
        assert lunch1.id != lunch2.id == lunch3.id and lunch3.duplicate
        # Within one batch the repeat points at the first.
        batch = s.remember_many(["Fresh fact", "fresh   FACT", "Invoice 4411 is paid"])
        assert batch[1].id == batch[0].id and batch[1].duplicate
        assert batch[2].id != a.id  # kind note, no tags: not the fact
        count = s.count()
        # Another process writes; this session's next remember sees it.
        with Store.open(store_location) as other, other.enter(floor="office") as theirs:
            made = theirs.remember("Written elsewhere")
        assert s.remember("written elsewhere").id == made.id
        # An updated memory answers for its new words only.
        note = s.remember("Standup at 9:30")
        s.update(note.id, "Standup at 10:00")
        assert s.remember("standup at 10:00").id == note.id
        moved = s.remember("Standup at 9:30")
        assert moved.id != note.id and not moved.duplicate
        s.forget(moved.id)
        # A forgotten memory is not a duplicate of anything any more.
        s.forget(a.id)
        back = s.remember("Invoice 4411 is paid", kind="fact", tags=["billing"])
        assert back.id != a.id and not back.duplicate
        assert s.count() == count + 2  # "written elsewhere" and the standup note
    # Other personas never answer as duplicates.
    with store.enter(floor="house") as h:
        assert not h.remember("Invoice 4412 is paid", kind="fact", tags=["billing"]).duplicate


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


def test_cli_remember_reads_messages_and_text_from_stdin(
    store: Store,
    store_location: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    s = ("--store", store_location)
    code, out, err = _cli(
        monkeypatch,
        capsys,
        *s,
        "remember",
        "--floor",
        "office",
        "-",
        stdin=b"hi from a pipe\n",
    )
    assert code == 0, err
    body = json.dumps({"messages": OPENAI[:3]}).encode()
    code, out, err = _cli(
        monkeypatch,
        capsys,
        *s,
        "remember",
        "--floor",
        "office",
        "--file",
        "-",
        "--tag",
        "chat",
        "--meta",
        '{"app": "cli"}',
        "--source",
        "pipe",
        "--session",
        "c9",
        "--occurred",
        "2024-05-01T08:00:00Z",
        "--json",
        stdin=body,
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["remembered"], result["already_known"], result["session"]) == (3, 0, "c9")
    code, out, err = _cli(
        monkeypatch,
        capsys,
        *s,
        "remember",
        "--floor",
        "office",
        "--file",
        "-",
        "--session",
        "c9",
        "--tag",
        "chat",
        "--meta",
        '{"app": "cli"}',
        "--source",
        "pipe",
        stdin=body,
    )
    assert out == "Remembered 0 turns in persona work (3 already known).\n", err
    with store.enter(floor="office") as w:
        items = w.memories(limit=10).items
    texts = {m.text: m for m in items}
    assert "hi from a pipe" in texts and "-" not in texts
    turn = texts["system: You are helpful."]
    assert turn.tags == ("chat",) and turn.source == "pipe" and turn.metadata["app"] == "cli"
    assert turn.occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    code, out, err = _cli(
        monkeypatch, capsys, *s, "remember", "--floor", "office", "x", "--session", "c1"
    )
    assert code == 2 and err.startswith("severance: error: --session goes with --file")


def test_cli_remember_dash_in_a_real_process(store: Store, store_location: str) -> None:
    store.close()
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "severance"),
            "--store",
            store_location,
            "remember",
            "--floor",
            "office",
            "--file",
            "-",
        ],
        input=json.dumps(OPENAI[1:3]).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "Remembered 2 turns in persona work.\n"
