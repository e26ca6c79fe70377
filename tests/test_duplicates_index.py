"""The duplicate check reads its leads from the awake index, not from every memory.

* Every slot of the index carries its memory's identity key; a snapshot (format 7) keeps
  them, so a new process finds its leads without decrypting the persona: only the memories a
  key points at are opened (and compared).
* A snapshot without keys (format 6 and older) is migrated on wake: the keys are derived from
  the rows once, and the next snapshot has them.
* A duplicate written by another process after the snapshot is still found (the index
  catches up through the change feed); a key that collides or is stale never merges.
* The same words at other explicit times share a key: each of them is a lead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.recall_golden import WordEmbedder

import severance
from severance import duplicates
from severance.quarantine import RowReader
from severance.search import PersonaIndex, snapshot
from severance.search.container import pack_arrays, unpack_arrays
from severance.search.identity import NO_KEY, IdentityLookup, identity_key

N = 300


def _texts(n: int = N) -> list[str]:
    offices = ("north", "south", "east")
    return [f"Invoice {i} for the {offices[i % 3]} office is paid" for i in range(n)]


def _filled(location: str) -> severance.Store:
    store = severance.Store.init(location, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    with store.enter(floor="f") as session:
        session.remember_many(_texts(), batch_size=64)
        session.checkpoint()
    return store


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of every memory a session opens (decrypts) from here on."""
    opened: list[str] = []
    real = RowReader.open

    def spy(self: RowReader, row: object) -> object:
        opened.append(row.id)  # type: ignore[attr-defined]
        return real(self, row)  # type: ignore[arg-type]

    monkeypatch.setattr(RowReader, "open", spy)
    return opened


def _woken(monkeypatch: pytest.MonkeyPatch) -> list[PersonaIndex]:
    seen: list[PersonaIndex] = []
    wake = PersonaIndex.from_bytes

    def spy(data: bytes) -> PersonaIndex:
        index = wake(data)
        seen.append(index)
        return index

    monkeypatch.setattr(PersonaIndex, "from_bytes", staticmethod(spy))
    return seen


def test_a_new_process_reads_only_the_leads(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _filled(store_location).close()
    with severance.Store.open(store_location, embedder=WordEmbedder()) as store:
        seen = _woken(monkeypatch)
        opened = _opened(monkeypatch)
        with store.enter(floor="f") as session:
            again = session.remember_many(["invoice 7 for the SOUTH office  is paid", "Brand new"])
            assert again[0].duplicate and again[0].text == _texts()[7]
            assert not again[1].duplicate
            assert opened == [again[0].id]  # the one lead, not the persona
            assert len(seen) == 1 and not seen[0].stale_identities
            assert session.count() == N + 1


def _as_format_6(data: bytes) -> bytes:
    """A current snapshot rewritten as format 6 wrote it (no identity keys)."""
    meta, arrays = unpack_arrays(data)
    meta["format"] = 6
    meta.pop("identity")
    arrays.pop("identities")
    return pack_arrays(meta, arrays)


def test_an_old_snapshot_gets_its_identity_keys_once(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = severance.Store.init(store_location, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    with store.enter(floor="f") as session:
        session.remember_many(_texts(), batch_size=64)
        want = session.search_index
        assert want is not None
        keys = want.identities[: want.n_slots].copy()
        current = PersonaIndex.snapshot_pieces
        with monkeypatch.context() as m:
            m.setattr(
                PersonaIndex,
                "snapshot_pieces",
                lambda self: [memoryview(_as_format_6(b"".join(current(self))))],
            )
            session.checkpoint()
    store.close()

    seen = _woken(monkeypatch)
    with severance.Store.open(store_location, embedder=WordEmbedder()) as store:
        with store.enter(floor="f") as session:
            assert session.remember(_texts()[3].upper()).duplicate
        # Read from the rows on wake, the keys are those the writes gave.
        assert seen[0].stale_identities is False
        assert np.array_equal(seen[0].identities[:N], keys)
    # The migrated index was snapshotted on close, with its keys: no migration again.
    opened = _opened(monkeypatch)
    store = severance.Store.open(store_location, embedder=WordEmbedder())
    with store, store.enter(floor="f") as session:
        hit = session.remember(_texts()[5])
        assert hit.duplicate and opened == [hit.id]
    assert len(seen) == 2 and np.array_equal(seen[1].identities[:N], keys)


OTHER = """
import sys
import severance
from tests.recall_golden import WordEmbedder

with severance.Store.open(sys.argv[1], embedder=WordEmbedder()) as store:
    with store.enter(floor="f") as session:
        print(session.remember("Written by the other process").id, flush=True)
"""


def test_a_duplicate_another_process_wrote_after_the_snapshot_is_found(
    store_location: str,
) -> None:
    _filled(store_location).close()
    root = Path(__file__).resolve().parent.parent
    made = subprocess.run(
        [sys.executable, "-c", OTHER, store_location],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=True,
    ).stdout.strip()
    store = severance.Store.open(store_location, embedder=WordEmbedder())
    with store, store.enter(floor="f") as session:
        again = session.remember("written BY the other process")
        assert again.duplicate and again.id == made
        # Awake now: a later write of theirs reaches this session too.
        made = subprocess.run(
            [sys.executable, "-c", OTHER.replace("Written", "Also written"), store_location],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
            check=True,
        ).stdout.strip()
        again = session.remember("also written by the other process")
        assert again.duplicate and again.id == made


def test_a_colliding_or_stale_key_never_merges(store_location: str) -> None:
    with _filled(store_location) as store, store.enter(floor="f") as session:
        session.recall("invoice", k=1)  # wakes the index
        index = session.search_index
        assert index is not None
        texts = _texts()
        # Slot 0 claims (wrongly) the identity of a text it does not hold: a collision, or a
        # key left stale by a bug. The memory it points at is compared and is not the draft.
        victim = index.ids[0]
        seq = index.seq_of(victim)
        assert seq is not None
        index.set_identity(victim, seq, identity_key("Something else", "note", (), {}))
        fresh = session.remember("Something else")
        assert not fresh.duplicate and fresh.id != victim
        assert session.get(victim).text == texts[0]
        # The memory whose key was overwritten is no longer found: a missed match, no merge.
        missed = session.remember(texts[0])
        assert not missed.duplicate
        # Its lookalikes, other kinds or tags, all stay apart from a live key's memory.
        assert not session.remember(texts[1], kind="fact").duplicate
        assert not session.remember(texts[1], tags=["x"]).duplicate
        assert session.remember(texts[1]).duplicate


def test_the_same_words_at_each_explicit_time_are_each_found(store_location: str) -> None:
    with severance.Store.init(store_location, embedder=WordEmbedder()) as store:
        store.add_persona("p")
        store.add_floor("f", persona="p")
        times = ["2024-01-08T09:00:00Z", "2024-01-15T09:00:00Z", "2024-01-22T09:00:00Z"]
        with store.enter(floor="f") as session:
            first = session.remember_many(
                [{"text": "Weekly standup", "occurred_at": t} for t in times]
            )
            assert len({m.id for m in first}) == 3
            # Re-importing (a resumed import): each is found, not only the newest.
            again = session.remember_many(
                [{"text": "weekly STANDUP", "occurred_at": t} for t in reversed(times)]
            )
            assert [m.id for m in again] == [m.id for m in reversed(first)]
            assert all(m.duplicate for m in again)
            assert session.count() == 3


def test_the_lookup_finds_what_a_scan_finds() -> None:
    rng = np.random.default_rng(7)
    lookup = IdentityLookup()
    keys = np.zeros(0, dtype=np.uint64)
    alive = np.zeros(0, dtype=np.bool_)
    for step in range(40):
        grow = int(rng.integers(1, 3000))
        keys = np.concatenate([keys, rng.integers(0, 60, grow).astype(np.uint64)])
        alive = np.concatenate([alive, rng.random(grow) < 0.8])
        alive[rng.integers(0, len(alive), 50)] = False
        wanted = [int(k) for k in rng.integers(0, 70, 25)]
        got = lookup.find(keys, alive, len(keys), wanted, limit=3)
        for key, slots in zip(wanted, got, strict=True):
            want = np.flatnonzero((keys == key) & alive)[::-1][:3].tolist()
            assert slots == ([] if key == NO_KEY else want), step


def test_identity_keys_are_stable_and_follow_the_identity_rules() -> None:
    # The same in every process (saved in snapshots): not Python's salted hash.
    assert identity_key("Invoice 4411 is paid", "fact", ("a", "b"), {}) == 0xDCDB8686A281FC06
    same = identity_key("  invoice 4411 IS paid", "fact", ("b", "a", "a"), {"x": 1})
    assert same == identity_key("Invoice 4411 is paid", "fact", ("a", "b"), {})
    turn = {"session": "s1", "turn": 3}
    assert identity_key("ok", "episode", (), turn) != identity_key(
        "ok", "episode", (), {"session": "s2", "turn": 3}
    )
    assert duplicates.identity("ok", "episode", (), turn)[3] is not None
    assert snapshot.SNAPSHOT_FORMAT == 7
