"""Crossings against a concurrent writer in *another process* (issue 9, findings 2-6).

Each test starts a real child process that opens the same store (SQLite file or PostgreSQL
database) and writes in a bounded loop — update, forget or remember — printing one line per
write it was *acknowledged*, while this process runs a move, a re-embed, a clean slate or a
key rotation. The invariants are the product's promises: nothing acknowledged is lost, nothing
forgotten comes back, every vector opens for its memory's current version, an erased persona
holds nothing afterwards and the erase counted everything acknowledged, and a running process
keeps working after a rotation or notices an erasure on its next call.
"""

from __future__ import annotations

import queue
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import severance
from severance import PersonaErasedError
from severance.awake import AwakeSessions

#: Memories in the moved persona: enough that a move takes long enough to race.
N_MOVED = 800
#: At most this many writes per child (the loops are bounded whatever happens).
MAX_WRITES = 400

CHILD = textwrap.dedent(
    """
    import sys, random
    import severance
    from severance import SeveranceError

    location, floor, op, *args = sys.argv[1:]
    store = severance.Store.open(location)
    session = store.enter(floor=floor)
    session.count()
    print("ready", flush=True)
    rng = random.Random(5)
    try:
        for i in range({max_writes}):
            if op == "update":
                text = f"{{args[0]}} v{{i + 1}}"
                session.update(args[1], text)
                print("ack", text, flush=True)
            elif op == "update-some":
                memory_id = rng.choice(args)
                text = f"revised note {{i}} for {{memory_id}}"
                session.update(memory_id, text)
                print("ack", memory_id, text, flush=True)
            elif op == "forget":
                if i >= len(args):
                    break
                session.forget(args[i])
                print("ack", args[i], flush=True)
            elif op == "remember":
                print("ack", session.remember(f"late note {{i}}").id, flush=True)
    except SeveranceError as e:
        print("stop", type(e).__name__, flush=True)
    print("done", flush=True)
    """
).format(max_writes=MAX_WRITES)


@dataclass
class Writer:
    """A child process writing to the store; its acknowledged writes, as they come."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    acks: list[str] = field(default_factory=list)
    stopped_by: str | None = None

    def _next(self, timeout: float) -> str:
        line = self.lines.get(timeout=timeout)
        if line.startswith("ack "):
            self.acks.append(line[4:])
        elif line.startswith("stop "):
            self.stopped_by = line[5:]
        return line

    def wait_acks(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acks) < n:
            line = self._next(max(0.1, deadline - time.monotonic()))
            assert line != "done", f"the writer ended after {len(self.acks)} writes"

    def finish(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self._next(max(0.1, deadline - time.monotonic())) != "done":
            pass
        assert self.process.wait(timeout=60) == 0


@contextmanager
def writer(location: str, floor: str, op: str, *args: str) -> Iterator[Writer]:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, location, floor, op, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        w = Writer(proc)
        assert proc.stdout is not None and proc.stderr is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                w.lines.put(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = w.lines.get(timeout=120)
            assert first == "ready", proc.stderr.read() or first
            yield w
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=60)


def distinct_texts(n: int) -> list[str]:
    rng = random.Random(3)
    syllables = [a + b for a in "kmnrstvz" for b in "aeiou"][:20]

    def word() -> str:
        return "".join(rng.choice(syllables) for _ in range(3))

    return [f"{word()} {word()} {word()} {word()}" for _ in range(n)]


def every_memory(store: severance.Store, floor: str) -> list[severance.Memory]:
    with store.enter(floor=floor) as s:
        return s.export()


# -- finding 2: a move loses acknowledged updates ------------------------------------------------
def test_a_move_keeps_every_update_acknowledged_while_it_runs(
    store: severance.Store, store_location: str
) -> None:
    with store.enter(floor="office") as s:
        s.remember_many(distinct_texts(N_MOVED))
        lease = s.remember("The office lease ends in 2031")
    with writer(store_location, "office", "update", "The office lease ends in 2031", lease.id) as w:
        w.wait_acks(3)
        store.reintegrate("work", "home", mode="move")
        w.finish()
    lineage = [
        m
        for floor in ("office", "house")
        for m in every_memory(store, floor)
        if m.id == lease.id or any(o.get("memory_id") == lease.id for o in m.provenance)
    ]
    # In exactly one place, saying what the last acknowledged update said.
    assert len(lineage) == 1
    assert lineage[0].text == w.acks[-1]
    assert len(every_memory(store, "house")) == N_MOVED + 1
    assert w.stopped_by == "MemoryNotFoundError"  # updates after the move find it gone


# -- finding 3: a forgotten memory comes back ----------------------------------------------------
def test_a_memory_forgotten_while_a_move_runs_stays_forgotten(
    store: severance.Store, store_location: str
) -> None:
    texts = distinct_texts(N_MOVED)
    with store.enter(floor="office") as s:
        made = s.remember_many(texts)
    text_of = {m.id: m.text for m in made}
    doomed = [m.id for m in made[:MAX_WRITES]]
    with writer(store_location, "office", "forget", *doomed) as w:
        w.wait_acks(3)
        store.reintegrate("work", "home", mode="move")
        w.finish()
    forgotten = {text_of[i] for i in w.acks}
    home = {m.text for m in every_memory(store, "house")}
    assert not forgotten & home  # no acknowledged forget is undone by the move
    assert home | forgotten == set(texts)  # and nothing else is missing
    assert every_memory(store, "office") == []


# -- finding 4: re-embedding races an update -----------------------------------------------------
def test_reembedding_while_another_process_updates_leaves_every_vector_current(
    store: severance.Store, store_location: str
) -> None:
    with store.enter(floor="office") as s:
        made = s.remember_many(distinct_texts(N_MOVED))
    ids = [m.id for m in made[::25]]
    with writer(store_location, "office", "update-some", *ids) as w:
        w.wait_acks(3)
        assert store.reembed("work") == N_MOVED
        w.finish()  # updates go on after the re-embed, up to MAX_WRITES
    assert w.stopped_by is None
    latest: dict[str, str] = {}
    for ack in w.acks:
        memory_id, text = ack.split(" ", 1)
        latest[memory_id] = text
    with severance.Store.open(store_location) as fresh, fresh.enter(floor="office") as s:
        for memory_id, text in latest.items():
            (top,) = s.recall(text, k=1, mode="dense")
            # The vector opens, and is the vector of the current text.
            assert top.memory.id == memory_id and top.memory.text == text
        assert s.quarantined() == []
        assert len(s.export()) == N_MOVED


# -- finding 5: clean slate while a server writes ------------------------------------------------
def test_a_clean_slate_counts_every_acknowledged_write_and_leaves_no_orphans(
    store: severance.Store, store_location: str, backend_name: str
) -> None:
    with store.enter(floor="house") as s:
        s.remember_many(distinct_texts(50))
        persona_id = s.persona_id
    with writer(store_location, "house", "remember") as w:
        w.wait_acks(5)
        erased = store.clean_slate("home", confirm="home")
        w.finish()
    assert w.stopped_by == "PersonaErasedError"  # its next write was refused, not orphaned
    assert erased == 50 + len(w.acks)  # every acknowledged write was erased, and counted
    if backend_name == "sqlite":
        with closing(sqlite3.connect(Path(store_location) / "store.db")) as db:
            for table in ("memories", "history", "tombstones", "snapshots"):
                left = db.execute(
                    f"SELECT count(*) FROM {table} WHERE persona_id = ?", (persona_id,)
                ).fetchone()[0]
                assert left == 0, table
    else:
        from severance.backends import open_backend

        backend = open_backend(store_location)
        try:
            assert backend.rows(persona_id).count() == 0
        finally:
            backend.close()


# -- finding 6 and "notices on its next request" -------------------------------------------------
def run_in_child(location: str, code: str) -> None:
    script = f"import severance\nstore = severance.Store.open({location!r})\n{code}\nstore.close()"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_running_store_keeps_working_after_another_process_rotates_the_key(
    store: severance.Store, store_location: str
) -> None:
    with store.enter(floor="house") as s:
        s.remember("Water the plants on Sunday")
    server = AwakeSessions(store)
    work = store.persona("work")
    server.for_floor("office", work.id).remember("Quarterly numbers are due")

    run_in_child(store_location, "store.rotate_key()")

    # Personas not yet awake still wake (no "tampered or wrong key" until restart) ...
    home = server.for_floor("house", store.persona("home").id)
    assert [m.text for m in home.memories().items] == ["Water the plants on Sunday"]
    assert server.for_floor("office", work.id).count() == 1
    # ... and new personas are wrapped with the new key, so every process can open them.
    store.add_persona("garden")
    store.add_floor("shed", persona="garden")
    server.close()
    run_in_child(
        store_location, "with store.enter(floor='shed') as s: s.remember('Sharpen the shears')"
    )
    assert [m.text for m in every_memory(store, "shed")] == ["Sharpen the shears"]


def test_a_running_store_notices_a_clean_slate_made_elsewhere(
    store: severance.Store, store_location: str
) -> None:
    server = AwakeSessions(store)
    side = store.persona("side")
    awake = server.for_floor("studio", side.id)
    awake.remember("Sketch the bakery logo")
    awake.recall("logo")  # the index is loaded and warm

    run_in_child(
        store_location,
        "store.clean_slate('side', confirm='side')\n"
        "store.add_persona('side')\n"
        "store.add_floor('studio', persona='side')",
    )

    # The next call learns the persona is gone: nothing is served from the warm index.
    with pytest.raises(PersonaErasedError):
        awake.recall("logo")
    with pytest.raises(PersonaErasedError):
        awake.remember("written after the erasure")
    # The server wakes the new persona of that name on the next request: empty.
    again = server.for_floor("studio", store.persona("side").id)
    assert again is not awake and again.memories().items == ()
    server.close()


def test_a_clean_slate_made_elsewhere_leaves_no_thread_behind(
    store: severance.Store, store_location: str, backend_name: str
) -> None:
    def embedding_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("severance-embed")]

    before = embedding_threads()
    awake = store.enter(floor="studio")
    awake.remember("Sketch the bakery logo")
    # Hybrid, and a query not in the embedder's cache: embedded on the session's worker thread.
    awake.recall(f"a sketch for the bakery on {backend_name}")
    assert len(embedding_threads()) == len(before) + 1

    run_in_child(store_location, "store.clean_slate('side', confirm='side')")

    with pytest.raises(PersonaErasedError):
        awake.recall("logo")
    # The session learned of the erasure by itself: its worker went with it.
    assert embedding_threads() == before
    awake.close()
