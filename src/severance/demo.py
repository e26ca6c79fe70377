"""``severance demo``: a scripted story on a throw-away store.

A work persona and a home persona each learn a few things; recall finds the right ones; the
same questions asked on the other floor find nothing of the other life; an id from one life is
"not found" in the other; the raw database files hold none of the words; the audit chain
verifies. Everything printed comes from real calls on a real store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import MemoryNotFoundError
from .store import Store

WORK = [
    ("The Q3 launch moved to October 12", "fact", ["launch"]),
    ("The Acme contract renewal is due on March 1", "fact", ["acme"]),
    ("The staging database password rotates every Monday", "note", []),
    ("Standup moved to 9:30 in room 4B", "fact", []),
]
HOME = [
    ("Sarah's birthday is June 3; she would love a pottery class", "fact", ["family"]),
    ("Dentist appointment on Tuesday at 4 pm", "fact", []),
    ("Planning a trip to Lisbon in October with the kids", "note", ["travel"]),
    ("Prefers oat milk in coffee", "preference", []),
]
# Below this cosine similarity (and with no shared keyword) a memory is not an answer.
MIN_SIMILARITY = 0.4
QUESTIONS = ["When is the launch?", "What should I get Sarah for her birthday?"]
#: What each client sends in MCP ``clientInfo.name`` (the CLI sends severance-cli).
CLIENTS = {
    "claude-code": "Claude Code",
    "cursor-vscode": "Cursor",
    "severance-cli": "the terminal",
    "claude-ai": "Claude Desktop",
}
ROUTES = [
    ("claude-code", "~/work/acme", "work"),
    ("cursor-vscode", "~/work/acme", "work"),
    ("severance-cli", "~/work/acme", "work"),
    ("claude-ai", "~", "home"),
    ("cursor-vscode", "~/photos", "home"),
]


def run(echo: Callable[[str], None] = print) -> bool:
    """Run the story; returns True if every isolation check held."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="severance-demo-") as tmp:
        root = Path(tmp)
        store_dir = root / "store"
        store = Store.init(store_dir, key_file=root / "keys" / "demo.key")
        echo(f"Created a store in {store_dir} (its key lives outside it, in {root / 'keys'}).")
        store.add_persona("work")
        store.add_persona("home")
        store.add_floor(
            "office",
            persona="work",
            clients=["claude-code", "cursor", "terminal"],
            paths=["~/work/**"],
        )
        store.add_floor("house", persona="home", default=True)
        echo("Two personas, work and home. Floor 'office' wakes work for Claude Code, Cursor or")
        echo(
            "the terminal in ~/work; every other context lands on floor 'house', which wakes home."
        )
        echo("Each line below is what that client really sends, resolved by the real floors:\n")

        for client, path, expected in ROUTES:
            match = store.resolve(client=client, path=path)
            shown = f"{CLIENTS[client]} ({client!r}) in {path}"
            echo(f"  {shown:<46} floor {match.floor.name} -> {match.persona}")
            if match.persona != expected:
                ok = False
                echo(f"  WRONG PERSONA: expected {expected}")
        echo("")

        work_ids = []
        with store.enter(client="claude-code", path="~/work/acme") as work:
            for text, kind, tags in WORK:
                work_ids.append(work.remember(text, kind=kind, tags=tags).id)
            echo(f"work learned {len(WORK)} things while awake.")
        with store.enter(client="claude-ai", path="~") as home:
            for text, kind, tags in HOME:
                home.remember(text, kind=kind, tags=tags)
            echo(f"home learned {len(HOME)} things while awake.\n")

        for question in QUESTIONS:
            echo(f"Q: {question}")
            for floor in ("office", "house"):
                with store.enter(floor=floor) as s:
                    top = s.recall(question, k=1, min_similarity=MIN_SIMILARITY)
                    answer = top[0].memory.text if top else "nothing: it never learned that"
                    echo(f"   {s.persona:>4} answers: {answer}")
                    mine = {t for t, _, _ in (WORK if s.persona == "work" else HOME)}
                    leaked = [r for r in s.recall(question, k=10) if r.memory.text not in mine]
                    if leaked:
                        ok = False
                        echo(f"   LEAK: {s.persona} saw {len(leaked)} memories of the other life")
            echo("")

        with store.enter(floor="house") as home:
            try:
                home.get(work_ids[0])
                ok = False
                echo("LEAK: home could read a work memory by id")
            except MemoryNotFoundError as e:
                echo(
                    f"home asks for a work memory by its id: {e} — exactly what a made-up id gets."
                )
            echo(f"home holds {home.count()} memories; it cannot even count work's.")
        store.close()

        files = [p for p in store_dir.iterdir() if p.is_file()]
        raw = b"".join(p.read_bytes() for p in files)
        words = [b"Acme", b"launch", b"Sarah", b"Lisbon", b"pottery"]
        found = [w.decode() for w in words if w in raw]
        echo(
            f"\nScanned {len(files)} database files ({len(raw):,} bytes) for "
            f"{', '.join(w.decode() for w in words)}: "
            + (f"FOUND {', '.join(found)}" if found else "none found — all of it is encrypted.")
        )
        ok = ok and not found

        store = Store.open(store_dir, key_file=root / "keys" / "demo.key")
        result = store.verify_audit()
        echo(
            f"The audit chain holds {result.entries} entries and "
            + ("verifies." if result.ok else f"is BROKEN at {result.first_bad_seq}.")
        )
        ok = ok and result.ok
        store.close()
    echo("\nEvery check held: work and home never met." if ok else "\nSOMETHING LEAKED.")
    return ok
