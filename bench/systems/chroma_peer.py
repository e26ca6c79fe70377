"""Chroma, embedded (PersistentClient in a temporary directory), cosine space, same embedder.

Retrieval: one collection per conversation. Turn vectors come from the shared cache and are
passed to ``add()`` directly; queries go through a custom embedding function wrapping the same
model, so the query embedding is part of the measured search time. Speed: one collection
(:data:`SPEED_COLLECTION`, default HNSW parameters) holding every memory, vectors passed to
``add()``, query texts answered through the same embedding function over the precomputed
vectors.

Chroma rebuilds an embedding function from its config on every ``add()``/``query()``, so the
function only carries a key into a module-level registry of loaded models (never a model of
its own); the key is persisted in the collection's config, so a cold open registers the same
key (:func:`open_collection`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.embedding import EmbedderLike
from bench.locomo import Conversation
from bench.systems.base import PeerSystem, SystemUnavailable

if TYPE_CHECKING:
    from bench.speed_data import Synthetic

__all__ = ["SPEED_COLLECTION", "ChromaSystem", "open_client", "open_collection"]

SPEED_COLLECTION = "speed"

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


def open_client(root: Path) -> Any:
    """The persistent client over ``root/chroma``, telemetry off."""
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError as exc:
        raise SystemUnavailable(f"chromadb is not installed ({exc})") from exc
    return chromadb.PersistentClient(
        path=str(root / "chroma"), settings=Settings(anonymized_telemetry=False)
    )


def open_collection(
    client: Any, name: str, embedder: EmbedderLike, *, create: bool, key: str | None = None
) -> tuple[Any, str]:
    """Collection ``name`` (created, cosine space, or opened) and the key its embedding
    function answers under: ``key`` when given (a cold open of a persisted collection), else a
    new one."""
    key = key or uuid.uuid4().hex
    _MODELS[key] = embedder
    ef = _embedding_function_class()(key)
    if create:
        col = client.create_collection(
            name=name, embedding_function=ef, metadata={"hnsw:space": "cosine"}
        )
    else:
        col = client.get_collection(name=name, embedding_function=ef)
    return col, key


class ChromaSystem(PeerSystem):
    name = "chroma"
    batch = 5000  # speed: memories per add() call (capped by the client's maximum)

    def __init__(self, embedder: EmbedderLike, *, workdir: Path | None = None) -> None:
        try:
            import chromadb
        except ImportError as exc:
            raise SystemUnavailable(f"chromadb is not installed ({exc})") from exc
        super().__init__(workdir=workdir)
        self._embedder = embedder
        self._key = uuid.uuid4().hex
        _MODELS[self._key] = embedder
        self._client: Any = open_client(self.root)
        self._ef = _embedding_function_class()(self._key)
        self._collection: Any = None
        self._version = chromadb.__version__
        self._n = 0

    # -- retrieval: one collection per conversation ------------------------------------------

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

    def info(self) -> dict[str, Any]:
        return {
            "chromadb": self._version,
            "client": "PersistentClient (embedded, temporary directory), telemetry off",
            "space": "cosine (HNSW, default parameters)",
            "layout": "one collection per conversation",
            "ingest": "batched add() with precomputed turn vectors",
            "query": "query_texts via a custom EmbeddingFunction over the shared model",
        }

    # -- speed: one collection holding every memory ------------------------------------------

    def open_scope(self) -> None:
        self._collection, _key = open_collection(
            self._client, SPEED_COLLECTION, self._embedder, create=True, key=self._key
        )
        self.batch = max(1, min(self._client.get_max_batch_size(), self.batch))

    def _add(self, texts: Sequence[str], tags: Sequence[str], when: Sequence[float]) -> None:
        ids = [str(self._n + i) for i in range(len(texts))]
        self._n += len(texts)
        self._collection.add(
            ids=ids,
            documents=list(texts),
            embeddings=self._embedder.embed(texts),
            metadatas=[
                {"tag": g, "occurred_at": float(w)} for g, w in zip(tags, when, strict=True)
            ],
        )

    def remember_batch(self, syn: Synthetic) -> None:
        for start in range(0, len(syn), self.batch):
            end = start + self.batch
            self._add(syn.texts[start:end], syn.tags[start:end], syn.occurred_at[start:end])

    def remember_one(self, text: str, tag: str, occurred_at: float) -> None:
        self._add([text], [tag], [occurred_at])

    def recall(self, query: str, k: int, *, dense: bool = False) -> list[str]:
        res = self._collection.query(query_texts=[query], n_results=k, include=["documents"])
        return [str(d) for d in res["documents"][0]]

    def persist(self) -> None:
        # PersistentClient writes through; dropping the handles is all a cold open needs.
        _MODELS.pop(self._key, None)
        self._collection = None
        self._client = None

    def wake_config(self) -> dict[str, Any]:
        return {"system": self.name, "path": str(self.root), "ef_key": self._key}

    def speed_info(self) -> dict[str, Any]:
        return {
            "chromadb": self._version,
            "layout": "PersistentClient, one collection (hnsw:space cosine, default HNSW "
            "parameters) holding every memory",
            "batched": f"collection.add(ids, documents, embeddings, metadatas), {self.batch} "
            "per call",
            "single": "collection.add() with one memory",
            "recall": "collection.query(query_texts=[q], n_results=10, include=[documents]) "
            "through an EmbeddingFunction answering from the precomputed vectors",
        }

    def close(self) -> None:
        _MODELS.pop(self._key, None)
        self._collection = None
        self._client = None
        super().close()
