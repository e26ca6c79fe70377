"""Snapshot formats: half-precision rows for large personas, older snapshots, and snapshots
written by an older tokenizer or older feature rules.

* Once a persona has an HNSW graph its rows are kept in float16: whichever way its index was
  built (live writes in any batch size, a snapshot, a rebuild from the rows) the rows, and so
  the scores, are the same; the snapshot stores them as they are (half the bytes).
* A snapshot of format 4 (float32 rows beside a graph, no versions) still wakes, rounded as a
  live index would be: same answers as the current format.
* A snapshot whose postings came from another tokenizer version has its texts tokenised again
  on wake; one from other feature rules has its features read again; the vectors and the
  graph are kept either way, and the next snapshot records today's versions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from tests.recall_golden import WordEmbedder, drafts, questions

import severance
from severance.search import Doc, Filter, PersonaIndex, container, documents, keyword, snapshot
from severance.search import index as index_mod

DIM = 32
N = 1200
THRESHOLD = 300


@pytest.fixture(autouse=True)
def small_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_mod, "HNSW_THRESHOLD", THRESHOLD)
    monkeypatch.setattr(index_mod, "HNSW_BATCH", 64)
    monkeypatch.setattr(index_mod, "HNSW_EXACT_BELOW", 100)


def clustered(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM))
    points = centres[rng.integers(0, 30, n)] + 0.6 * rng.standard_normal((n, DIM))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


VECTORS = clustered(N)
QUERIES = clustered(20, seed=1)


def docs(vectors: npt.NDArray[np.float32]) -> list[Doc]:
    return [
        Doc(
            id=f"m{i}",
            seq=i + 1,
            kind="note",
            tags=(f"t{i % 40}",),
            occurred_at=float(i),
            learned_at=float(i),
            vector=v,
            tokens=[f"w{i % 53}", "common"],
        )
        for i, v in enumerate(vectors)
    ]


def build(batch: int) -> PersonaIndex:
    index = PersonaIndex(DIM)
    items = docs(VECTORS)
    for lo in range(0, len(items), batch):
        index.upsert(items[lo : lo + batch])
    return index


def answers(index: PersonaIndex) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        for kwargs in ({}, {"mode": "dense"}, {"flt": Filter(tags=frozenset({"t3"}))}):
            hits = index.search(q, ["w7", "common"], 10, **kwargs)
            out.append([(h.id, h.score) for h in hits])
    return out


def test_rows_are_half_precision_once_there_is_a_graph_whichever_way_built() -> None:
    small = PersonaIndex(DIM)
    small.upsert(docs(VECTORS[: THRESHOLD - 1]))
    assert small.hnsw is None and not small.dense.halved
    assert np.array_equal(small.dense.vectors(), VECTORS[: THRESHOLD - 1])

    one_by_one, in_batches = build(1), build(500)
    woken = PersonaIndex.from_bytes(in_batches.to_bytes())
    half = VECTORS.astype(np.float16)
    for index in (one_by_one, in_batches, woken):
        assert index.hnsw is not None and index.dense.halved
        assert np.array_equal(index.dense.vectors(), half)
    assert answers(woken) == answers(in_batches)


def test_the_snapshot_stores_half_precision_rows() -> None:
    index = build(256)
    data = index.to_bytes()
    meta, arrays = container.unpack_arrays(data)
    assert meta["format"] == snapshot.SNAPSHOT_FORMAT
    assert meta["tokenizer"] == keyword.TOKENIZER_VERSION
    assert arrays["vectors"].dtype == np.float16
    assert np.array_equal(arrays["vectors"], VECTORS.astype(np.float16))
    # Below the threshold the rows stay float32 in the snapshot too.
    small = PersonaIndex(DIM)
    small.upsert(docs(VECTORS[:100]))
    _, small_arrays = container.unpack_arrays(small.to_bytes())
    assert small_arrays["vectors"].dtype == np.float32


def as_format_4(data: bytes, float32_rows: npt.NDArray[np.float32]) -> bytes:
    """A current snapshot rewritten as format 4 wrote it: float32 rows, no versions."""
    meta, arrays = container.unpack_arrays(data)
    meta["format"] = 4
    meta.pop("tokenizer")
    meta.pop("features")
    arrays["vectors"] = float32_rows
    return container.pack_arrays(meta, arrays)


def test_a_format_4_snapshot_with_float32_rows_wakes_as_the_current_one() -> None:
    index = build(256)
    old = PersonaIndex.from_bytes(as_format_4(index.to_bytes(), VECTORS))
    assert old.hnsw is not None and old.dense.halved
    # Format 4 predates the Snowball tokenizer (version 2): its postings are re-derived on wake.
    assert not old.missing_features and old.stale_keywords
    assert answers(old) == answers(index)
    # Its next snapshot is of the current format.
    meta, arrays = container.unpack_arrays(old.to_bytes())
    assert meta["format"] == snapshot.SNAPSHOT_FORMAT
    assert arrays["vectors"].dtype == np.float16


# -- a tokenizer or feature rules changed between the snapshot and the wake -------------------


def _texts(session: severance.Session) -> list[list[str]]:
    return [[h.memory.text for h in session.recall(q, k=8)] for q in questions()[:30]]


def _store(path: Path, n: int = 600) -> severance.Store:
    store = severance.Store.init(path, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    with store.enter(floor="f") as session:
        session.remember_many(drafts()[:n])
        session.checkpoint()
    return store


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[PersonaIndex, bool, bool]]:
    """Every index woken from a snapshot, with whether its postings and its features were
    stale as read."""
    seen: list[tuple[PersonaIndex, bool, bool]] = []
    wake = PersonaIndex.from_bytes

    def spy(data: bytes) -> PersonaIndex:
        index = wake(data)
        seen.append((index, index.stale_keywords, index.missing_features))
        return index

    monkeypatch.setattr(PersonaIndex, "from_bytes", staticmethod(spy))
    return seen


def test_a_snapshot_from_another_tokenizer_is_tokenised_again_on_wake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store"
    _store(path).close()

    # A new tokenizer (here: no stemming, a new version), as a later release might bring.
    stemmed = keyword.tokenize

    def unstemmed(text: str) -> list[str]:
        return [w for w in keyword._WORD.findall(text.lower()) if w not in keyword.STOPWORDS]

    for module in (keyword, severance.search.documents, severance.index_lifecycle):
        monkeypatch.setattr(module, "tokenize", unstemmed)
    monkeypatch.setattr(snapshot, "TOKENIZER_VERSION", keyword.TOKENIZER_VERSION + 1)

    # What a store rebuilt from its rows with the new tokenizer answers.
    rebuilt = tmp_path / "rebuilt"
    _store(rebuilt, n=600).close()
    for snap in (rebuilt / "snapshots").iterdir():
        snap.unlink()
    store = severance.Store.open(rebuilt, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        want = _texts(session)
    store.close()

    seen = _spy(monkeypatch)
    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        got = _texts(session)
    store.close()  # the migrated index is snapshotted on close
    assert [(stale, missing) for _, stale, missing in seen] == [(True, False)]
    texts = [d.text for d in drafts()[:600]]
    new_terms = {t for text in texts for t in unstemmed(text)}
    only_new = new_terms - {t for text in texts for t in stemmed(text)}
    assert only_new and only_new <= set(seen[0][0].keyword.vocab) <= new_terms
    assert got == want

    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _texts(session) == want
    store.close()
    assert [stale for _, stale, _ in seen] == [True, False]  # today's version recorded


def test_a_snapshot_from_other_feature_rules_has_its_features_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store"
    store = _store(path)
    with store.enter(floor="f") as session:
        want = _texts(session)
    store.close()
    monkeypatch.setattr(snapshot, "FEATURES_VERSION", documents.FEATURES_VERSION + 1)
    seen = _spy(monkeypatch)
    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _texts(session) == want
    store.close()
    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _texts(session) == want
    store.close()
    assert [(stale, missing) for _, stale, missing in seen] == [(False, True), (False, False)]


def test_a_snapshot_puts_pending_slots_into_the_graph_first() -> None:
    index = build(256)
    extra = clustered(40, seed=3)
    more = [
        Doc(
            id=f"x{i}",
            seq=N + i + 1,
            kind="note",
            tags=(),
            occurred_at=float(N + i),
            learned_at=0.0,
            vector=v,
            tokens=["extra"],
        )
        for i, v in enumerate(extra)
    ]
    index.upsert(more)
    assert index.hnsw is not None and index.hnsw.covered < index.n_slots  # a batch is pending
    want = answers(index)
    woken = PersonaIndex.from_bytes(index.to_bytes())
    assert woken.hnsw is not None and woken.hnsw.covered == woken.n_slots == N + 40
    assert len(woken.hnsw) == N + 40
    for i, v in enumerate(extra[:5]):
        assert [h.id for h in woken.search(v, [], 1, mode="dense")] == [f"x{i}"]
    assert len(answers(woken)) == len(want)
