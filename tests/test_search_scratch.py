"""The fast paths of a search give what the plain ones give, and leave nothing behind.

* A search borrows per-slot work arrays (:mod:`severance.search.scratch`) and puts every entry
  back: searches of every mode, filtered or not, on an index with an HNSW graph or without,
  after deletions, give the same hits, to the bit, as the same search on a fresh copy of the
  index (which has never searched), in any order. A search that fails does not hand its
  (possibly dirty) arrays to the next one.
* Keyword matching from cached per-term impacts gives the scores of an uncached computation
  to the bit, and the touched slots (taken from the postings when they are few, by a pass over
  every slot otherwise) are exactly the slots scoring above 0, with and without addressed
  postings zeroed; a change of the addressed-name codes (a migrated old snapshot) is followed.
* Fusion and context through the scratch arrays equal them without (a scratch made for the
  call).
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import numpy.typing as npt
import pytest

from severance.search import Doc, Filter, Fusion, PersonaIndex
from severance.search import index as index_mod
from severance.search.context import neighbours
from severance.search.hybrid import fuse
from severance.search.keyword import KeywordIndex
from severance.search.scoring import Cosines
from severance.search.scratch import Scratch, ScratchPool
from severance.search.speakers import address_tokens

DIM = 16
WORDS = ["ana", "ben", "lunch", "paint", "lake", "trip", "cake", "kate", "work", "run"]
SPEAKERS = ("Ana", "Ben", "Kate", None)


def make_docs(n: int, seed: int, start: int = 0) -> list[Doc]:
    rng = random.Random(seed)
    docs = []
    for i in range(start, start + n):
        vector = np.asarray([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        docs.append(
            Doc(
                id=f"m{i}",
                seq=i,
                kind=rng.choice(("episode", "episode", "note")),
                tags=(rng.choice(("a", "b", "c")),),
                occurred_at=1_700_000_000.0 + 600.0 * i + rng.choice((0.0, 0.0, 86400.0)),
                learned_at=0.0,
                vector=vector / np.linalg.norm(vector),
                tokens=words,
                speaker=rng.choice(SPEAKERS),
                has_time=rng.random() < 0.2,
                addressed=rng.choice(("Kate", None, None)),
            )
        )
    return docs


def build(n: int, seed: int = 0) -> PersonaIndex:
    index = PersonaIndex(DIM)
    docs = make_docs(n, seed)
    for lo in range(0, n, 97):
        index.upsert(docs[lo : lo + 97])
    for i in range(0, n, 13):  # deletions: retired slots stay in the arrays
        index.remove(f"m{i}")
    return index


Hits = list[tuple[str, float, int | None, int | None, float | None, float | None]]


def hits(index: PersonaIndex, seed: int, mode: str, flt: Filter) -> Hits:
    rng = np.random.default_rng(seed)
    vector = rng.standard_normal(DIM).astype(np.float32)
    tokens = list(rng.choice(WORDS, size=3))
    found = index.search(
        vector / np.linalg.norm(vector), tokens, 10, flt, mode=mode, fusion=Fusion()
    )  # type: ignore[arg-type]
    return [
        (h.id, h.score, h.dense_rank, h.keyword_rank, h.dense_score, h.keyword_score) for h in found
    ]


CASES = [
    (mode, flt)
    for mode in ("hybrid", "dense", "keyword")
    for flt in (Filter(), Filter(tags=("a",)), Filter(kinds=frozenset({"note"})))
]


@pytest.mark.parametrize("graph", [False, True], ids=["exact", "graph"])
def test_searches_leave_nothing_for_the_next_one(
    graph: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if graph:
        monkeypatch.setattr(index_mod, "HNSW_THRESHOLD", 300)
        monkeypatch.setattr(index_mod, "HNSW_BATCH", 64)
        monkeypatch.setattr(index_mod, "HNSW_EXACT_BELOW", 50)
    # Two graphs built apart differ (insertion runs in parallel): copies of one snapshot
    # do not. Forgetting after the wake leaves retired slots (and free graph nodes) in both.
    snapshot = build(900).to_bytes()

    def woken() -> PersonaIndex:
        index = PersonaIndex.from_bytes(snapshot)
        for i in range(5, 900, 17):
            index.remove(f"m{i}")
        return index

    used = woken()
    assert (used.hnsw is not None) == graph and used.retired
    order = [(seed, mode, flt) for seed in range(6) for mode, flt in CASES]
    random.Random(1).shuffle(order)
    for seed, mode, flt in order:
        fresh = woken()  # has never searched: nothing borrowed, nothing cached
        assert hits(used, seed, mode, flt) == hits(fresh, seed, mode, flt), (seed, mode, flt)


def test_a_failed_search_does_not_lend_its_arrays() -> None:
    pool = ScratchPool()
    with pool.borrow(10) as first:
        pass
    with pool.borrow(10) as again:
        assert again is first  # put back at rest, lent again
    with pytest.raises(RuntimeError), pool.borrow(10) as dirty:
        dirty.marks[3] = 7
        raise RuntimeError("the search failed")
    with pool.borrow(10) as after:
        assert after is not dirty
        assert not after.marks.any() and not after.values.any()
        assert np.isnan(after.cosines).all()
    with pool.borrow(10_000) as large:
        assert large.fits(10_000) and not first.fits(10_000)


def test_cosines_put_their_entries_back() -> None:
    index = build(300)
    query = index.dense.vectors()[5].astype(np.float32)
    scratch = Scratch(index.n_slots)
    cosines = Cosines(index.dense, query, cache=scratch.cosines)
    first = cosines.score(np.array([5, 9, 2], dtype=np.int64))
    both = cosines.score(np.array([2, 40, 5, 41], dtype=np.int64))
    plain = index.dense.scores_at(np.array([5, 9, 2, 40, 41], dtype=np.int64), query)
    assert first[0] == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(both[[0, 2]], first[[2, 0]])
    assert np.allclose(np.concatenate([first, both[[1, 3]]]), plain, atol=1e-6)
    cosines.release()
    assert np.isnan(scratch.cosines).all()


def test_fusion_through_scratch_equals_fusion_without() -> None:
    index = build(600)
    cols = index.columns()
    rng = np.random.default_rng(3)
    live = np.flatnonzero(index.alive[: index.n_slots])
    query = index.dense.vectors()[7].astype(np.float32)
    keyword_scores = rng.random(index.n_slots).astype(np.float32)
    scratch = Scratch(index.n_slots)
    for _ in range(20):
        dense = rng.choice(live, 40, replace=False)
        keyword = rng.choice(live, 40, replace=False)
        for fusion in (Fusion(), Fusion(context_reach=3), Fusion.reciprocal_rank()):
            mask = index.alive[: index.n_slots] & (rng.random(index.n_slots) < 0.5)
            cosines = Cosines(index.dense, query, cache=scratch.cosines)
            got = fuse(cols, dense, keyword, cosines, keyword_scores, fusion, mask, scratch)
            cosines.release()
            plain = Cosines(index.dense, query)
            want = fuse(cols, dense, keyword, plain, keyword_scores, fusion, mask)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
            assert not scratch.marks.any() and not scratch.values.any()
            assert np.isnan(scratch.cosines).all()


def keyword_index(n: int, seed: int) -> tuple[KeywordIndex, npt.NDArray[np.bool_]]:
    rng = random.Random(seed)
    index = KeywordIndex()
    for slot in range(n):
        index.add(slot, [rng.choice(WORDS[: 3 + slot % 7]) for _ in range(rng.randint(0, 5))])
    alive = np.array([rng.random() > 0.1 for _ in range(n)], dtype=np.bool_)
    return index, alive


@pytest.mark.parametrize("n", [50, 3000])  # touched from a pass over every slot / postings
def test_cached_impacts_and_touched_slots_equal_a_fresh_computation(n: int) -> None:
    index, alive = keyword_index(n, seed=n)
    rng = random.Random(7)
    names = ["Kate", "Ana"]
    by_token = address_tokens(names)
    codes = np.array([rng.choice((0, 1, -1, -1)) for _ in range(n)], dtype=np.int32)
    stats = index.collection_stats(alive, n)
    for _ in range(60):
        query = [rng.choice([*WORDS, "nothing"]) for _ in range(rng.randint(1, 4))]
        for addressed in (None, (codes, by_token)):
            fresh, _ = index.matches(query, alive, n, stats, None, addressed)
            for _ in range(2):  # the first caches, the second reads the cache
                scores, touched = index.matches(query, alive, n, stats, "v1", addressed)
                assert np.array_equal(scores, fresh)
                assert np.array_equal(touched, np.flatnonzero(fresh > 0))
    # Postings mostly addressing "kate" lose it; a new version follows changed codes.
    kate = np.array([0] * n, dtype=np.int32)
    before, _ = index.matches(["kate"], alive, n, stats, "v1", (codes, by_token))
    after, touched = index.matches(["kate"], alive, n, stats, "v2", (kate, by_token))
    assert before.any() and not after.any() and len(touched) == 0


def test_addressed_codes_filled_in_later_change_keyword_matches() -> None:
    index = PersonaIndex(DIM)
    docs = make_docs(40, seed=4)
    index.upsert([dataclasses.replace(d, tokens=["kate", "lunch"], addressed=None) for d in docs])
    kate = [h.id for h in index.search(None, ["kate"], 50, mode="keyword")]
    assert len(kate) == len(docs)
    for d in docs:  # as a wake does for a snapshot older than the features
        index.set_features(d.id, d.seq, d.speaker, d.has_time, addressed="Kate")
    assert index.search(None, ["kate"], 50, mode="keyword") == []


def plain_neighbours(
    index: PersonaIndex, slot: int, kinds: frozenset[str], gap: float, reach: int, speakers: bool
) -> list[tuple[int, int]]:
    """The definition of :func:`neighbours`, one slot at a time over the live slots in order."""

    def turn(s: int) -> bool:
        return index.kind_names[index.kind_codes[s]] in kinds or (
            speakers and index.speaker_codes[s] != -1
        )

    live = [s for s in range(index.n_slots) if index.alive[s]]
    live.sort(key=lambda s: (index.occurred[s], index.seqs[s]))
    at = live.index(slot)
    out = []
    for d in range(1, reach + 1):
        pair = []
        for other in (at - d, at + d):
            near = live[other] if 0 <= other < len(live) else -1
            ok = (
                near >= 0
                and turn(slot)
                and turn(near)
                and index.kind_codes[near] == index.kind_codes[slot]
                and abs(index.occurred[near] - index.occurred[slot]) <= gap
            )
            pair.append(near if ok else -1)
        out.append((pair[0], pair[1]))
    return out


@pytest.mark.parametrize("kinds_stored", [("episode",), ("note",), ("episode", "note")])
@pytest.mark.parametrize("speakers", [True, False])
def test_neighbours_follow_their_definition_for_any_mix_of_kinds(
    kinds_stored: tuple[str, ...], speakers: bool
) -> None:
    rng = random.Random(len(kinds_stored))
    index = PersonaIndex(DIM)
    docs = make_docs(150, seed=9)
    index.upsert([dataclasses.replace(d, kind=rng.choice(kinds_stored)) for d in docs])
    for i in range(0, 150, 11):
        index.remove(f"m{i}")
    cols = index.columns()
    live = [s for s in range(index.n_slots) if index.alive[s]]
    slots = np.asarray(rng.sample(live, 60), dtype=np.int64)
    kinds = frozenset({"episode"})
    got = neighbours(cols, slots, kinds, 3600.0, 2, speakers)
    for i, slot in enumerate(slots.tolist()):
        want = plain_neighbours(index, slot, kinds, 3600.0, 2, speakers)
        assert [(int(b[i]), int(a[i])) for b, a in got] == want, slot
