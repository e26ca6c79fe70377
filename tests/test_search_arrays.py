"""The array forms of the ranking steps give what their plain forms give.

* Conversation order kept as links between live slots (``SeqOrder``): after deletions, edits,
  back-dated writes, a snapshot and a wake, the neighbours of every memory are those of an
  index rebuilt from the live rows alone.
* Speaker aliases learned over code arrays (:func:`alias_codes`) equal
  :func:`learn_aliases` over names; dates matched over an array of times
  (:func:`on_dates`) equal :meth:`DateSpec.matches` of each time; the repeat test over
  candidate pairs found by sorting equals the test over every pair.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from severance.search import Doc, PersonaIndex
from severance.search.context import neighbours
from severance.search.query import DateSpec, analyze, on_dates
from severance.search.scoring import QUERY_SLACK, repeat_candidates
from severance.search.speakers import alias_codes, learn_aliases

DIM = 8
DAY = 86400.0
SPEAKERS = ("Ana", "Ben", None)
KINDS = ("episode", "note")


def doc(memory_id: str, seq: int, occurred: float, rng: random.Random) -> Doc:
    vector = np.asarray([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
    return Doc(
        id=memory_id,
        seq=seq,
        kind=rng.choice(KINDS),
        tags=(),
        occurred_at=occurred,
        learned_at=0.0,
        vector=vector / np.linalg.norm(vector),
        tokens=["w"],
        speaker=rng.choice(SPEAKERS),
    )


def conversation(index: PersonaIndex) -> list[str]:
    """The live memories' ids in conversation order, read from the index's links."""
    cols = index.columns()
    live = [s for s in range(index.n_slots) if index.alive[s]]
    heads = [s for s in live if cols.before[s] == -1]
    assert len(heads) == (1 if live else 0)
    order: list[str] = []
    at = heads[0] if heads else -1
    while at != -1:
        order.append(index.ids[at])
        at = int(cols.after[at])
    assert len(order) == len(live)
    return order


def neighbour_ids(index: PersonaIndex, reach: int) -> dict[str, list[tuple[str, str]]]:
    """Every live memory -> its (before, after) ids at each distance (speakers' turns too)."""
    cols = index.columns()
    slots = np.asarray([s for s in range(index.n_slots) if index.alive[s]], dtype=np.int64)
    pairs = neighbours(cols, slots, frozenset({"episode"}), 2 * DAY, reach, speakers=True)

    def name(slot: int) -> str:
        return "-" if slot < 0 else index.ids[slot]

    return {
        index.ids[s]: [(name(int(b[i])), name(int(a[i]))) for b, a in pairs]
        for i, s in enumerate(slots.tolist())
    }


def rebuilt(live: list[Doc], seed: int) -> PersonaIndex:
    """An index of ``live`` alone, written in another order and in other batches."""
    shuffled = list(live)
    random.Random(seed).shuffle(shuffled)
    index = PersonaIndex(DIM)
    for lo in range(0, len(shuffled), 7):
        index.upsert(shuffled[lo : lo + 7])
        index.columns()  # take the batch in, as a search between writes would
    return index


@pytest.mark.parametrize("seed", range(6))
def test_neighbours_after_deletes_edits_and_a_wake_equal_a_rebuild(seed: int) -> None:
    rng = random.Random(seed)
    index = PersonaIndex(DIM)
    current: dict[str, Doc] = {}
    seq = 0
    for step in range(40):
        batch = []
        for _ in range(rng.randint(1, 6)):
            seq += 1
            # Mostly in order; sometimes back-dated, sometimes an edit of an earlier memory.
            roll = rng.random()
            if roll < 0.15 and current:
                old = current[rng.choice(sorted(current))]
                new = doc(old.id, seq, old.occurred_at, rng)
            else:
                when = step * 3600.0 if roll < 0.85 else rng.uniform(0, step * 3600.0)
                new = doc(f"m{seq}", seq, when, rng)
            if all(d.id != new.id for d in batch):
                batch.append(new)
        index.upsert(batch)
        current.update({d.id: d for d in batch})
        for memory_id in rng.sample(sorted(current), k=min(len(current), rng.randint(0, 3))):
            index.remove(memory_id)
            del current[memory_id]
        if rng.random() < 0.5:
            index.columns()  # a search in between: the links are brought up to date now
    want = rebuilt(list(current.values()), seed)
    assert conversation(index) == conversation(want)
    assert neighbour_ids(index, 3) == neighbour_ids(want, 3)
    woken = PersonaIndex.from_bytes(index.to_bytes())  # compacted: slots renumbered
    assert conversation(woken) == conversation(want)
    assert neighbour_ids(woken, 3) == neighbour_ids(want, 3)
    # Writes after the wake keep it so.
    seq += 1
    late = doc(f"m{seq}", seq, 1e9, rng)
    woken.upsert([late])
    want.upsert([late])
    victim = sorted(current)[0]
    woken.remove(victim)
    want.remove(victim)
    assert neighbour_ids(woken, 2) == neighbour_ids(want, 2)


def test_a_long_run_of_deleted_turns_does_not_hide_the_neighbour() -> None:
    rng = random.Random(1)
    index = PersonaIndex(DIM)
    docs = [doc(f"m{i}", i + 1, float(i), rng) for i in range(200)]
    docs = [dataclasses.replace(d, kind="episode", speaker="Ana") for d in docs]
    index.upsert(docs)
    index.columns()
    for d in docs[1:199]:
        index.remove(d.id)
    found = neighbour_ids(index, 1)
    assert found == {"m0": [("-", "m199")], "m199": [("m0", "-")]}


@pytest.mark.parametrize("seed", range(30))
def test_alias_codes_equal_learn_aliases(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(0, 60)
    names = ["Kate Moore", "Jo", "Sam", "Mel"]
    words = ["kate", "jo", "sam", "mel", "ok"]
    speakers = [rng.choice([*names, None]) for _ in range(n)]
    vocatives = [rng.choice([*words, None, None, None]) for _ in range(n)]
    want = learn_aliases(speakers, vocatives)
    table = names + words
    codes = np.asarray([-1 if s is None else table.index(s) for s in speakers], dtype=np.int32)
    said = np.asarray([-1 if w is None else table.index(w) for w in vocatives], dtype=np.int32)
    got = alias_codes(codes, said)
    assert {table[c]: frozenset(table[w] for w in ws) for c, ws in got.items()} == want


def test_dates_over_arrays_equal_matches_of_each_time() -> None:
    rng = np.random.default_rng(3)
    base = datetime(2023, 1, 1, tzinfo=UTC).timestamp()
    times = np.concatenate(
        [
            base + rng.uniform(-400, 800, 3000) * DAY,
            # A hair either side of midnight, where rounding to the microsecond decides.
            base + np.arange(-5, 60) * DAY - 1e-7,
            base + np.arange(-5, 60) * DAY - 4e-7,
            base + np.arange(-5, 60) * DAY + 1e-7,
            [0.0, -1.0, -DAY - 0.5, datetime(2024, 2, 29, 12, tzinfo=UTC).timestamp()],
        ]
    )
    questions = [
        "What did Ana do on 7 July, 2023?",
        "Did Ben call on March 1st 2023?",
        "What happened on 2024-02-29?",
        "Where was she in May 2023?",
        "What did we do in early July?",
        "What changed in 2022?",
    ]
    specs = [d for q in questions for d in analyze(q).dates]
    specs += [DateSpec(None, 2, 29), DateSpec(None, 12, 31), DateSpec(None, 1, 1), DateSpec(1969)]
    for spec in specs:
        want = [spec.matches(datetime.fromtimestamp(t, UTC)) for t in times.tolist()]
        assert on_dates((spec,), times).tolist() == want, spec
    both = (specs[0], specs[4])
    want = [any(d.matches(datetime.fromtimestamp(t, UTC)) for d in both) for t in times.tolist()]
    assert on_dates(both, times).tolist() == want


def every_close_pair(dense: npt.NDArray[np.float64]) -> set[tuple[int, int]]:
    close = np.abs(dense[:, None] - dense[None, :]) <= QUERY_SLACK
    later, earlier = np.nonzero(close)
    return {(int(a), int(b)) for a, b in zip(later, earlier, strict=True) if a > b}


@pytest.mark.parametrize("seed", range(20))
def test_repeat_candidates_found_by_sorting_are_every_close_pair(seed: int) -> None:
    rng = np.random.default_rng(seed)
    head = int(rng.integers(2, 120))
    dense = rng.uniform(0.2, 0.8, head)
    # Clusters of near-equal cosines, some exactly at the slack apart.
    for lo in range(0, head - 3, 10):
        dense[lo + 1] = dense[lo]
        dense[lo + 2] = dense[lo] + QUERY_SLACK
        dense[lo + 3] = dense[lo] + QUERY_SLACK * rng.uniform(0.5, 1.5)
    later, earlier = repeat_candidates(head, dense)
    assert np.all(later > earlier)
    found = {(int(a), int(b)) for a, b in zip(later, earlier, strict=True)}
    assert len(found) == len(later)  # no pair twice
    assert every_close_pair(dense) <= found
    every_later, every_earlier = repeat_candidates(head, None)
    assert len(every_later) == head * (head - 1) // 2
    assert np.all(every_later > every_earlier)
