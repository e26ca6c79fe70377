"""Keyword tokens: English Snowball stemming, safe across threads, and recorded in snapshots.

* Words of one family share a token ("adoption", "adopting", "adopted"), so a question and
  a memory that phrase it differently still match by keyword.
* The stemmer is shared by every search of the process: tokenising in several threads at once
  gives what one thread gives.
* A snapshot records the tokenizer version its postings were built with; one built by another
  (or by the suffix strip before it, which recorded none) has its keyword postings derived
  again from the rows on wake — the results are those of a fresh index, no rejected snapshot
  is reported, and the next snapshot records the current version.
"""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from tests.recall_golden import WordEmbedder, drafts, questions

import severance
from severance.search import PersonaIndex, tokenize
from severance.search.container import pack_arrays, unpack_arrays
from severance.search.keyword import TOKENIZER_VERSION

N = 600


def test_word_families_share_a_token() -> None:
    assert tokenize("adoption adopting adopted adopts") == ["adopt"] * 4
    assert tokenize("She loved the lovely paintings") == ["love", "love", "paint"]
    assert tokenize("The kids went running") == ["kid", "went", "run"]
    assert tokenize("") == [] and tokenize("the and of") == []


def test_tokenising_in_threads_gives_what_one_thread_gives() -> None:
    texts = [d.text for d in drafts()[:400]] + [f"word{i}ing relations{i}" for i in range(400)]
    want = [tokenize(t) for t in texts[:400]]
    fresh = [f"unseen{i}ations runnings{i}" for i in range(2000)]  # not memoised yet
    got: dict[int, list[list[str]]] = {}

    def work(n: int) -> None:
        got[n] = [tokenize(t) for t in (*texts[:400], *fresh)]

    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(got) == 4
    for tokens in got.values():
        assert tokens[:400] == want
        assert tokens[400:] == got[0][400:]


def _as_other_tokenizer(data: bytes, version: int | None) -> bytes:
    meta, arrays = unpack_arrays(data)
    if version is None:
        meta.pop("tokenizer")
    else:
        meta["tokenizer"] = version
    return pack_arrays(meta, arrays)


def _results(session: severance.Session) -> list[list[tuple[str, float]]]:
    out = []
    for q in questions()[:40]:
        hits = session.recall(q, k=10)
        out.append([(f"{zlib.crc32(h.memory.text.encode()):08x}", h.score) for h in hits])
    return out


def test_a_snapshot_records_the_tokenizer() -> None:
    index = PersonaIndex(WordEmbedder.dimension)
    meta, _ = unpack_arrays(index.to_bytes())
    assert meta["tokenizer"] == TOKENIZER_VERSION
    assert not PersonaIndex.from_bytes(index.to_bytes()).stale_keywords
    for version in (None, TOKENIZER_VERSION - 1):
        assert PersonaIndex.from_bytes(
            _as_other_tokenizer(index.to_bytes(), version)
        ).stale_keywords


@pytest.mark.parametrize("recorded", [None, TOKENIZER_VERSION - 1], ids=["none", "other"])
def test_a_snapshot_of_another_tokenizer_is_migrated_on_wake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: int | None
) -> None:
    path = str(tmp_path / "store")
    store = severance.Store.init(path, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    with store.enter(floor="f") as session:
        session.remember_many(drafts()[:N])
        want = _results(session)
        current = PersonaIndex.snapshot_pieces
        monkeypatch.setattr(  # what a checkpoint seals
            PersonaIndex,
            "snapshot_pieces",
            lambda self: [memoryview(_as_other_tokenizer(b"".join(current(self)), recorded))],
        )
        session.checkpoint()
        monkeypatch.undo()
    store.close()

    woken: list[PersonaIndex] = []
    wake = PersonaIndex.from_bytes

    stale: list[bool] = []

    def spy(data: bytes) -> PersonaIndex:
        index = wake(data)
        stale.append(index.stale_keywords)
        woken.append(index)
        return index

    monkeypatch.setattr(PersonaIndex, "from_bytes", staticmethod(spy))
    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _results(session) == want  # postings derived again with today's tokens
    store.close()  # the migrated index is snapshotted on close
    assert stale == [True]
    assert "snapshot_rejected" not in [e.event for e in store_audit(path)]

    store = severance.Store.open(path, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        assert _results(session) == want
    store.close()
    assert stale == [True, False]  # the snapshot written on close has today's tokens
    assert woken[1].n_slots == N


def store_audit(path: str) -> list[Any]:
    store = severance.Store.open(path, embedder=WordEmbedder())
    try:
        return list(store.audit("p"))
    finally:
        store.close()
