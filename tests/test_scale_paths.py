"""The paths that make a large persona cheap to wake and checkpoint, and imports fast:

* :meth:`Sealer.seal` takes any buffer (a ``memoryview`` slice of a snapshot is sealed
  without being copied first) and :meth:`Sealer.seal_into` seals into a given buffer; both
  open back to the same bytes, and a sealed chunk moved, cut or changed fails to open.
* A snapshot is sealed chunk by chunk from views of its plaintext into one buffer and opened
  back into one buffer, whatever its size against the chunk size.
* The bundled embedder runs single texts (queries) on a one-thread session and batches on a
  multi-threaded one: both give the same vectors.
* onnxruntime must be imported before usearch in one process (the other order crashes it):
  a process that loads a persona's HNSW graph first and the bundled embedder afterwards works.
* An import hands the embedder whole windows of texts, cut back into commit batches in order.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from severance import index_snapshots
from severance.embedders.minilm import MiniLM
from severance.errors import IntegrityError
from severance.model import MemoryDraft
from severance.seal import OVERHEAD, Sealer, aad, new_key
from severance.session_writes import embedded_batches

REPO = Path(__file__).resolve().parent.parent


def test_seal_takes_any_buffer_and_opens_to_the_same_bytes() -> None:
    sealer = Sealer(new_key())
    data = bytearray(os.urandom(10_000))
    ad = aad("store", "persona", "snapshot")
    for plaintext in (bytes(data), data, memoryview(data)[123:4567]):
        blob = sealer.seal(plaintext, ad)
        assert sealer.open(blob, ad) == bytes(plaintext)
        out = bytearray(len(blob))
        sealer.seal_into(plaintext, ad, memoryview(out))
        assert sealer.open(bytes(out), ad) == bytes(plaintext)
        opened = bytearray(len(blob) - OVERHEAD)
        sealer.open_into(memoryview(out), ad, memoryview(opened))
        assert opened == bytes(plaintext)
    with pytest.raises(IntegrityError):
        sealer.open(blob, aad("store", "persona", "elsewhere"))
    with pytest.raises(ValueError):
        sealer.seal_into(b"abc", ad, memoryview(bytearray(3 + OVERHEAD + 1)))


@pytest.mark.parametrize("size", [0, 1, 1000, 4096, 4097, 3 * 4096 + 5])
def test_a_snapshot_is_sealed_from_views_and_opens_into_one_buffer(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_snapshots, "CHUNK", 4096)
    sealer = Sealer(new_key())
    data = os.urandom(size)
    snap = index_snapshots.seal_snapshot(sealer, "s", "p", 7, memoryview(data))
    assert len(snap.chunks) == -(-size // 4096)
    assert all(len(c) <= 4096 + OVERHEAD for c in snap.chunks)
    assert bytes(index_snapshots.open_snapshot(sealer, "s", "p", snap)) == data
    if len(snap.chunks) > 1:
        swapped = type(snap)(7, (snap.chunks[1], snap.chunks[0], *snap.chunks[2:]))
        with pytest.raises(IntegrityError):
            index_snapshots.open_snapshot(sealer, "s", "p", swapped)
        with pytest.raises(IntegrityError):
            index_snapshots.open_snapshot(sealer, "s", "p", type(snap)(7, snap.chunks[:-1]))
    if snap.chunks:
        with pytest.raises(IntegrityError):
            index_snapshots.open_snapshot(sealer, "s", "p", type(snap)(8, snap.chunks))


TEXTS = [
    "What did Caroline research?",
    "ok",
    "The quarterly planning meeting got pushed back to the week after the holidays because "
    "the vendor missed the delivery window, so the offsite moved to February.",
    "Priya's birthday dinner is on the 14th",
]


def test_single_texts_and_batches_give_the_same_vectors_on_either_session() -> None:
    one = MiniLM(cache_size=0, threads=2)  # single texts on one thread, batches on two
    many = MiniLM(cache_size=0, threads=2, query_threads=2)  # one session for both
    assert one.threads == many.threads == 2
    batch = one.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        single = one.embed([text])
        assert np.allclose(single[0], batch[i], atol=1e-5)
        assert np.allclose(single, many.embed([text]), atol=1e-5)
    assert np.allclose(batch, many.embed(TEXTS), atol=1e-5)
    with pytest.raises(ValueError):
        MiniLM(query_threads=0)


_GRAPH_THEN_EMBEDDER = """
import sys
import numpy as np
from severance.search import dense

# A graph first (this imports usearch), then the bundled embedder (onnxruntime).
graph = dense.HNSWIndex(8)
rng = np.random.default_rng(0)
vectors = rng.standard_normal((64, 8)).astype(np.float32)
graph.add(np.arange(64, dtype=np.int64), vectors)
assert len(graph) == 64
from severance.embedders.minilm import MiniLM
vector = MiniLM(cache_size=0).embed(["the graph came first"])
assert vector.shape == (1, 384)
order = [m for m in ("onnxruntime", "usearch") if m in sys.modules]
print(",".join(order), list(sys.modules).index("onnxruntime") < list(sys.modules).index("usearch"))
"""


def test_a_graph_loaded_before_the_embedder_does_not_crash_the_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_GRAPH_THEN_EMBEDDER)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    # A wrong import order ends the process with SIGSEGV (return code -11), not an error.
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["onnxruntime,usearch", "True"]


class _Counting:
    """A real embedder (the bundled one) that records the size of each call."""

    def __init__(self) -> None:
        self.model = MiniLM(cache_size=0)
        self.calls: list[int] = []
        self.name, self.dimension, self.batch_size = self.model.name, 384, 64

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        return self.model.embed(texts)


def test_an_import_embeds_whole_windows_cut_into_commit_batches_in_order() -> None:
    drafts = [MemoryDraft(text=f"{TEXTS[i % len(TEXTS)]} number {i}") for i in range(23)]
    embedder = _Counting()
    got = list(embedded_batches(drafts, embedder, batch_size=4, window=10))
    assert embedder.calls == [8, 8, 7]  # the window rounded down to whole commit batches
    assert [len(batch) for batch, _ in got] == [4, 4, 4, 4, 4, 3]
    assert [d for batch, _ in got for d in batch] == drafts
    vectors = np.concatenate([v for _, v in got])
    assert np.allclose(vectors, embedder.model.embed([d.text for d in drafts]), atol=1e-5)
