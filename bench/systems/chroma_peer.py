"""Chroma, embedded (PersistentClient in a temporary directory), cosine space, same embedder.

One collection per conversation. Turn vectors come from the shared cache and are passed to
``add()`` directly; queries go through a custom embedding function wrapping the same model,
so the query embedding is part of the measured search time. Chroma rebuilds an embedding
function from its config on every ``add()``/``query()``, so the function only carries a key
into a module-level registry of loaded models (never a model of its own).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.embedding import CachingEmbedder, EmbedderLike
from bench.locomo import Conversation
from bench.systems.base import RetrievalSystem, SystemUnavailable

__all__ = ["ChromaSystem"]

# key -> embedder; chroma rebuilds the embedding function from {"key": ...} on every call.
_MODELS: dict[str, EmbedderLike] = {}
_EF_CLASS: Any = None


def _embedding_function_class() -> Any:
    """Define and register the embedding function class once (chromadb imported lazily)."""
    global _EF_CLASS
    if _EF_CLASS is not None:
        return _EF_CLASS
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function

    class SharedEmbeddingFunction(EmbeddingFunction[Documents]):
        def __init__(self, key: str) -> None:
            self.key = key

        def __call__(self, input: Documents) -> Embeddings:
            vecs = _MODELS[self.key].embed(list(input))
            return [np.asarray(v, dtype=np.float32) for v in vecs]

        @staticmethod
        def name() -> str:
            return "severance-bench-shared"

        def default_space(self) -> Any:
            return "cosine"

        def supported_spaces(self) -> Any:
            return ["cosine"]

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> SharedEmbeddingFunction:
            return SharedEmbeddingFunction(str(config["key"]))

        def get_config(self) -> dict[str, Any]:
            return {"key": self.key}

    register_embedding_function(SharedEmbeddingFunction)
    _EF_CLASS = SharedEmbeddingFunction
    return _EF_CLASS


class ChromaSystem(RetrievalSystem):
    name = "chroma"

    def __init__(self, embedder: CachingEmbedder, *, workdir: Path | None = None) -> None:
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as exc:
            raise SystemUnavailable(f"chromadb is not installed ({exc})") from exc
        self._embedder = embedder
        self._key = uuid.uuid4().hex
        _MODELS[self._key] = embedder
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-chroma-", dir=workdir))
        self._client: Any = chromadb.PersistentClient(
            path=str(self._tmp / "chroma"),
            settings=Settings(anonymized_telemetry=False, allow_reset=True),
        )
        self._ef = _embedding_function_class()(self._key)
        self._collection: Any = None
        self._version = chromadb.__version__

    @property
    def variants(self) -> tuple[str, ...]:
        return ("chroma",)

    def index(self, conv: Conversation) -> None:
        col = self._client.create_collection(
            name=f"locomo-{conv.sample_id}",
            embedding_function=self._ef,
            metadata={"hnsw:space": "cosine"},
        )
        docs = [t.document for t in conv.turns]
        vectors = self._embedder.embed(docs)  # served from the shared turn cache
        batch = max(1, min(self._client.get_max_batch_size(), 1000))
        for start in range(0, len(docs), batch):
            end = start + batch
            col.add(
                ids=[t.dia_id for t in conv.turns[start:end]],
                documents=docs[start:end],
                embeddings=vectors[start:end],
                metadatas=[
                    {"dia_id": t.dia_id, "speaker": t.speaker, "session": t.session}
                    for t in conv.turns[start:end]
                ],
            )
        self._collection = col

    def search(self, variant: str, query: str, k: int) -> list[str]:
        res = self._collection.query(query_texts=[query], n_results=k, include=[])
        return [str(i) for i in res["ids"][0]]

    def release(self) -> None:
        self._collection = None

    def close(self) -> None:
        _MODELS.pop(self._key, None)
        self._client = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        return {
            "chromadb": self._version,
            "client": "PersistentClient (embedded, temporary directory), telemetry off",
            "space": "cosine (HNSW, default parameters)",
            "layout": "one collection per conversation",
            "ingest": "batched add() with precomputed turn vectors",
            "query": "query_texts via a custom EmbeddingFunction over the shared model",
        }
