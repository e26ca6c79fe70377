"""One extraction is one transaction: a failure on any of its writes, or a kill -9 between
them, leaves every operation of the run or none — on every back-end.

The run used throughout revises two memories the persona holds and adds two facts, keeping
its turn as an episode: five writes (the episode, the new facts, the update, the supersession)
and the audit entry. Failures are injected on the real back-end, *after* the k-th write was
made, so each must be undone by the rollback; kills land in a real child process blocked right
after its k-th write. The extractor is the real chat server of ``tests/llm_server.py``.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llm_server import FakeLLM, serve
from severance import Store
from severance.backends.postgres import PostgresBackend
from severance.backends.postgres_rows import PostgresPersonaRows
from severance.backends.sqlite import SQLiteBackend
from severance.backends.sqlite_rows import SQLitePersonaRows
from severance.chat import read_conversation
from severance.embedders import Embedder, load_embedder
from severance.errors import StorageError
from severance.search import Filter
from severance.session import Session
from severance.session_extract import PrimedEmbedder

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=30)
SAID = "My city is Berlin. My dog is now Max. My team is Blue."
#: What the run writes, in order.
WRITES = ["insert", "insert", "replace", "replace", "audit"]

ROWS: dict[str, type[Any]] = {"sqlite": SQLitePersonaRows, "postgres": PostgresPersonaRows}
BACKENDS: dict[str, type[Any]] = {"sqlite": SQLiteBackend, "postgres": PostgresBackend}


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    yield from serve()


def conversation() -> list[dict[str, Any]]:
    return [{"role": "user", "content": SAID}]


def state(s: Session) -> list[tuple[str, int, str, str]]:
    page = s.memories(limit=1000)
    return sorted((m.id, m.version, m.text, json.dumps(m.metadata)) for m in page.items)


def prepare(store: Store, llm: FakeLLM) -> None:
    store.set_extractor("work", llm.spec())
    with store.enter(floor="office") as s:
        s.remember("My city is Paris", kind="fact", occurred_at=T0)
        s.remember("My dog is Rex", kind="fact", occurred_at=T0)


def extract(s: Session) -> list[str]:
    made = s.remember_messages(conversation(), at=T1, session="c1", infer=True, keep_turns=True)
    return sorted(m.text for m in made)


class Writes:
    """Records the writes the back-end makes for a session (and, with ``fail_at``, fails the
    k-th of them just after it was made), from :meth:`start` on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, backend_name: str) -> None:
        self.events: list[str] = []
        self.fail_at: int | None = None
        self.on = False
        rows, backend = ROWS[backend_name], BACKENDS[backend_name]
        for cls, name, event in (
            (rows, "insert", "insert"),
            (rows, "replace", "replace"),
            (rows, "lock", "lock"),
            (backend, "append_audit", "audit"),
        ):
            monkeypatch.setattr(cls, name, self._wrap(getattr(cls, name), event))

    def _wrap(self, method: Callable[..., Any], event: str) -> Callable[..., Any]:
        def wrapped(obj: object, *args: Any, **kwargs: Any) -> Any:
            out = method(obj, *args, **kwargs)
            if self.on:
                self.events.append(event)
                if event != "lock" and self.written() == self.fail_at:
                    raise StorageError("injected failure after a write")
            return out

        return wrapped

    def note(self, event: str) -> None:
        if self.on:
            self.events.append(event)

    def written(self) -> int:
        return sum(1 for e in self.events if e != "lock" and e != "embed")

    def start(self, fail_at: int | None = None) -> None:
        self.events, self.fail_at, self.on = [], fail_at, True


class Recording:
    """The store's real embedder, noting each call in ``writes``."""

    def __init__(self, inner: Embedder, writes: Writes) -> None:
        self.inner, self.writes = inner, writes
        self.name, self.dimension, self.batch_size = inner.name, inner.dimension, 32

    def embed(self, texts: Any) -> Any:
        self.writes.note("embed")
        return self.inner.embed(texts)


def index_agrees_with_rows(s: Session) -> set[str]:
    rows = {m.id for m in s.memories(limit=1000).items}
    found = {
        r.memory.id for r in s.recall("city dog team", k=100, mode="dense", include_superseded=True)
    }
    assert found == rows
    assert s.search_index is not None
    assert set(s.search_index.ids_matching(Filter())) == rows
    return rows


def test_the_run_writes_everything_in_one_transaction_embedding_first(
    store: Store,
    store_location: str,
    llm: FakeLLM,
    backend_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepare(store, llm)
    writes = Writes(monkeypatch, backend_name)
    with Store.open(store_location, embedder=Recording(load_embedder(), writes)) as st:
        with st.enter(floor="office") as s:
            writes.start()
            assert extract(s) == [
                "My city is Berlin",
                "My city is Paris",
                "My dog is Max",
                "My team is Blue",
            ]
            writes.on = False
            assert [e for e in writes.events if e not in ("lock", "embed")] == WRITES
            # Every text is embedded before the write lock is taken: others wait for the
            # writes only, never for the model.
            first_lock = writes.events.index("lock")
            assert "embed" not in writes.events[first_lock:]
            assert len(s.memories().items) == 2 + 1 + 2
            index_agrees_with_rows(s)
        assert [e.event for e in st.audit("work")][-2:] == ["extraction", "exit"]


@pytest.mark.parametrize("k", range(1, len(WRITES) + 1))
def test_a_failure_on_any_write_leaves_none_of_the_run(
    store: Store,
    store_location: str,
    llm: FakeLLM,
    backend_name: str,
    monkeypatch: pytest.MonkeyPatch,
    k: int,
) -> None:
    prepare(store, llm)
    writes = Writes(monkeypatch, backend_name)
    with store.enter(floor="office") as s:
        index_agrees_with_rows(s)  # the index is loaded, as a long-lived session's is
        before, events = state(s), [e.event for e in store.audit("work")]
        counts = {k: s.counts[k] for k in ("remembered", "updated")}
        writes.start(fail_at=k)
        with pytest.raises(StorageError, match="injected"):
            extract(s)
        writes.on = False
        assert writes.written() == k
        assert state(s) == before
        assert {k: s.counts[k] for k in ("remembered", "updated")} == counts
        rows = index_agrees_with_rows(s)
        # The sequence numbers the rollback gave back are reused by the next writer: this
        # session must still see what another process writes with them.
        with Store.open(store_location) as other, other.enter(floor="office") as theirs:
            late = theirs.remember("My car is red", kind="fact")
        assert late.id in {r.memory.id for r in s.recall("my car", k=10)}
        assert index_agrees_with_rows(s) == rows | {late.id}
        # Nothing was half done: running it again writes it all, once.
        assert extract(s) == [
            "My city is Berlin",
            "My city is Paris",
            "My dog is Max",
            "My team is Blue",
        ]
        assert len(s.memories().items) == 3 + 1 + 2
        index_agrees_with_rows(s)
    assert store.verify_audit().ok
    after = [e.event for e in store.audit("work")]
    # The failed run left no entry of its own; the second one its one "extraction".
    assert after[len(events) :].count("extraction") == 1


def test_after_a_failed_run_a_memory_another_process_stored_is_still_known(
    store: Store,
    store_location: str,
    llm: FakeLLM,
    backend_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two conversations with their turns kept: the second one's duplicate check reads the
    # change feed past the first one's (uncommitted) rows. After the rollback that place in
    # the feed is past what committed, and must not hide the next writer's rows.
    prepare(store, llm)
    writes = Writes(monkeypatch, backend_name)
    runs = [
        read_conversation([{"role": "user", "content": text}], at=T1, session=name)
        for name, text in (("a", "My team is Blue"), ("b", "My desk is Four"))
    ]
    with store.enter(floor="office") as s:
        s.remember("warm-up")  # the duplicate check has been built, as in a busy session
        writes.start(fail_at=4)
        with pytest.raises(StorageError, match="injected"):
            s.extract(runs, keep_turns=True)
        writes.on = False
        with Store.open(store_location) as other, other.enter(floor="office") as theirs:
            first = theirs.remember("Standup is at 9:30", kind="fact")
        again = s.remember("Standup is at 9:30", kind="fact")
        assert again.duplicate and again.id == first.id


def test_primed_texts_are_answered_from_memory() -> None:
    calls: list[list[str]] = []
    inner = load_embedder()

    class Counting:
        name, dimension, batch_size = inner.name, inner.dimension, inner.batch_size

        def embed(self, texts: Any) -> Any:
            calls.append(list(texts))
            return inner.embed(texts)

    primed = PrimedEmbedder(Counting())
    with primed.primed(["alpha beta", "gamma", "alpha beta"]):
        assert calls == [["alpha beta", "gamma"]]
        both = primed.embed(["gamma", "delta", "alpha beta"])
        assert calls[-1] == ["delta"]  # only the text it was not primed with
        assert np.allclose(both, inner.embed(["gamma", "delta", "alpha beta"]), atol=1e-6)
    primed.embed(["gamma"])
    assert calls[-1] == ["gamma"]  # the block is over: nothing is kept


# -- kill -9 between the writes -------------------------------------------------------------------
CHILD = r"""
import sys, time
import severance
from severance.backends.sqlite_rows import SQLitePersonaRows
from severance.backends.postgres_rows import PostgresPersonaRows

location, stop_after = sys.argv[1], int(sys.argv[2])
written = [0]

def blocking(method):
    def wrapped(obj, *args, **kwargs):
        out = method(obj, *args, **kwargs)
        written[0] += 1
        sys.stdout.write(f"wrote {written[0]}\n")
        sys.stdout.flush()
        if written[0] == stop_after:
            time.sleep(600)  # holding the transaction open until the kill
        return out
    return wrapped

for cls in (SQLitePersonaRows, PostgresPersonaRows):
    cls.insert = blocking(cls.insert)
    cls.replace = blocking(cls.replace)
with severance.Store.open(location) as store, store.enter(floor="office") as s:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    s.remember_messages(
        [{"role": "user", "content": sys.argv[3]}], at=sys.argv[4], session="c1",
        infer=True, keep_turns=True,
    )
    sys.stdout.write("done\n")
    sys.stdout.flush()
"""


def run_child(script: Path, location: str, stop_after: int) -> list[str]:
    """Run the extraction in a child; SIGKILL it once it made ``stop_after`` writes (0: let
    it finish). Returns the lines it printed."""
    with subprocess.Popen(
        [sys.executable, str(script), location, str(stop_after), SAID, T1.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        want = f"wrote {stop_after}" if stop_after else "done"
        while want not in lines:
            line = proc.stdout.readline()
            if not line:
                proc.kill()
                raise AssertionError(f"the child ended early: {proc.stderr.read()}")
            lines.append(line.strip())
        if stop_after:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == (-signal.SIGKILL if stop_after else 0)
    return lines


def test_kill_9_between_the_writes_of_an_extraction_leaves_none_of_them(
    store: Store, store_location: str, llm: FakeLLM, backend_name: str, tmp_path: Path
) -> None:
    prepare(store, llm)
    with store.enter(floor="office") as s:
        before = state(s)
    store.close()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    for stop_after in range(1, len(WRITES)):  # after each write of memory rows
        run_child(script, store_location, stop_after)
        if backend_name == "sqlite":
            with closing(sqlite3.connect(Path(store_location) / "store.db")) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        with Store.open(store_location) as st:
            assert st.verify_audit().ok, stop_after
            assert "extraction" not in [e.event for e in st.audit("work")], stop_after
            with st.enter(floor="office") as s:
                assert state(s) == before, stop_after
                index_agrees_with_rows(s)
    # The store is whole: the same run now goes through, entirely.
    assert run_child(script, store_location, 0)[-1] == "done"
    with Store.open(store_location) as st:
        assert st.verify_audit().ok
        assert [e.event for e in st.audit("work")].count("extraction") == 1
        with st.enter(floor="office") as s:
            texts = sorted(m.text for m in s.memories(limit=100).items)
            facts = ["My city is Paris", "My dog is Max", "My city is Berlin", "My team is Blue"]
            assert texts == sorted([*facts, f"user: {SAID}"])
            index_agrees_with_rows(s)
