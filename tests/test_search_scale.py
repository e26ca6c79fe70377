"""The HNSW path of dense search, exercised with a lowered threshold.

A persona index switches from exact scoring to an HNSW graph at ``HNSW_THRESHOLD`` live
memories (20k by default). These tests lower it so that a few thousand vectors are enough,
and check the graph against exact search on the same vectors: recall@10, snapshot round
trips, removals and updates, filters (selective ones are answered exactly), and that a
snapshot never carries the vector of a forgotten memory. No timing is asserted here; speed
is measured by ``python -m bench run --only speed``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import severance
from severance.search import Doc, Filter, PersonaIndex, container
from severance.search import index as index_mod

DIM = 32
N = 3000
THRESHOLD = 500


@pytest.fixture(autouse=True)
def small_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_mod, "HNSW_THRESHOLD", THRESHOLD)
    monkeypatch.setattr(index_mod, "HNSW_BATCH", 64)
    monkeypatch.setattr(index_mod, "HNSW_EXACT_BELOW", 200)


def clustered(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Unit vectors around 40 centres: structured like text embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM))
    points = centres[rng.integers(0, 40, n)] + 0.6 * rng.standard_normal((n, DIM))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def make_docs(vectors: npt.NDArray[np.float32], start: int = 0) -> list[Doc]:
    return [
        Doc(
            id=f"m{start + i}",
            seq=start + i + 1,
            kind="note" if i % 10 else "fact",
            tags=(f"t{(start + i) % 50}",),
            occurred_at=float(start + i),
            learned_at=float(start + i),
            vector=v,
            tokens=[f"w{(start + i) % 97}", "common"],
        )
        for i, v in enumerate(vectors)
    ]


def build(vectors: npt.NDArray[np.float32], batch: int = 256) -> PersonaIndex:
    index = PersonaIndex(DIM)
    docs = make_docs(vectors)
    for lo in range(0, len(docs), batch):
        index.upsert(docs[lo : lo + batch])
    return index


def dense_ids(
    index: PersonaIndex, q: npt.NDArray[np.float32], k: int = 10, **kw: object
) -> list[str]:
    return [h.id for h in index.search(q, [], k, mode="dense", **kw)]  # type: ignore[arg-type]


def exact_ids(
    vectors: npt.NDArray[np.float32],
    ids: Sequence[str],
    q: npt.NDArray[np.float32],
    k: int = 10,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> list[str]:
    scores = vectors @ q
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[i] for i in order if np.isfinite(scores[i])]


def recall_at_10(
    index: PersonaIndex, vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> float:
    ids = [f"m{i}" for i in range(len(vectors))]
    found = [len(set(dense_ids(index, q)) & set(exact_ids(vectors, ids, q))) / 10 for q in queries]
    return float(np.mean(found))


@pytest.fixture(scope="module")
def vectors() -> npt.NDArray[np.float32]:
    return clustered(N)


@pytest.fixture(scope="module")
def queries() -> npt.NDArray[np.float32]:
    return clustered(60, seed=1)


def test_below_the_threshold_search_is_exact(vectors: npt.NDArray[np.float32]) -> None:
    index = build(vectors[: THRESHOLD - 1])
    assert index.hnsw is None
    ids = [f"m{i}" for i in range(THRESHOLD - 1)]
    q = vectors[7]
    assert dense_ids(index, q) == exact_ids(vectors[: THRESHOLD - 1], ids, q)


def test_the_graph_finds_what_exact_search_finds(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> None:
    index = build(vectors)
    assert index.hnsw is not None
    assert index.hnsw.covered > N - 64 - 1  # all but the last, not yet inserted, batch
    assert recall_at_10(index, vectors, queries) >= 0.95


def test_scores_of_graph_results_are_exact_cosines(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> None:
    """Exact cosines of the rows as kept (float16 once a persona has a graph), within 1e-3
    of the float32 ones."""
    index = build(vectors)
    assert index.dense.halved
    half = vectors.astype(np.float16).astype(np.float32)
    for hit in index.search(queries[0], ["common"], 10):
        i = int(hit.id[1:])
        assert hit.dense_score == pytest.approx(float(half[i] @ queries[0]), abs=1e-6)
        assert hit.dense_score == pytest.approx(float(vectors[i] @ queries[0]), abs=1e-3)


def test_the_graph_survives_a_snapshot_round_trip(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> None:
    index = build(vectors)
    before = [dense_ids(index, q) for q in queries[:10]]
    loaded = PersonaIndex.from_bytes(index.to_bytes())
    assert loaded.hnsw is not None
    assert len(loaded.hnsw) == len(index.hnsw)  # type: ignore[arg-type]
    assert [dense_ids(loaded, q) for q in queries[:10]] == before
    t7 = Filter(tags=frozenset({"t7"}))
    assert dense_ids(loaded, queries[0], flt=t7) == dense_ids(index, queries[0], flt=t7)
    # A loaded graph reads the snapshot in place; saved again unchanged, it is the same graph.
    again = PersonaIndex.from_bytes(loaded.to_bytes())
    assert [dense_ids(again, q) for q in queries[:10]] == before
    assert recall_at_10(loaded, vectors, queries) >= 0.95
    # It keeps growing after a wake: new keys never collide with the loaded ones.
    more = clustered(500, seed=2)
    loaded.upsert(make_docs(more, start=N))
    both = np.concatenate([vectors, more])
    assert recall_at_10(loaded, both, queries) >= 0.95
    assert dense_ids(loaded, more[3], k=1) == [f"m{N + 3}"]


def test_removed_and_updated_memories_never_come_back(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> None:
    index = build(vectors)
    gone = {f"m{i}" for i in range(0, N, 3)}
    for memory_id in gone:
        assert index.remove(memory_id)
    # Move one memory far from where it was: a search for its new vector finds it.
    moved = Doc("m1", 10_000, "note", (), 0.0, 0.0, vectors[2000], ["moved"])
    index.upsert([moved])
    keep = np.array([f"m{i}" not in gone for i in range(N)])
    ids = [f"m{i}" for i in range(N)]
    for snapshot in (False, True):
        current = PersonaIndex.from_bytes(index.to_bytes()) if snapshot else index
        found = []
        for q in queries:
            got = dense_ids(current, q)
            assert not gone & set(got)
            want = exact_ids(vectors, ids, q, allowed=keep & (np.arange(N) != 1))
            found.append(len(set(got) & set(want)) / 10)
        assert np.mean(found) >= 0.95
        assert "m1" in dense_ids(current, vectors[2000], k=2)


def test_filters_are_respected_and_selective_ones_are_exact(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> None:
    index = build(vectors)
    ids = [f"m{i}" for i in range(N)]
    # Exact: over the rows as the index keeps them (float16, as it has a graph).
    kept = vectors.astype(np.float16).astype(np.float32)
    tag_t7 = np.array([i % 50 == 7 for i in range(N)])  # 60 candidates: scored exactly
    notes = np.array([i % 10 != 0 for i in range(N)])  # 90%: through the graph
    for q in queries[:20]:
        got = dense_ids(index, q, flt=Filter(tags=frozenset({"t7"})))
        assert got == exact_ids(kept, ids, q, allowed=tag_t7)
    found = []
    for q in queries:
        got = dense_ids(index, q, flt=Filter(kinds=frozenset({"note"})))
        assert all(int(i[1:]) % 10 for i in got)
        found.append(len(set(got) & set(exact_ids(vectors, ids, q, allowed=notes))) / 10)
    assert np.mean(found) >= 0.95
    # A time range that keeps 5% (150 slots, below HNSW_EXACT_BELOW) is answered exactly.
    window = Filter(since=1000.0, until=1150.0)
    allowed = (np.arange(N) >= 1000) & (np.arange(N) < 1150)
    assert dense_ids(index, queries[0], flt=window) == exact_ids(
        kept, ids, queries[0], allowed=allowed
    )


def test_hybrid_results_blend_both_lists_on_the_graph(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> None:
    index = build(vectors)
    hits = index.search(queries[0], ["w5"], 10)
    assert len(hits) == 10
    assert any(h.keyword_rank is not None for h in hits)
    assert any(h.dense_rank is not None for h in hits)
    assert all(h.dense_score is not None for h in hits)


def test_a_snapshot_does_not_carry_a_forgotten_vector(vectors: npt.NDArray[np.float32]) -> None:
    index = build(vectors)
    assert index.hnsw is not None
    # A vector whose int8 form is easy to spot: every component equal.
    marker = np.full(DIM, 1.0 / np.sqrt(DIM), dtype=np.float32)
    index.upsert(make_docs(marker[None, :], start=N))
    index.upsert(make_docs(vectors[:64], start=N + 1))  # a batch: the marker enters the graph
    assert index.hnsw.slot_key[index.slot_of[f"m{N}"]] >= 0
    quantised = np.round(marker * 127).astype(np.int8).tobytes()
    assert quantised in index.to_bytes()
    index.remove(f"m{N}")
    snapshot = index.to_bytes()
    assert quantised not in snapshot
    loaded = PersonaIndex.from_bytes(snapshot)
    assert f"m{N}" not in dense_ids(loaded, marker, k=5)


def test_version_1_snapshots_are_still_read(vectors: npt.NDArray[np.float32]) -> None:
    small = build(vectors[:300])
    meta, arrays = container.unpack_arrays(small.to_bytes())
    # Rebuild the layout of a format 1 snapshot: an .npz with one tag list per memory.
    tag_sets = meta.pop("tag_sets")
    meta["tags"] = [tag_sets[c] for c in arrays.pop("tag_codes").tolist()]
    meta["format"] = 1
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    old = PersonaIndex.from_bytes(buffer.getvalue())
    assert dense_ids(old, vectors[5]) == dense_ids(small, vectors[5])
    t7 = Filter(tags=frozenset({"t7"}))
    assert dense_ids(old, vectors[5], flt=t7) == dense_ids(small, vectors[5], flt=t7)


def test_a_large_persona_wakes_with_its_graph(tmp_path: Path) -> None:
    """End to end: a session over a persona above the threshold saves its graph in the
    encrypted snapshot and a cold open uses it (no rebuild), with the same answers."""

    class HashEmbedder:
        """A working embedder double: a deterministic unit vector per text."""

        name = "hash-test"
        dimension = DIM
        batch_size = 64

        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            out = np.empty((len(texts), DIM), dtype=np.float32)
            for i, t in enumerate(texts):
                seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
                v = np.random.default_rng(seed).standard_normal(DIM)
                out[i] = v / np.linalg.norm(v)
            return out

    key = bytes(range(32))
    store = severance.Store.init(tmp_path / "s", key=key, embedder=HashEmbedder())
    store.add_persona("big")
    store.add_floor("f", persona="big")
    texts = [f"memory number {i} about topic {i % 37}" for i in range(THRESHOLD + 400)]
    with store.enter(floor="f") as session:
        session.recall("warm up", k=1)
        session.remember_many(texts)
        index = session.search_index
        assert index is not None and index.hnsw is not None
        before = [m.memory.text for m in session.recall(texts[17], k=5, mode="dense")]
        session.checkpoint()
    store.close()

    store = severance.Store.open(tmp_path / "s", key=key, embedder=HashEmbedder())
    with store.enter(floor="f") as session:
        after = [m.memory.text for m in session.recall(texts[17], k=5, mode="dense")]
        index = session.search_index
        assert index is not None and index.hnsw is not None
        assert len(index.hnsw) > 0
        assert after == before
        assert after[0] == texts[17]
    store.close()


def test_snapshot_container_round_trips_every_array_shape() -> None:
    arrays = {
        "empty_matrix": np.zeros((0, DIM), dtype=np.float32),
        "ints": np.arange(7, dtype=np.int64),
        "bytes": np.frombuffer(b"graph", dtype=np.uint8),
        "matrix": clustered(3),
    }
    meta, back = container.unpack_arrays(container.pack_arrays({"format": 2}, arrays))
    assert meta == {"format": 2}
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype
        assert np.array_equal(back[name], array)
        assert back[name].flags.writeable
    with pytest.raises(ValueError):
        container.unpack_arrays(b"PK\x03\x04 not ours")


def test_an_empty_index_snapshots() -> None:
    empty = PersonaIndex.from_bytes(PersonaIndex(DIM).to_bytes())
    assert len(empty) == 0
    assert empty.search(clustered(1)[0], ["x"], 5) == []


def test_cached_keyword_scores_equal_fresh_ones_and_follow_changes(
    vectors: npt.NDArray[np.float32],
) -> None:
    index = build(vectors[:400])
    tokens = ["w5", "common", "w7"]

    def keyword(ix: PersonaIndex) -> list[tuple[str, float | None]]:
        return [(h.id, h.keyword_score) for h in ix.search(None, tokens, 20, mode="keyword")]

    def fresh(ix: PersonaIndex) -> npt.NDArray[np.float32]:
        return ix.keyword.scores(tokens, ix.alive, ix.n_slots)  # no version: no cache

    first = keyword(index)
    assert keyword(index) == first  # served from the cache
    assert np.array_equal(
        index.keyword.scores(tokens, index.alive, index.n_slots, version=(index.n_slots, 0)),
        fresh(index),
    )
    top = first[0][0]
    index.remove(top)
    after = keyword(index)
    assert top not in [i for i, _ in after]
    scores = fresh(index)
    assert [s for _, s in after] == sorted((float(x) for x in scores if x > 0), reverse=True)[:20]
    index.upsert(make_docs(vectors[:1], start=5000))  # "common": one more posting
    keyword(index)
    version = (index.n_slots, index.retired)
    cached = index.keyword.scores(tokens, index.alive, index.n_slots, version=version)
    assert cached[index.slot_of["m5000"]] > 0
    assert np.array_equal(cached, fresh(index))
