"""A hybrid recall embeds its query on a worker thread while the keyword half runs: the
results are those of embedding first and searching after, and so are its errors.

Also the keyword half done ahead (``PersonaIndex.prepare``): a search handed a stage made
for other tokens, another filter or an index that changed since does the stage again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from tests.recall_golden import WordEmbedder, drafts, questions

import severance
from severance import Session, session_recall
from severance.errors import EmbedderError
from severance.search import Filter, PersonaIndex, tokenize
from severance.search.index import document
from severance.search.query import analyze


@pytest.fixture(autouse=True)
def always_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hybrid recalls overlap whenever they may, not as the machine's timings choose."""
    monkeypatch.setattr(session_recall, "OVERLAP_CHOOSES", False)


class ThreadNoting(WordEmbedder):
    """The golden word embedder, noting the thread of every call (and failing on demand)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.fail = False

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise EmbedderError("the model is gone")
        return super().embed(texts)


@pytest.fixture
def noted(tmp_path: Path) -> Iterator[tuple[Session, ThreadNoting]]:
    embedder = ThreadNoting()
    store = severance.Store.init(str(tmp_path / "store"), embedder=embedder)
    store.add_persona("p")
    store.add_floor("p", persona="p")
    session = store.enter(floor="p")
    stored = session.remember_many(drafts()[:900])
    for memory in stored[4::61]:
        session.forget(memory.id)
    try:
        yield session, embedder
    finally:
        session.close()
        store.close()


SEARCHES: tuple[dict[str, Any], ...] = (
    {},
    {"tags": ["t7"]},
    {"kind": "note"},
    {"mode": "dense"},
    {"mode": "keyword"},
    {"min_similarity": 0.4},
)


def everything(session: Session) -> list[list[tuple[str, float, int | None, int | None]]]:
    return [
        [(r.memory.id, r.score, r.dense_rank, r.keyword_rank) for r in session.recall(q, **kw)]
        for kw in SEARCHES
        for q in questions()[:24]
    ]


def test_overlapped_embedding_gives_the_sequential_results(
    noted: tuple[Session, ThreadNoting], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, embedder = noted
    monkeypatch.setattr(session_recall, "OVERLAP_FROM", 0.0)  # however fast the embedder
    embedder.threads.clear()
    overlapped = everything(session)
    here = threading.current_thread().name
    # Hybrid recalls embedded on the worker; dense ones inline (nothing to overlap with);
    # keyword ones not at all.
    assert embedder.threads.count(here) == 24
    assert len(embedder.threads) == 5 * 24
    assert all(t.startswith("severance-embed") for t in embedder.threads if t != here)
    monkeypatch.setattr(session_recall, "OVERLAP", False)
    embedder.threads.clear()
    sequential = everything(session)
    assert set(embedder.threads) == {here}
    assert overlapped == sequential


@pytest.mark.parametrize("overlap", [True, False])
def test_an_embedder_error_surfaces_either_way_and_the_session_goes_on(
    noted: tuple[Session, ThreadNoting], monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    session, embedder = noted
    monkeypatch.setattr(session_recall, "OVERLAP", overlap)
    monkeypatch.setattr(session_recall, "OVERLAP_FROM", 0.0)
    question = questions()[0]
    before = [r.memory.id for r in session.recall(question)]
    embedder.fail = True
    with pytest.raises(EmbedderError, match="the model is gone"):
        session.recall(question)
    assert [r.memory.id for r in session.recall(question, mode="keyword")]  # no embedding
    embedder.fail = False
    assert [r.memory.id for r in session.recall(question)] == before


def test_a_fast_embedder_is_called_inline(
    noted: tuple[Session, ThreadNoting], monkeypatch: pytest.MonkeyPatch
) -> None:
    session, embedder = noted
    monkeypatch.setattr(session_recall, "OVERLAP_FROM", float("inf"))  # nothing is slow enough
    embedder.threads.clear()
    for q in questions()[:5]:
        session.recall(q)
    here = threading.current_thread().name
    # Only a first, unmeasured call may have gone to the worker.
    assert embedder.threads[1:] == [here] * 4


def small_index() -> tuple[PersonaIndex, WordEmbedder]:
    embedder = WordEmbedder()
    items = drafts()[:600]
    vectors = embedder.embed([d.text for d in items])
    index = PersonaIndex(embedder.dimension)
    index.upsert(
        [
            document(
                f"m{i}",
                i + 1,
                d.kind,
                d.tags,
                d.occurred_at.timestamp() if d.occurred_at else 0.0,
                0.0,
                v,
                d.text,
                d.metadata,
            )
            for i, (d, v) in enumerate(zip(items, vectors, strict=True))
        ]
    )
    return index, embedder


def test_a_stale_or_foreign_keyword_stage_is_done_again() -> None:
    index, embedder = small_index()
    q, other = questions()[0], questions()[2]
    vector = embedder.embed([q])[0]
    tokens = tokenize(q)
    tagged = Filter(tags=frozenset({"t7"}))

    def search(**kwargs: Any) -> list[tuple[str, float]]:
        hits = index.search(vector, tokens, 10, analysis=analyze(q), **kwargs)
        return [(h.id, h.score) for h in hits]

    assert search(prepared=index.prepare(tokens)) == search()
    assert search(prepared=index.prepare(tokenize(other))) == search()
    assert search(flt=tagged, prepared=index.prepare(tokens)) == search(flt=tagged)
    assert search(prepared=index.prepare(tokens, tagged)) == search()
    assert search(prepared=index.prepare(tokens, mode="dense")) == search()
    stale = index.prepare(tokens)
    index.remove("m0")
    index.remove(search()[0][0])
    assert search(prepared=stale) == search()
    stale = index.prepare(tokens)
    index.upsert([document("new", 10_000, "note", (), 0.0, 0.0, vector, q, {})])
    assert search(prepared=stale) == search()
    assert search()[0][0] == "new"


def test_closing_the_recaller_ends_its_thread_and_a_later_recall_starts_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_recall, "OVERLAP_FROM", 0.0)
    embedder = ThreadNoting()
    index, _ = small_index()
    recaller = session_recall.Recaller(
        rows=None,  # type: ignore[arg-type]  # the search below opens no rows
        reader=None,  # type: ignore[arg-type]
        keeper=None,  # type: ignore[arg-type]
        embedder=embedder,
        vector_rows=None,
        confirm_alive=lambda: None,
    )
    before = set(threading.enumerate())
    future = recaller._embed_later(questions()[0])
    assert future is not None
    future.result()
    started = set(threading.enumerate()) - before
    assert len(started) == 1 and next(iter(started)).name.startswith("severance-embed")
    recaller.close()
    assert set(threading.enumerate()) - before == set()
    again = recaller._embed_later(questions()[1])
    assert again is not None
    assert again.result().shape == (index.dimension,)
    recaller.close()


def _embed_threads() -> int:
    return sum(t.name.startswith("severance-embed") and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("how", ["close", "abandon"])
def test_the_embedding_thread_ends_with_its_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # Closed sessions kept alive (a server's cache, a list) must not pile up idle threads.
    monkeypatch.setattr(session_recall, "OVERLAP_FROM", 0.0)
    store = severance.Store.init(str(tmp_path / "store"), embedder=ThreadNoting())
    store.add_persona("p")
    store.add_floor("p", persona="p")
    before = _embed_threads()
    kept = []
    for _ in range(3):
        session = store.enter(floor="p")
        session.remember("the heron by the lake")
        session.recall("heron")
        assert _embed_threads() == before + 1
        session.close() if how == "close" else session.abandon()
        kept.append(session)
        assert _embed_threads() == before
    store.close()


def test_a_forked_child_recalls_with_its_own_worker(
    noted: tuple[Session, ThreadNoting], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parent's worker thread does not survive fork(); the child's recall must not wait on it.
    import multiprocessing

    session, embedder = noted
    monkeypatch.setattr(session_recall, "OVERLAP_FROM", 0.0)
    expected = [r.memory.id for r in session.recall(questions()[0])]
    assert any(name.startswith("severance-embed") for name in embedder.threads)
    results: multiprocessing.Queue[list[str]] = multiprocessing.get_context("fork").Queue()

    def child() -> None:
        results.put([r.memory.id for r in session.recall(questions()[0])])

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail("the forked child's recall hung on the parent's worker thread")
    assert process.exitcode == 0
    assert results.get(timeout=10) == expected
