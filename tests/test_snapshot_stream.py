"""Checkpoints at scale: a snapshot sealed chunk by chunk as it is written, from views of the
index's own arrays, and the conversation-order links kept in it (format 6).

* A streamed snapshot opens to exactly its pieces laid end to end, however the pieces are
  cut into chunks (large pieces from views of themselves, small ones gathered); chunks still
  cannot be reordered, dropped or moved to another watermark; each chunk handed out is only
  valid until the next (the back-ends copy or write it at once).
* The index's pieces join to what :meth:`PersonaIndex.to_bytes` returns, after deletes and
  edits too, whether the vectors are written as runs of live rows or as one compacted copy.
* The saved links are the ones a woken index would rebuild by sorting; a snapshot of format 5
  (no links) wakes to the same answers; the next snapshot saves them.
* A checkpoint killed (SIGKILL, a real child process) while its snapshot is half written
  leaves the previous snapshot, which wakes with every memory written after it.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from tests.recall_golden import WordEmbedder, drafts, questions

import severance
from severance import index_snapshots
from severance.backends.base import Snapshot
from severance.errors import IntegrityError
from severance.seal import OVERHEAD, Sealer, new_key
from severance.search import Doc, PersonaIndex, container, snapshot
from severance.search.context import SeqOrder

DIM = 16


def collected(stream: index_snapshots.SnapshotStream) -> Snapshot:
    """The stream's chunks, each copied as it is handed out (as a back-end writes it)."""
    chunks = tuple(bytes(chunk) for chunk in stream.each())
    assert tuple(len(c) for c in chunks) == stream.sizes
    return Snapshot(stream.watermark, chunks)


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0],
        [10],
        [5, 7, 3000],  # all small: gathered into one chunk
        [100, 9000, 11, 12, 4096, 1],  # a large piece between small ones
        [4096 * 3 + 17],  # one large piece, cut into chunks
        [2000, 2000, 2000, 2000, 2000],  # small pieces overflowing one chunk
    ],
)
def test_a_streamed_snapshot_opens_to_its_pieces_end_to_end(
    sizes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_snapshots, "CHUNK", 4096)
    monkeypatch.setattr(index_snapshots, "_DIRECT", 1024)
    sealer = Sealer(new_key())
    pieces = [memoryview(os.urandom(n)) for n in sizes]
    stream = index_snapshots.stream_snapshot(sealer, "s", "p", 7, pieces)
    assert all(size <= 4096 + OVERHEAD for size in stream.sizes)
    snap = collected(stream)
    assert bytes(index_snapshots.open_snapshot(sealer, "s", "p", snap)) == b"".join(pieces)
    if len(snap.chunks) > 1:
        swapped = Snapshot(7, (snap.chunks[1], snap.chunks[0], *snap.chunks[2:]))
        with pytest.raises(IntegrityError):
            index_snapshots.open_snapshot(sealer, "s", "p", swapped)
        with pytest.raises(IntegrityError):
            index_snapshots.open_snapshot(sealer, "s", "p", Snapshot(7, snap.chunks[:-1]))
    with pytest.raises(IntegrityError):
        index_snapshots.open_snapshot(sealer, "s", "p", Snapshot(8, snap.chunks))
    with pytest.raises(IntegrityError):
        index_snapshots.open_snapshot(sealer, "s", "other", snap)


def test_large_pieces_are_cut_at_their_bounds_and_small_ones_gathered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_snapshots, "CHUNK", 4096)
    monkeypatch.setattr(index_snapshots, "_DIRECT", 1024)
    pieces = [memoryview(bytes(n)) for n in (64, 100, 4096 * 2 + 10, 30, 40)]
    stream = index_snapshots.stream_snapshot(Sealer(new_key()), "s", "p", 1, pieces)
    assert [s - OVERHEAD for s in stream.sizes] == [164, 4096, 4096, 10, 70]


def test_a_large_snapshot_opens_on_two_threads_to_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_snapshots, "CHUNK", 4096)
    monkeypatch.setattr(index_snapshots, "_DIRECT", 1024)
    monkeypatch.setattr(index_snapshots, "_PARALLEL_FROM", 1)
    sealer = Sealer(new_key())
    data = os.urandom(4096 * 9 + 5)
    snap = collected(index_snapshots.stream_snapshot(sealer, "s", "p", 3, [memoryview(data)]))
    assert bytes(index_snapshots.open_snapshot(sealer, "s", "p", snap)) == data
    flipped = bytearray(snap.chunks[5])
    flipped[-1] ^= 1
    tampered = Snapshot(3, (*snap.chunks[:5], bytes(flipped), *snap.chunks[6:]))
    with pytest.raises(IntegrityError):
        index_snapshots.open_snapshot(sealer, "s", "p", tampered)


# -- the index's pieces and its conversation links --------------------------------------------


def doc(i: int, rng: np.random.Generator, occurred: float) -> Doc:
    vector = rng.standard_normal(DIM).astype(np.float32)
    return Doc(
        id=f"m{i}",
        seq=i + 1,
        kind="episode",
        tags=(f"t{i % 5}",),
        occurred_at=occurred,
        learned_at=float(i),
        vector=vector / np.linalg.norm(vector),
        tokens=[f"w{i % 13}", f"w{i % 7}", "common"],
    )


def churned(seed: int, n: int = 300) -> PersonaIndex:
    """An index with writes out of time order, deletes and edits (retired slots)."""
    rng = np.random.default_rng(seed)
    index = PersonaIndex(DIM)
    index.upsert([doc(i, rng, float(i)) for i in range(n)])
    for i in rng.choice(n, size=n // 6, replace=False).tolist():
        index.remove(f"m{i}")
    # Edits: new slots for old ids, some back-dated between earlier turns.
    index.upsert([doc(i, rng, float(i) - 0.5) for i in range(n // 3, n // 3 + 20)])
    index.upsert([doc(n + i, rng, float(rng.integers(0, n))) for i in range(15)])
    return index


def links(index: PersonaIndex) -> tuple[list[int], list[int], int]:
    order = index.order
    order.update(index.occurred, index.seqs, index.alive, index.n_slots)
    n = index.n_slots
    return order.before[:n].tolist(), order.after[:n].tolist(), order.tail


def sorted_links(index: PersonaIndex) -> tuple[list[int], list[int], int]:
    """The links a fresh :class:`SeqOrder` derives by sorting the index's arrays."""
    order = SeqOrder()
    order.update(index.occurred, index.seqs, index.alive, index.n_slots)
    n = index.n_slots
    return order.before[:n].tolist(), order.after[:n].tolist(), order.tail


def answers(index: PersonaIndex) -> list[list[str]]:
    rng = np.random.default_rng(99)
    out = []
    for word in ("w1", "w3 common", "w5", "w11 w2"):
        query = rng.standard_normal(DIM).astype(np.float32)
        hits = index.search(query / np.linalg.norm(query), word.split(), k=8)
        out.append([hit.id for hit in hits])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_saved_links_are_the_ones_sorting_would_give(seed: int) -> None:
    index = churned(seed)
    woken = PersonaIndex.from_bytes(b"".join(index.snapshot_pieces()))
    assert woken.order.n_slots == woken.n_slots == len(index)
    assert links(woken) == sorted_links(woken)
    assert answers(woken) == answers(index)
    # Still right after more writes and deletes on the woken index, and another round.
    rng = np.random.default_rng(seed + 10)
    woken.upsert([doc(1000 + i, rng, float(i * 3)) for i in range(10)])
    woken.remove("m1000")
    assert links(woken) == sorted_links(woken)
    again = PersonaIndex.from_bytes(woken.to_bytes())
    assert links(again) == sorted_links(again)
    assert answers(again) == answers(woken)


@pytest.mark.parametrize("max_runs", [1, 4096])
def test_the_vectors_are_saved_as_the_live_rows_as_runs_or_as_one_copy(
    max_runs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "_MAX_RUNS", max_runs)
    index = churned(3)
    live = np.flatnonzero(index.alive[: index.n_slots])
    pieces = index.snapshot_pieces()
    assert b"".join(pieces) == index.to_bytes()
    _, arrays = container.unpack_arrays(b"".join(pieces))
    want: npt.NDArray[np.floating] = index.dense.vectors()[live]
    assert arrays["vectors"].reshape(len(live), DIM).tobytes() == want.tobytes()


def test_an_index_whose_every_memory_was_forgotten_snapshots_and_wakes_empty() -> None:
    index = churned(7, n=40)
    for memory_id in list(index.slot_of):
        index.remove(memory_id)
    woken = PersonaIndex.from_bytes(b"".join(index.snapshot_pieces()))
    assert len(woken) == woken.n_slots == 0
    assert answers(woken) == [[], [], [], []]


def as_format_5(data: bytes) -> bytes:
    """A snapshot as format 5 wrote it: no conversation links."""
    meta, arrays = container.unpack_arrays(data)
    meta["format"] = 5
    del meta["order_tail"], arrays["order_before"], arrays["order_after"]
    return container.pack_arrays(meta, arrays)


def test_a_format_5_snapshot_without_links_wakes_to_the_same_answers() -> None:
    index = churned(4)
    old = PersonaIndex.from_bytes(as_format_5(index.to_bytes()))
    assert old.order.n_slots == 0  # derived on the first search
    assert answers(old) == answers(index)
    assert links(old) == sorted_links(old)
    meta, arrays = container.unpack_arrays(old.to_bytes())
    assert meta["format"] == snapshot.SNAPSHOT_FORMAT == 7
    assert "order_before" in arrays


def test_ids_are_saved_as_lines_and_an_id_with_a_line_break_as_json() -> None:
    index = churned(6)
    meta, arrays = container.unpack_arrays(index.to_bytes())
    assert "ids" not in meta and int(meta["id_count"]) == len(index)
    assert PersonaIndex.from_bytes(index.to_bytes()).ids == [
        index.ids[s] for s in np.flatnonzero(index.alive[: index.n_slots]).tolist()
    ]
    index.upsert([dataclasses.replace(doc(5000, np.random.default_rng(1), 1.0), id="two\nlines")])
    woken = PersonaIndex.from_bytes(index.to_bytes())
    assert "two\nlines" in woken.slot_of
    assert answers(woken) == answers(index)
    meta, arrays = container.unpack_arrays(index.to_bytes())
    assert meta["ids"] == woken.ids
    meta, arrays = container.unpack_arrays(churned(6).to_bytes())
    meta["id_count"] += 1
    with pytest.raises(ValueError):
        PersonaIndex.from_bytes(container.pack_arrays(meta, arrays))


@pytest.mark.parametrize("bad", ["short", "out of range", "tail"])
def test_links_that_do_not_fit_the_memories_are_not_trusted(bad: str) -> None:
    meta, arrays = container.unpack_arrays(churned(5).to_bytes())
    if bad == "short":
        arrays["order_before"] = arrays["order_before"][:-1]
    elif bad == "out of range":
        arrays["order_after"][3] = int(meta["id_count"]) + 4
    else:
        meta["order_tail"] = int(meta["id_count"])
    with pytest.raises(ValueError):
        PersonaIndex.from_bytes(container.pack_arrays(meta, arrays))


def _filled(location: str) -> list[list[str]]:
    store = severance.Store.open(location, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        written = session.remember_many(drafts()[:400])
        for memory in written[::9]:
            session.forget(memory.id)
        session.update(written[10].id, text="An edited note about the harbour ferry times")
        session.checkpoint()
        # A tail after the snapshot (fewer changes than close snapshots for): replayed on wake.
        later = session.remember_many(drafts()[400:450])
        session.forget(later[3].id)
        session.forget(written[20].id)
        session.update(written[30].id, text="The harbour ferry leaves at seven, said Kate")
        got = [[h.memory.id for h in session.recall(q, k=8)] for q in questions()[:20]]
    store.close()
    return got


def test_streamed_checkpoints_wake_on_sqlite_and_postgresql(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = severance.Store.init(store_location, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    store.close()
    before = _filled(store_location)
    woken: list[int] = []
    wake = PersonaIndex.from_bytes

    def spy(data: bytes) -> PersonaIndex:
        index = wake(data)
        woken.append(len(index))
        return index

    monkeypatch.setattr(PersonaIndex, "from_bytes", staticmethod(spy))
    store = severance.Store.open(store_location, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        after = [[h.memory.id for h in session.recall(q, k=8)] for q in questions()[:20]]
        assert "snapshot_rejected" not in [e.event for e in store.audit("p")]
    store.close()
    assert after == before
    assert len(woken) == 1  # from the snapshot, then the tail


# -- a checkpoint killed half way -------------------------------------------------------------

CHILD = r"""
import sys, time
import severance
from severance.backends.base import SnapshotStream
from tests.recall_golden import WordEmbedder, drafts

each = SnapshotStream.each

def slow(self):
    for i, chunk in enumerate(each(self)):
        yield chunk
        if i == 1:
            print("half", flush=True)
            time.sleep(60)

SnapshotStream.each = slow
store = severance.Store.open(sys.argv[1], embedder=WordEmbedder())
session = store.enter(floor="f")
session.remember_many(drafts()[400:700])
session.forget(session.recall("ferry", k=1)[0].memory.id)
print("written", flush=True)
session.checkpoint()
"""


def test_a_checkpoint_killed_half_way_leaves_the_old_snapshot_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_snapshots, "CHUNK", 4096)
    location = tmp_path / "store"
    store = severance.Store.init(location, embedder=WordEmbedder())
    store.add_persona("p")
    store.add_floor("f", persona="p")
    with store.enter(floor="f") as session:
        session.remember_many(drafts()[:400])
        session.checkpoint()
    store.close()
    snap_dir = location / "snapshots"
    (old,) = snap_dir.glob("*.snap")
    old_bytes = old.read_bytes()
    script = tmp_path / "child.py"
    # Small chunks in the child too, so that its checkpoint has many.
    small = (
        "import severance\nfrom severance import index_snapshots\nindex_snapshots.CHUNK = 4096\n"
    )
    script.write_text(CHILD.replace("import severance\n", small, 1))
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen(
        [sys.executable, str(script), str(location)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        lines = _read_until(child, "half", timeout=120)
        # The child is inside the back-end's write of its new snapshot, two chunks written.
        assert lines == ["written", "half"]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL  # killed inside the write, not finished
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert old.read_bytes() == old_bytes  # the old snapshot is untouched

    store = severance.Store.open(location, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        woken = [[h.memory.id for h in session.recall(q, k=8)] for q in questions()[:20]]
        count = session.count()
    assert "snapshot_rejected" not in [e.event for e in store.audit("p")]
    store.close()
    assert count == 699  # 400 + 300 written by the child, one forgotten
    # The same answers as an index rebuilt from the rows alone.
    for path in snap_dir.iterdir():
        path.unlink()
    store = severance.Store.open(location, embedder=WordEmbedder())
    with store.enter(floor="f") as session:
        rebuilt = [[h.memory.id for h in session.recall(q, k=8)] for q in questions()[:20]]
    store.close()
    assert woken == rebuilt


def _read_until(child: subprocess.Popen[str], last: str, timeout: float) -> list[str]:
    """The child's lines up to ``last``, read from the pipe itself: ``readline`` on the
    buffered file can take two lines in one read and return one, leaving the second where
    ``select`` cannot see it (the child then looked stalled until it went on and finished)."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    received = b""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line.strip() for line in received.decode().splitlines()]
        if lines and lines[-1] == last:
            return lines
        if time.monotonic() > deadline or child.poll() is not None:
            raise AssertionError(f"the child stopped or stalled after {lines}")
        if selector.select(timeout=1.0):
            received += os.read(fd, 4096)
