"""Dense (cosine) scoring over one persona's vectors, in memory.

Vectors are L2-normalised float32 rows of one growable matrix, addressed by slot, so cosine
similarity is a single matrix-vector product. Exact search costs O(n·d) per query; for large
personas :class:`HNSWIndex` answers approximately in O(log n) and the caller falls back to
exact scoring when a filter leaves too few candidates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["DenseIndex", "pack_vector", "unpack_vector"]


def pack_vector(vector: npt.NDArray[np.float32]) -> bytes:
    """Little-endian float32 bytes, whatever the machine."""
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack_vector(data: bytes, dimension: int) -> npt.NDArray[np.float32]:
    vec = np.frombuffer(data, dtype="<f4")
    if vec.shape != (dimension,):
        raise ValueError(f"expected a {dimension}-dimensional vector, got {vec.size} values")
    return vec.astype(np.float32)


class DenseIndex:
    """A growable matrix of unit vectors; row ``slot`` belongs to the document at ``slot``."""

    def __init__(self, dimension: int, matrix: npt.NDArray[np.float32] | None = None) -> None:
        self.dimension = dimension
        if matrix is None:
            self._m = np.zeros((0, dimension), dtype=np.float32)
            self.n = 0
        else:
            self._m = np.ascontiguousarray(matrix, dtype=np.float32)
            self.n = len(matrix)

    def _reserve(self, n: int) -> None:
        if n > len(self._m):
            grown = np.zeros((max(n, 2 * len(self._m), 64), self.dimension), dtype=np.float32)
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
        result: npt.NDArray[np.float32] = self._m[: self.n] @ query.astype(np.float32)
        return result

    def vectors(self) -> npt.NDArray[np.float32]:
        return self._m[: self.n]
