"""The query a recall embeds (issue 11): a repeated query is answered from the embedder's cache
(bounded, per process) without running the model again, and a
:class:`~severance.embedders.base.QueryEmbedder` embeds on the caller's thread while the
worker does the keyword half, started when the model starts — with the results of embedding
first and searching after, its errors surfacing, and a forked child going on alone.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from tests.recall_golden import WordEmbedder, drafts, questions

import severance
from severance import Session, Store, session_recall
from severance.embedders.base import QueryEmbedder
from severance.embedders.minilm import MiniLM
from severance.errors import EmbedderError
from severance.search import PersonaIndex

LONG = "a very long question about the heron colony " * 20  # over the cacheable length


@pytest.fixture(autouse=True)
def always_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hybrid recalls overlap whenever they may, not as the machine's timings choose."""
    monkeypatch.setattr(session_recall, "OVERLAP_CHOOSES", False)


class CountingMiniLM(MiniLM):
    """The bundled model, counting what reaches it: calls that may run the model, by thread."""

    def __init__(self, cache_size: int = 1024) -> None:
        super().__init__(cache_size=cache_size)
        self.calls: list[tuple[str, str]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(("embed", threading.current_thread().name))
        return super().embed(texts)

    def embed_query(self, text: str, running: Callable[[], object]) -> npt.NDArray[np.float32]:
        self.calls.append(("embed_query", threading.current_thread().name))
        return super().embed_query(text, running)


@pytest.fixture(scope="module")
def reference() -> MiniLM:
    return MiniLM(cache_size=0)


def test_minilm_is_a_query_embedder_and_its_cache_is_bounded(reference: MiniLM) -> None:
    embedder = MiniLM(cache_size=2)
    assert isinstance(embedder, QueryEmbedder)
    q1, q2, q3 = "where is the heron", "what did Ana say", "when is the launch"
    assert embedder.cached_query(q1) is None  # a miss computes nothing
    told: list[str] = []
    first = embedder.embed_query(q1, lambda: told.append("running"))
    assert told == ["running"]  # once, as its model started
    np.testing.assert_allclose(first, reference.embed([q1]), atol=1e-6)
    hit = embedder.cached_query(q1)
    assert hit is not None and np.array_equal(hit, first)
    hit[:] = 0  # callers may scribble on what they get
    assert np.array_equal(embedder.embed([q1]), first)
    again = embedder.embed_query(q1, lambda: told.append("hit"))
    assert told == ["running", "hit"] and np.array_equal(again, first)
    embedder.embed([q2])
    embedder.embed_query(q3, lambda: None)
    # Bounded: the least recently used of three went out.
    assert embedder.cached_query(q1) is None
    assert embedder.cached_query(q2) is not None and embedder.cached_query(q3) is not None
    # Long texts are not kept; a disabled cache keeps nothing.
    embedder.embed_query(LONG, lambda: None)
    assert embedder.cached_query(LONG) is None
    assert reference.embed_query(q1, lambda: None).shape == (1, 384)
    assert reference.cached_query(q1) is None


def test_embed_query_rejects_what_embed_rejects(reference: MiniLM) -> None:
    with pytest.raises(severance.SeveranceError):
        reference.embed_query(b"bytes", lambda: None)  # type: ignore[arg-type]


def _counted(location: str) -> Iterator[tuple[Session, CountingMiniLM]]:
    embedder = CountingMiniLM()
    store = Store.init(location, embedder=embedder)
    store.add_persona("p")
    store.add_floor("p", persona="p")
    with store.enter(floor="p") as writer:
        writer.remember_many([d.text for d in drafts()[:200]])
    # A new session: its index is woken by its first recall (a writing session's is awake).
    session = store.enter(floor="p")
    try:
        yield session, embedder
    finally:
        session.close()
        store.close()


@pytest.fixture
def counted(store_location: str) -> Iterator[tuple[Session, CountingMiniLM]]:
    yield from _counted(store_location)


@pytest.fixture
def counted_sqlite(tmp_path: Path) -> Iterator[tuple[Session, CountingMiniLM]]:
    # SQLite only: a forked child may not go on with its parent's PostgreSQL connection.
    yield from _counted(str(tmp_path / "store"))


def test_a_repeated_query_is_not_embedded_again(
    counted: tuple[Session, CountingMiniLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, embedder = counted
    q = questions()[0]
    embedder.calls.clear()
    session.recall(questions()[1])
    # The first recall wakes the index: embedded on the worker meanwhile.
    assert [c for c, _ in embedder.calls] == ["embed_query"]
    assert embedder.calls[0][1].startswith("severance-embed")
    embedder.calls.clear()
    first = session.recall(q)
    # Then embedded here, saying when the model starts (the worker's keyword half's cue).
    assert embedder.calls == [("embed_query", threading.current_thread().name)]
    for mode in ("hybrid", "dense"):
        embedder.calls.clear()
        again = session.recall(q, mode=mode)  # type: ignore[arg-type]
        assert embedder.calls == []  # the cache answered
        if mode == "hybrid":
            assert [(r.memory.id, r.score) for r in again] == [
                (r.memory.id, r.score) for r in first
            ]
    # The same results as embedding first, inline, with no cache at all.
    monkeypatch.setattr(session_recall, "OVERLAP", False)
    embedder._cache_size = 0  # what cache_size=0 sets: nothing kept, nothing found
    embedder.calls.clear()
    inline = session.recall(q)
    assert embedder.calls == [("embed", threading.current_thread().name)]
    assert [r.memory.id for r in inline] == [r.memory.id for r in first]
    np.testing.assert_allclose([r.score for r in inline], [r.score for r in first], atol=1e-6)


class HandingOff(WordEmbedder):
    """The golden word embedder as a QueryEmbedder with a cache, failing on demand before or
    after its "model" starts."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, npt.NDArray[np.float32]] = {}
        self.fail: str | None = None
        self.threads: list[str] = []
        #: Called once the "model" runs (a test holds the model there).
        self.model_runs: Callable[[], object] = lambda: None

    def cached_query(self, text: str) -> npt.NDArray[np.float32] | None:
        hit = self.cache.get(text)
        return None if hit is None else hit.copy()

    def embed_query(self, text: str, running: Callable[[], object]) -> npt.NDArray[np.float32]:
        self.threads.append(threading.current_thread().name)
        if self.fail == "before":
            raise EmbedderError("the tokenizer is gone")
        running()
        self.model_runs()
        if self.fail == "after":
            raise EmbedderError("the model is gone")
        self.cache[text] = vector = self.embed([text])
        return vector


@pytest.fixture
def handing(tmp_path: Path) -> Iterator[tuple[Session, HandingOff]]:
    embedder = HandingOff()
    store = Store.init(str(tmp_path / "store"), embedder=embedder)
    store.add_persona("p")
    store.add_floor("p", persona="p")
    session = store.enter(floor="p")
    session.remember_many(drafts()[:600])
    try:
        yield session, embedder
    finally:
        session.close()
        store.close()


def test_the_hand_off_gives_the_sequential_results(
    handing: tuple[Session, HandingOff], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, embedder = handing
    qs = questions()[:20]
    prepared_on: list[str] = []
    prepare = PersonaIndex.prepare
    prepared = threading.Semaphore(0)

    def noting(index: PersonaIndex, *args: Any, **kwargs: Any) -> Any:
        prepared_on.append(threading.current_thread().name)
        try:
            return prepare(index, *args, **kwargs)
        finally:
            prepared.release()

    session.recall("heron")  # the index wakes (embedded on the worker meanwhile)
    embedder.threads.clear()
    monkeypatch.setattr(PersonaIndex, "prepare", noting)
    # The "model" runs until the keyword half is done (a real one takes milliseconds).
    embedder.model_runs = lambda: prepared.acquire(timeout=30)
    overlapped = [[(r.memory.id, r.score) for r in session.recall(q)] for q in qs]
    # Embedded here; the keyword half done on the worker meanwhile.
    assert embedder.threads == [threading.current_thread().name] * len(qs)
    assert len(prepared_on) == len(qs)
    assert all(t.startswith("severance-embed") for t in prepared_on)
    embedder.model_runs = lambda: None
    cached = [[(r.memory.id, r.score) for r in session.recall(q)] for q in qs]
    assert len(embedder.threads) == len(qs)  # every one came from the cache
    monkeypatch.setattr(session_recall, "OVERLAP", False)
    embedder.cache.clear()
    sequential = [[(r.memory.id, r.score) for r in session.recall(q)] for q in qs]
    assert overlapped == cached == sequential


@pytest.mark.parametrize("loaded", [False, True])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_query_embedder_error_surfaces_and_the_session_goes_on(
    handing: tuple[Session, HandingOff], when: str, loaded: bool
) -> None:
    # Not loaded: embedded on the worker while the index wakes; loaded: embedded here while
    # the worker does the keyword half.
    session, embedder = handing
    if loaded:
        session.recall("heron")
    q = questions()[3]
    embedder.fail = when
    with pytest.raises(EmbedderError):
        session.recall(q)  # neither hangs on the hand-off
    assert [r.memory.id for r in session.recall(q, mode="keyword")]
    embedder.fail = None
    assert [r.memory.id for r in session.recall(q)]


def test_a_forked_child_has_its_own_cache_and_locks(
    counted_sqlite: tuple[Session, CountingMiniLM],
) -> None:
    session, embedder = counted_sqlite
    asked, fresh = questions()[0], questions()[1]
    expected = {q: [r.memory.id for r in session.recall(q)] for q in (asked, fresh)}
    embedder.cached_query(asked)
    results: multiprocessing.Queue[tuple[str, ...]] = multiprocessing.get_context("fork").Queue()

    def child() -> None:
        embedder.calls.clear()
        repeated = [r.memory.id for r in session.recall(asked)]
        from_cache = not embedder.calls
        new = session.recall(fresh + " now")
        results.put((str(repeated == expected[asked]), str(from_cache), str(bool(new))))

    # Fork while another thread holds the cache's lock: the child has no such thread, so
    # it must not wait for the lock to be let go.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with embedder._locks()[0]:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    try:
        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
    finally:
        release.set()
        holder.join()
    process.join(120)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail("the forked child's recall hung on a lock of its parent's")
    assert process.exitcode == 0
    assert results.get(timeout=10) == ("True", "True", "True")
    # The parent's cache is its own: the child's new query is not in it.
    assert embedder.cached_query(fresh + " now") is None


class Paced(HandingOff):
    """A fake clock the embedder moves on: ``worker`` seconds per query embedded overlapped
    with the keyword half (``embed_query``), ``inline`` per query embedded inline; ``ways``
    notes which way each query went."""

    def __init__(self, worker: float, inline: float) -> None:
        super().__init__()
        self.now, self.costs = 0.0, {True: worker, False: inline}
        self.ways: list[str] = []
        self._in_query = False

    def clock(self) -> float:
        return self.now

    def embed_query(self, text: str, running: Callable[[], object]) -> npt.NDArray[np.float32]:
        self.ways.append("worker")
        self.now += self.costs[True]
        self._in_query = True
        try:
            return super().embed_query(text, running)
        finally:
            self._in_query = False

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not self._in_query and threading.current_thread() is threading.main_thread():
            self.ways.append("inline")
            self.now += self.costs[False]
        return super().embed(texts)


@pytest.mark.parametrize("faster", ["worker", "inline"])
def test_a_recaller_takes_the_faster_way_and_tries_the_other_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faster: str
) -> None:
    monkeypatch.setattr(session_recall, "OVERLAP_CHOOSES", True)
    embedder = Paced(worker=1.0, inline=9.0) if faster == "worker" else Paced(9.0, 1.0)
    monkeypatch.setattr(session_recall, "CLOCK", embedder.clock)
    store = Store.init(str(tmp_path / "store"), embedder=embedder)
    store.add_persona("p")
    store.add_floor("p", persona="p")
    with store.enter(floor="p") as session:
        session.remember_many(drafts()[:300])
        embedder.ways.clear()
        qs = questions()[: 2 + 2 * session_recall.PROBE_EVERY]
        results = [[r.memory.id for r in session.recall(q)] for q in qs]
        ways = embedder.ways
        # Each way once, then the faster, but for one try of the other every PROBE_EVERY.
        other = "inline" if faster == "worker" else "worker"
        assert ways[:2] == ["worker", "inline"]
        assert [i for i, w in enumerate(ways[2:], start=3) if w == other] == [
            session_recall.PROBE_EVERY,
            2 * session_recall.PROBE_EVERY,
        ]
        monkeypatch.setattr(session_recall, "OVERLAP", False)
        embedder.cache.clear()
        assert [[r.memory.id for r in session.recall(q)] for q in qs] == results
    store.close()
