"""One embedder for every system, with turn vectors cached on disk.

Every dense system in a run (Severance, mem0, Chroma) gets the same model. Embedding the
5,882 LoCoMo turns takes about half a minute on two cores, so the turn vectors are computed
once, stored under ``bench/.cache/`` (git-ignored) keyed by embedder name and text hash, and
served from there to every system. Ingest times therefore exclude embedding; the embedding
cost is measured separately (:class:`WarmStats`). Queries are always embedded live, inside
each system's timed search, so query latencies include the query embedding.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CachingEmbedder",
    "EmbedderLike",
    "EmbeddingCache",
    "WarmStats",
    "default_embedder_factory",
    "text_key",
]

Vectors = npt.NDArray[np.float32]
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".cache"


@runtime_checkable
class EmbedderLike(Protocol):
    """The surface of ``severance.embedders.Embedder`` the harness relies on."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


@dataclass(frozen=True)
class WarmStats:
    """What it cost to have vectors for ``n_texts`` texts."""

    embedder: str
    dimension: int
    n_texts: int
    n_computed: int  # embedded in this run (cache misses)
    seconds: float  # time spent embedding the misses in this run
    recorded_texts_per_second: float | None  # throughput recorded when the cache was filled

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "dimension": self.dimension,
            "n_texts": self.n_texts,
            "n_computed_this_run": self.n_computed,
            "seconds_this_run": self.seconds,
            "texts_per_second_this_run": (self.n_computed / self.seconds)
            if self.n_computed and self.seconds
            else None,
            "texts_per_second_recorded": self.recorded_texts_per_second,
        }


class EmbeddingCache:
    """Vectors of texts under one embedder, persisted as ``<dir>/<name>-<dim>.npz`` + ``.json``.

    The JSON side file keeps the cumulative number of texts embedded into the cache and the
    seconds it took, so a run served entirely from the cache can still report throughput.
    """

    def __init__(
        self,
        embedder: EmbedderLike,
        cache_dir: Path | None = DEFAULT_CACHE_DIR,
        *,
        refresh: bool = False,
    ) -> None:
        self.embedder = embedder
        self.dimension = int(embedder.dimension)
        self._vectors: dict[str, Vectors] = {}
        self._meta: dict[str, Any] = {"embedded": 0, "seconds": 0.0}
        self._dir = cache_dir
        if cache_dir is not None:
            stem = f"{_slug(embedder.name)}-{self.dimension}"
            self._npz = cache_dir / f"{stem}.npz"
            self._json = cache_dir / f"{stem}.json"
            if not refresh:  # refresh: re-embed everything (and so re-measure throughput)
                self._load()

    def _load(self) -> None:
        if not self._npz.is_file():
            return
        with np.load(self._npz) as data:
            keys = [k.decode("ascii") for k in data["keys"]]
            vecs = np.asarray(data["vectors"], dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != self.dimension or len(keys) != len(vecs):
            return  # unreadable or stale: rebuild
        self._vectors = {k: vecs[i] for i, k in enumerate(keys)}
        if self._json.is_file():
            self._meta.update(json.loads(self._json.read_text(encoding="utf-8")))

    def _save(self) -> None:
        if self._dir is None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        keys = np.array([k.encode("ascii") for k in self._vectors], dtype="S64")
        vecs = (
            np.stack(list(self._vectors.values()))
            if self._vectors
            else np.zeros((0, self.dimension), dtype=np.float32)
        )
        tmp = self._npz.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vecs)
        tmp.replace(self._npz)
        meta = dict(self._meta, embedder=self.embedder.name, dimension=self.dimension)
        self._json.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def get(self, text: str) -> Vectors | None:
        return self._vectors.get(text_key(text))

    def warm(self, texts: Sequence[str], *, batch: int = 256) -> WarmStats:
        """Make sure every text has a vector; embed (and time) only the missing ones."""
        missing: list[str] = []
        seen: set[str] = set()
        for t in texts:
            key = text_key(t)
            if key not in self._vectors and key not in seen:
                seen.add(key)
                missing.append(t)
        seconds = 0.0
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            t0 = time.perf_counter()
            vecs = np.asarray(self.embedder.embed(chunk), dtype=np.float32)
            seconds += time.perf_counter() - t0
            for t, v in zip(chunk, vecs, strict=True):
                self._vectors[text_key(t)] = v
        if missing:
            self._meta["embedded"] = int(self._meta.get("embedded", 0)) + len(missing)
            self._meta["seconds"] = float(self._meta.get("seconds", 0.0)) + seconds
            self._save()
        recorded = (
            self._meta["embedded"] / self._meta["seconds"] if self._meta.get("seconds") else None
        )
        return WarmStats(
            embedder=self.embedder.name,
            dimension=self.dimension,
            n_texts=len(set(map(text_key, texts))),
            n_computed=len(missing),
            seconds=seconds,
            recorded_texts_per_second=recorded,
        )


class CachingEmbedder:
    """An embedder that answers from an :class:`EmbeddingCache` and embeds misses live.

    It has the inner embedder's ``name`` and ``dimension``, so the vectors it returns are
    interchangeable with the inner model's. Misses (queries) are not added to the cache.
    """

    def __init__(self, inner: EmbedderLike, cache: EmbeddingCache) -> None:
        if cache.embedder.name != inner.name:
            raise ValueError(f"cache is for {cache.embedder.name!r}, embedder is {inner.name!r}")
        self.inner = inner
        self.cache = cache
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    @property
    def batch_size(self) -> int:
        return int(getattr(self.inner, "batch_size", 64))

    def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str | bytes):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        items = list(texts)
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        todo: list[int] = []
        for i, t in enumerate(items):
            v = self.cache.get(t)
            if v is None:
                todo.append(i)
            else:
                out[i] = v
        self.hits += len(items) - len(todo)
        self.misses += len(todo)
        if todo:
            out[todo] = np.asarray(self.inner.embed([items[i] for i in todo]), dtype=np.float32)
        return out


def default_embedder_factory() -> Callable[[], EmbedderLike]:
    """A factory of fresh instances of Severance's default embedder.

    Each system gets its own instance, so no system benefits from another's warm query
    cache. Severance's bundled MiniLM keeps an LRU cache of short single texts (queries); the
    harness turns it off (``cache_size=0``) so that a question asked in one mode is not served
    from cache in the next.
    """
    from severance.embedders import load_embedder

    probe = load_embedder()
    try:
        from severance.embedders.minilm import MiniLM
    except ImportError:  # pragma: no cover - layout changed
        MiniLM = None  # type: ignore[assignment,misc]

    if MiniLM is not None and isinstance(probe, MiniLM):
        model_path = probe.model_path
        sha = probe.model_sha256

        def make() -> EmbedderLike:
            return MiniLM(model_path, expected_sha256=sha, cache_size=0)

        return make
    return load_embedder
