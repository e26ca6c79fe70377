"""The one interface every embedder satisfies, and the checks they share.

Severance records an embedder's ``name`` and ``dimension`` with each persona's vectors and
never mixes two models in one index, so the contract is deliberately small and strict: unit
vectors, float32, one row per input, in input order. The helpers here enforce that contract
in one place so that a misbehaving backend (a remote server, a custom model) fails loudly
with :class:`~severance.errors.EmbedderError` instead of silently corrupting an index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from severance.errors import EmbedderError, InvalidInputError

__all__ = [
    "Embedder",
    "QueryEmbedder",
    "Vectors",
    "check_texts",
    "empty",
    "l2_normalise",
    "read_verified",
]

#: What :meth:`Embedder.embed` returns: a ``(n, dimension)`` float32 matrix of unit rows.
Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors.

    ``name``, ``dimension`` and ``batch_size`` are read-only from the caller's point of view;
    an implementation may provide them as plain attributes or as properties.
    """

    @property
    def name(self) -> str:
        """A stable id recorded with each persona's vectors (e.g. ``"minilm-l6-v2-int8"``).

        It changes whenever the model (and therefore the vector space) changes.
        """
        ...

    @property
    def dimension(self) -> int:
        """The length of every vector this embedder returns (e.g. 384)."""
        ...

    @property
    def batch_size(self) -> int:
        """The number of texts this embedder prefers to process per call."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``.

        Returns a ``(len(texts), dimension)`` float32 array whose rows are L2-normalised and
        in the same order as ``texts``; an empty input gives shape ``(0, dimension)``.
        Raises :class:`~severance.errors.InvalidInputError` for a non-string input and
        :class:`~severance.errors.EmbedderError` when the model or service fails.
        """
        ...


@runtime_checkable
class QueryEmbedder(Protocol):
    """What an embedder may add for the one query a recall embeds: its cache of recent
    queries, and a call that says when its model starts running.

    A recall embeds its query on a worker thread while it does the keyword half on its own;
    the model's inference releases the interpreter's lock, the work around it (tokenising,
    pooling) does not. Told when the inference starts, the recall lets the worker get there
    before it runs its own Python code, so the two overlap instead of taking turns.
    """

    def cached_query(self, text: str) -> Vectors | None:
        """``text``'s ``(1, dimension)`` vector if this process embedded it lately, else None
        (never computes anything)."""
        ...

    def embed_query(self, text: str, running: Callable[[], object]) -> Vectors:
        """``embed([text])``, calling ``running()`` once, when what follows releases the
        interpreter's lock (or before returning, if nothing does: a cached query)."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, rejecting a bare string and non-string items.

    A bare ``str`` is itself a ``Sequence[str]``; embedding it character by character is
    never what the caller meant.
    """
    if isinstance(texts, str | bytes):
        raise InvalidInputError("embed() takes a sequence of strings, not a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(f"embed() item {i} is {type(text).__name__}, expected str")
    return out


def empty(dimension: int) -> Vectors:
    """A ``(0, dimension)`` float32 array: the result of embedding nothing."""
    return np.zeros((0, dimension), dtype=np.float32)


def l2_normalise(vectors: npt.ArrayLike, *, source: str) -> Vectors:
    """Return ``vectors`` as float32 rows of unit length.

    A non-finite value or an all-zero row cannot be normalised and would poison an index, so
    either raises :class:`~severance.errors.EmbedderError` naming ``source``.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise EmbedderError(f"{source} returned an array of shape {arr.shape}, expected 2-D")
    if arr.shape[0] == 0:
        return np.ascontiguousarray(arr)
    if not np.isfinite(arr).all():
        raise EmbedderError(f"{source} returned a vector with NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise EmbedderError(f"{source} returned an all-zero vector")
    out: Vectors = np.ascontiguousarray(arr / norms, dtype=np.float32)
    return out


def read_verified(path: Path, expected_sha256: str, *, what: str, package: str) -> bytes:
    """The bytes of ``path`` (a bundled model or engine: ``what``), refused with
    :class:`EmbedderError` unless their sha256 is ``expected_sha256``. The caller loads these
    very bytes, so the file cannot change between the check and the load."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmbedderError(f"cannot read the {what} {str(path)!r}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise EmbedderError(
            f"{what} {str(path)!r} failed its integrity check: sha256 is {actual}, "
            f"expected {expected_sha256}. The file is corrupted or was replaced; reinstall "
            f"{package!r}."
        )
    return data
