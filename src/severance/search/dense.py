"""Dense (cosine) scoring over one persona's vectors, in memory.

Vectors are L2-normalised float32 rows of one growable matrix, addressed by slot, so cosine
similarity is a single matrix-vector product. Exact search costs O(n·d) per query and reads
the whole matrix (150 MB at 100k memories of 384 dimensions), so for large personas
:class:`HNSWIndex` proposes candidates in roughly O(log n) and the caller re-scores them
exactly against the float32 rows; it falls back to exact scoring when a filter leaves too
few candidates for a graph search to find them.

The graph (`usearch <https://github.com/unum-cloud/usearch>`_) stores int8-quantised copies of
the vectors: building is 4-5x faster than with float16 on CPUs without native half floats,
the graph is a quarter the size of a float32 one, and since every candidate is re-scored
exactly against the persona's own rows (kept in float16 once a persona has a graph, see
:class:`DenseIndex`), quantisation costs almost no recall (see ``tests/test_search_scale.py``
and ``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numkong
import numpy as np
import numpy.typing as npt

__all__ = [
    "HNSW_CONNECTIVITY",
    "HNSW_DTYPE",
    "HNSW_EXPANSION_ADD",
    "HNSW_EXPANSION_SEARCH",
    "DenseIndex",
    "HNSWIndex",
    "pack_vector",
    "unpack_vector",
]

#: Scalar type of the vectors kept inside the graph (candidates are re-scored in float32).
HNSW_DTYPE = "i8"
#: Neighbours per node (usearch's ``connectivity``, HNSW's M).
HNSW_CONNECTIVITY = 16
#: Beam width while inserting (HNSW's efConstruction).
HNSW_EXPANSION_ADD = 64
#: Minimum beam width while searching (HNSW's ef); a search for more results widens it.
HNSW_EXPANSION_SEARCH = 64

_NO_SLOT = -1
#: Rows gathered, widened and multiplied at a time: small enough that a block (in float16 and
#: float32, 576 KiB) stays in the core's cache between the three steps — 35% faster than
#: blocks of 4096 for the 2,000 rows of a selective filter at 100k memories, with the same
#: results to the bit (a multiple of BLAS's row grouping).
_GATHER_ROWS = 256


def _usearch_index() -> Any:
    """usearch's ``Index`` class, imported safely.

    With usearch 2.26 and onnxruntime 1.31 on Linux x86-64, importing onnxruntime *after*
    usearch's compiled extension crashes the process (segmentation fault; the other order is
    fine). The bundled embedder needs onnxruntime, and may be loaded after a large persona's
    graph, so onnxruntime (when installed) is imported first.
    """
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401

    from usearch.index import Index

    return Index


def load_graph_library() -> None:
    """Import the graph library now (as :func:`_usearch_index` does): at a million memories
    its import is a tenth of a second or more, which a wake does while the snapshot is being
    decrypted on other threads instead of after."""
    _usearch_index()


def _float32(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """``rows`` as float32. Half-precision rows are widened with numkong (usearch's own SIMD
    kernels, installed with it): numpy converts float16 element by element, which made
    re-scoring a few hundred candidates three times slower than the float32 rows it saves
    reading."""
    if rows.dtype == np.float32:
        return rows
    if rows.dtype == np.float16 and rows.size:
        return np.asarray(numkong.astype(np.ascontiguousarray(rows), "float32"))
    return rows.astype(np.float32)


def pack_vector(vector: npt.NDArray[np.float32]) -> bytes:
    """Little-endian float32 bytes, whatever the machine."""
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack_vector(data: bytes, dimension: int) -> npt.NDArray[np.float32]:
    vec = np.frombuffer(data, dtype="<f4")
    if vec.shape != (dimension,):
        raise ValueError(f"expected a {dimension}-dimensional vector, got {vec.size} values")
    return vec.astype(np.float32)


def _grown(array: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """``array`` with room for ``n`` entries, new ones set to -1."""
    if n <= len(array):
        return array
    grown = np.full(max(n, len(array) + len(array) // 2, 64), _NO_SLOT, dtype=np.int64)
    grown[: len(array)] = array
    return grown


class DenseIndex:
    """A growable matrix of unit vectors; row ``slot`` belongs to the document at ``slot``.

    Rows are float32 until :meth:`halve` (called once a persona is large enough for an HNSW
    graph), then float16: a large persona's exact re-scoring reads only a few hundred rows
    per query, whose half-precision cosines are within about 1e-4 of the float32 ones, and
    the matrix (most of a snapshot, of the memory an awake persona takes, and of the time a
    wake takes to decrypt it) is half the size. Every path that builds an index (live
    writes, a snapshot, a rebuild from the rows) rounds the same vectors the same way, so
    they give the same scores.
    """

    def __init__(self, dimension: int, matrix: npt.NDArray[np.floating] | None = None) -> None:
        self.dimension = dimension
        if matrix is None:
            self._m: npt.NDArray[np.floating] = np.zeros((0, dimension), dtype=np.float32)
            self.n = 0
        else:
            dtype = np.float16 if matrix.dtype == np.float16 else np.float32
            self._m = np.ascontiguousarray(matrix, dtype=dtype)
            self.n = len(matrix)

    @property
    def halved(self) -> bool:
        """Whether rows are kept in float16."""
        return bool(self._m.dtype == np.float16)

    def halve(self) -> None:
        """Keep the rows (those there and those added from now on) in float16."""
        if not self.halved:
            self._m = self._m[: self.n].astype(np.float16)

    def _reserve(self, n: int) -> None:
        if n > len(self._m):
            # Grow by half, not double: at a million 384-d rows the matrix is 1.5 GB.
            size = max(n, len(self._m) + len(self._m) // 2, 64)
            grown = np.empty((size, self.dimension), dtype=self._m.dtype)
            grown[: self.n] = self._m[: self.n]
            self._m = grown

    def add(self, slot: int, vectors: npt.NDArray[np.float32]) -> None:
        """Set rows ``slot .. slot + len(vectors)``; slots are appended in increasing order."""
        vectors = np.atleast_2d(vectors)
        end = slot + len(vectors)
        self._reserve(end)
        self._m[slot:end] = vectors
        self.n = max(self.n, end)

    def scores(self, query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Cosine similarity of the query to every slot."""
        q = query.astype(np.float32)
        if not self.halved:
            every: npt.NDArray[np.float32] = np.asarray(self._m[: self.n] @ q, dtype=np.float32)
            return every
        out = np.empty(self.n, dtype=np.float32)
        for lo in range(0, self.n, _GATHER_ROWS):
            hi = min(self.n, lo + _GATHER_ROWS)
            out[lo:hi] = _float32(self._m[lo:hi]) @ q
        return out

    def scores_at(
        self, slots: npt.NDArray[np.int64], query: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Cosine similarity of the query to the given slots only."""
        q = query.astype(np.float32)
        if len(slots) <= _GATHER_ROWS:
            result: npt.NDArray[np.float32] = _float32(self._m[slots]) @ q
            return result
        # In blocks: one gather of, say, 50k rows would be a 75 MB temporary, which the
        # allocator maps fresh (and the kernel zero-fills) on every query.
        out = np.empty(len(slots), dtype=np.float32)
        for lo in range(0, len(slots), _GATHER_ROWS):
            block = self._m[slots[lo : lo + _GATHER_ROWS]]
            out[lo : lo + _GATHER_ROWS] = _float32(block) @ q
        return out

    def vectors(self) -> npt.NDArray[np.floating]:
        """Rows ``0 .. n`` (float32, or float16 once :meth:`halve` was called)."""
        return self._m[: self.n]


class HNSWIndex:
    """An HNSW graph over some of a persona's slots, for approximate nearest neighbours.

    Graph keys are not slots: slots are renumbered when a snapshot compacts retired ones away,
    while a graph cannot cheaply be renumbered. Keys come from a counter instead, and
    ``key_slot`` / ``slot_key`` translate. Slots below :attr:`covered` have been offered to
    the graph (the live ones are in it); the caller scores the slots above it exactly.

    Removing a key only marks its node free in the graph; the node's (quantised) vector stays
    in memory until a later insertion reuses the node. :meth:`to_array` therefore first fills
    every free node with random noise, so that a snapshot never carries the vector of a
    forgotten memory.

    A graph loaded from a snapshot is a read-only *view* of the snapshot's bytes (no copy, so
    waking is not slowed by the graph's size); the first insertion or removal copies it.
    """

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._ix = _usearch_index()(
            ndim=dimension,
            metric="cos",
            dtype=HNSW_DTYPE,
            connectivity=HNSW_CONNECTIVITY,
            expansion_add=HNSW_EXPANSION_ADD,
            expansion_search=HNSW_EXPANSION_SEARCH,
        )
        self.covered = 0
        self.next_key = 0
        self.key_slot = np.zeros(0, dtype=np.int64)
        self.slot_key = np.zeros(0, dtype=np.int64)
        self._removed_since_scrub = 0
        self._viewed: npt.NDArray[np.uint8] | None = None

    def __len__(self) -> int:
        return int(self._ix.size)

    @property
    def usearch(self) -> Any:
        """The usearch index itself, for read-only use (the benchmark's raw-index ceiling)."""
        return self._ix

    def _mutable(self) -> None:
        """Replace a graph viewing snapshot bytes by a copy of its own, which can change."""
        if self._viewed is not None:
            ix = self._ix.copy()
            ix.expansion_add = HNSW_EXPANSION_ADD
            ix.expansion_search = HNSW_EXPANSION_SEARCH
            self._ix = ix
            self._viewed = None

    def add(self, slots: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        """Insert ``vectors`` for ``slots`` (each slot at most once)."""
        if len(slots) == 0:
            return
        self._mutable()
        keys = np.arange(self.next_key, self.next_key + len(slots), dtype=np.int64)
        self.next_key += len(slots)
        self.key_slot = _grown(self.key_slot, self.next_key)
        self.slot_key = _grown(self.slot_key, int(slots.max()) + 1)
        self._ix.add(keys, np.ascontiguousarray(vectors, dtype=np.float32), threads=0)
        self.key_slot[keys] = slots
        self.slot_key[slots] = keys

    def remove(self, slot: int) -> None:
        if slot >= len(self.slot_key):
            return
        key = int(self.slot_key[slot])
        if key == _NO_SLOT:
            return
        self._mutable()
        self._ix.remove(key)
        self.key_slot[key] = _NO_SLOT
        self.slot_key[slot] = _NO_SLOT
        self._removed_since_scrub += 1

    def search(self, query: npt.NDArray[np.float32], count: int) -> npt.NDArray[np.int64]:
        """Slots of (about) the ``count`` nearest vectors, nearest first."""
        if count <= 0 or len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        matches = self._ix.search(np.asarray(query, dtype=np.float32), count, threads=1)
        slots = self.key_slot[np.asarray(matches.keys, dtype=np.int64)]
        result: npt.NDArray[np.int64] = slots[slots != _NO_SLOT]
        return result

    def scrub(self) -> None:
        """Overwrite the vectors left in free nodes (by removals) with random noise."""
        if not self._removed_since_scrub:
            return
        free = int(self._ix.stats.nodes) - int(self._ix.size)
        if free > 0:
            rng = np.random.default_rng()
            noise = rng.standard_normal((free, self.dimension)).astype(np.float32)
            noise /= np.linalg.norm(noise, axis=1, keepdims=True)
            keys = np.arange(self.next_key, self.next_key + free, dtype=np.int64)
            self.next_key += free
            self.key_slot = _grown(self.key_slot, self.next_key)
            # Insertions reuse free nodes before allocating new ones, so the noise lands
            # exactly on the nodes that held removed vectors; then free them again.
            self._ix.add(keys, noise, threads=0)
            self._ix.remove(keys)
        self._removed_since_scrub = 0

    def to_array(self) -> npt.NDArray[np.uint8]:
        """The graph, serialised (after :meth:`scrub`), as a byte array."""
        self.scrub()
        if self._viewed is not None:  # unchanged since it was loaded
            return self._viewed
        data = self._ix.save()
        if data is None:  # pragma: no cover - only when the index has a path of its own
            raise RuntimeError("usearch did not serialise the graph to memory")
        return np.frombuffer(data, dtype=np.uint8)

    @classmethod
    def from_bytes(
        cls,
        dimension: int,
        data: bytes | npt.NDArray[np.uint8],
        key_slot: npt.NDArray[np.int64],
        covered: int,
        n_slots: int,
    ) -> HNSWIndex:
        """A graph saved by :meth:`to_bytes`, with its key-to-slot map (``-1``: no slot)."""
        hnsw = cls.__new__(cls)
        hnsw.dimension = dimension
        hnsw._removed_since_scrub = 0
        buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
        buffer = np.ascontiguousarray(buffer)
        # restore() reads the graph's own metric, scalar type and connectivity; view=True
        # searches the bytes in place (kept alive by hnsw._viewed) until the first change.
        ix = _usearch_index().restore(
            buffer.data,
            view=True,
            expansion_add=HNSW_EXPANSION_ADD,
            expansion_search=HNSW_EXPANSION_SEARCH,
        )
        if ix is None or ix.ndim != dimension:
            raise ValueError("the HNSW graph is unreadable or has another dimension")
        hnsw._ix = ix
        hnsw._viewed = buffer
        hnsw.key_slot = np.asarray(key_slot, dtype=np.int64).copy()
        hnsw.next_key = len(hnsw.key_slot)
        hnsw.covered = covered
        hnsw.slot_key = np.full(max(n_slots, 1), _NO_SLOT, dtype=np.int64)
        has = np.nonzero(hnsw.key_slot != _NO_SLOT)[0]
        hnsw.slot_key[hnsw.key_slot[has]] = has
        return hnsw

    def compacted_keys(self, remap: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """``key_slot`` with slots renumbered by ``remap`` (``-1`` stays ``-1``)."""
        keys = self.key_slot[: self.next_key]
        out = np.full(len(keys), _NO_SLOT, dtype=np.int64)
        has = keys != _NO_SLOT
        out[has] = remap[keys[has]]
        return out

    def memory_bytes(self) -> int:
        return int(self._ix.memory_usage) + self.key_slot.nbytes + self.slot_key.nbytes
