"""The fast paths of a search give the same answers as the plain ones.

* BLAS limited to one thread during a search (``severance.search.threads``) or not: the
  same results, on the exact path and on the HNSW path.
* The re-ranking features kept per slot (speaker, time in the text) survive a snapshot, and
  a snapshot written before they existed (format 2) is migrated on wake: same results, and
  the next snapshot has them.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from tests.recall_golden import WordEmbedder, drafts, questions
from threadpoolctl import threadpool_info

import severance
from severance.search import Filter, Fusion, PersonaIndex, SearchMode, threads
from severance.search import index as index_mod
from severance.search.container import pack_arrays, unpack_arrays
from severance.search.identity import NO_KEY
from severance.search.index import document
from severance.search.query import analyze

N = 1500


def build_index() -> PersonaIndex:
    embedder = WordEmbedder()
    items = drafts()[:N]
    vectors = embedder.embed([d.text for d in items])
    index = PersonaIndex(embedder.dimension)
    docs = [
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
    for lo in range(0, len(docs), 200):
        index.upsert(docs[lo : lo + 200])
    return index


def all_searches(index: PersonaIndex) -> list[list[tuple[str, float]]]:
    embedder = WordEmbedder()
    out = []
    for q in questions()[:30]:
        vec = embedder.embed([q])[0]
        tokens = severance.search.tokenize(q)
        for kwargs in (
            {},
            {"mode": "dense"},
            {"flt": Filter(tags=frozenset({"t7"}))},
            {"fusion": Fusion.reciprocal_rank()},
        ):
            hits = index.search(vec, tokens, 10, analysis=analyze(q), **kwargs)  # type: ignore[arg-type]
            out.append([(h.id, h.score) for h in hits])
    return out


@pytest.mark.parametrize("graph", [False, True], ids=["exact", "hnsw"])
def test_results_are_the_same_with_blas_limited_or_not(
    graph: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if graph:
        monkeypatch.setattr(index_mod, "HNSW_THRESHOLD", 300)
        monkeypatch.setattr(index_mod, "HNSW_BATCH", 64)
        monkeypatch.setattr(index_mod, "HNSW_EXACT_BELOW", 100)
    index = build_index()
    assert (index.hnsw is not None) == graph
    limited = all_searches(index)
    monkeypatch.setattr(threads, "LIMIT", False)
    free = all_searches(index)
    assert [[h[0] for h in r] for r in limited] == [[h[0] for h in r] for r in free]
    for a, b in zip(limited, free, strict=True):
        assert [h[1] for h in a] == pytest.approx([h[1] for h in b], rel=1e-6)


def test_blas_limit_is_restored_after_a_search() -> None:
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    index = build_index()
    all_searches(index)
    after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert after == before


def test_features_survive_a_snapshot() -> None:
    index = build_index()
    woken = PersonaIndex.from_bytes(index.to_bytes())
    assert not woken.missing_features
    n = index.n_slots
    assert woken.has_time[:n].tolist() == index.has_time[:n].tolist()
    assert woken.speaker_names == index.speaker_names
    assert woken.speaker_codes[:n].tolist() == index.speaker_codes[:n].tolist()
    assert index.has_time[:n].any() and (index.speaker_codes[:n] >= 0).any()
    assert all_searches(woken) == all_searches(index)


def _as_format_2(data: bytes) -> bytes:
    """A current snapshot rewritten as format 2 wrote it (no re-ranking features)."""
    meta, arrays = unpack_arrays(data)
    meta["format"] = 2
    meta.pop("speakers")
    arrays.pop("has_time")
    arrays.pop("speaker_codes")
    arrays.pop("addressed_codes")
    return pack_arrays(meta, arrays)


def _results(session: severance.Session) -> list[list[tuple[str, float]]]:
    out = []
    for q in questions()[:40]:
        hits = session.recall(q, k=10)
        out.append([(f"{zlib.crc32(h.memory.text.encode()):08x}", h.score) for h in hits])
    return out


def test_an_old_snapshot_is_migrated_on_wake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "store")
    store = severance.Store.init(path, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    with store.enter(floor="f") as session:
        session.remember_many(drafts()[:N])
        want = _results(session)
        new_format = PersonaIndex.snapshot_pieces
        monkeypatch.setattr(  # what a checkpoint seals
            PersonaIndex,
            "snapshot_pieces",
            lambda self: [memoryview(_as_format_2(b"".join(new_format(self))))],
        )
        session.checkpoint()
        monkeypatch.undo()
    store.close()

    seen: list[PersonaIndex] = []
    wake = PersonaIndex.from_bytes

    def spy(data: bytes) -> PersonaIndex:
        index = wake(data)
        seen.append(index)
        return index

    monkeypatch.setattr(PersonaIndex, "from_bytes", staticmethod(spy))
    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _results(session) == want  # features read from the rows
        assert len(seen) == 1 and seen[0].missing_features is False
    store.close()  # the migrated index was snapshotted on close

    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _results(session) == want
    store.close()
    assert len(seen) == 2
    assert seen[1].has_time.any() and seen[1].speaker_names


def test_the_index_built_during_an_import_equals_one_rebuilt_from_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[PersonaIndex] = []
    init = PersonaIndex.__init__

    def spy(self: PersonaIndex, dimension: int) -> None:
        init(self, dimension)
        made.append(self)

    monkeypatch.setattr(PersonaIndex, "__init__", spy)
    path = str(tmp_path / "store")
    store = severance.Store.init(path, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    items = drafts()[:N]
    with store.enter(floor="f") as session:
        # The first write wakes the index (its duplicate check reads its leads there), and
        # every write after keeps it up to date.
        session.remember_many(items[:200])
        assert len(made) == 1
        session.remember_many(items[200:])
        assert len(made) == 1
        during = made[0]
        assert len(during) == N
        assert np.all(during.identities[: during.n_slots] != NO_KEY)
        got = _results(session)
        assert len(made) == 1  # the first recall did not rebuild anything

        # Another store handle on the same file, with no snapshot: rebuilt from the rows.
        other = severance.Store.open(path, embedder=WordEmbedder())
        with other.enter(floor="f") as again:
            assert _results(again) == got
            rebuilt = made[-1]
            assert rebuilt is not during
            assert rebuilt.to_bytes() == during.to_bytes()
        other.close()
    store.close()


def test_a_snapshot_opens_into_one_buffer_and_refuses_tampering() -> None:
    from severance.backends.base import Snapshot
    from severance.errors import IntegrityError
    from severance.index_snapshots import CHUNK, open_snapshot, seal_snapshot
    from severance.seal import Sealer, new_key

    sealer = Sealer(new_key())
    data = bytes(range(256)) * ((2 * CHUNK + 1000) // 256)
    sealed = seal_snapshot(sealer, "store", "persona", 7, data)
    assert len(sealed.chunks) == 3
    assert bytes(open_snapshot(sealer, "store", "persona", sealed)) == data
    flipped = bytearray(sealed.chunks[1])
    flipped[100] ^= 1
    swapped = (sealed.chunks[1], sealed.chunks[0], sealed.chunks[2])
    for bad in (
        Snapshot(7, (sealed.chunks[0], bytes(flipped), sealed.chunks[2])),
        Snapshot(7, swapped),
        Snapshot(7, sealed.chunks[:2]),  # a chunk dropped
        Snapshot(8, sealed.chunks),  # another watermark
        Snapshot(7, (sealed.chunks[0][:10], *sealed.chunks[1:])),  # truncated
    ):
        with pytest.raises(IntegrityError):
            open_snapshot(sealer, "store", "persona", bad)
    with pytest.raises(IntegrityError):
        open_snapshot(sealer, "store", "another persona", sealed)


def test_writes_from_elsewhere_between_own_writes_are_still_seen(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    store = severance.Store.init(path, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    other = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as mine, other.enter(floor="f") as theirs:
        first = mine.remember("alpha beta gamma")
        assert [r.memory.id for r in mine.recall("alpha", k=5)] == [first.id]
        theirs.remember("alpha delta from elsewhere")  # between two writes of ``mine``
        mine.remember("alpha epsilon")
        texts = {r.memory.text for r in mine.recall("alpha", k=5)}
        assert texts == {"alpha beta gamma", "alpha delta from elsewhere", "alpha epsilon"}
        mine.remember("alpha zeta")  # directly after its own: nothing else to list
        theirs.forget(first.id)
        theirs.remember("alpha eta from elsewhere")
        texts = {r.memory.text for r in mine.recall("alpha", k=10)}
        assert texts == {
            "alpha delta from elsewhere",
            "alpha epsilon",
            "alpha zeta",
            "alpha eta from elsewhere",
        }
    other.close()
    store.close()


FILTERS = (
    Filter(tags=frozenset({"t7"})),
    Filter(tags=frozenset({"shared"})),
    Filter(kinds=frozenset({"note"})),
    Filter(since=1_675_209_600.0, until=1_678_838_400.0),  # February to mid-March 2023
)


@pytest.mark.parametrize("graph", [False, True], ids=["exact", "hnsw"])
@pytest.mark.parametrize("mode", ["dense", "keyword"])
def test_a_filtered_search_is_the_unfiltered_one_filtered(
    graph: bool, mode: SearchMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dense and keyword scores do not depend on the filter, so a filtered search ranks what
    # an exact unfiltered one ranks, less what the filter leaves out. (Hybrid scores do: BM25
    # is scaled by the best keyword score among the filtered candidates, and a neighbour
    # left out by the filter still lends its score.) On the graph, a filter leaving fewer
    # than HNSW_EXACT_BELOW candidates is scored exactly; a filter passing everything gives
    # the exact unfiltered reference.
    if graph:
        monkeypatch.setattr(index_mod, "HNSW_THRESHOLD", 300)
        monkeypatch.setattr(index_mod, "HNSW_BATCH", 64)
    index = build_index()
    assert (index.hnsw is not None) == graph
    embedder = WordEmbedder()
    everything = Filter(since=-1e18)
    for flt in FILTERS:
        allowed = set(index.ids_matching(flt))
        assert 0 < len(allowed) < len(index)
        for q in questions()[:12]:
            vec = embedder.embed([q])[0]
            tokens = severance.search.tokenize(q)
            got = index.search(vec, tokens, 10, flt, mode=mode)
            every = index.search(vec, tokens, index.n_slots, everything, mode=mode)
            want = [h for h in every if h.id in allowed][:10]
            # Scores to float rounding: BLAS sums a product of another shape in another order.
            assert [h.id for h in got] == [h.id for h in want], (flt, q)
            assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-6)
