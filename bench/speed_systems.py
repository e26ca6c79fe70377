"""The systems of the speed section, behind one small interface, all fed precomputed vectors.

Each system indexes one large persona (Severance: one persona; mem0: one ``user_id``; Chroma:
one collection), gets every memory's vector from a :class:`~bench.speed_data.LookupEmbedder`
(so no timing below includes the model), and answers a query *text* the way its users call
it — the text is turned into the precomputed query vector by the same lookup. Waking is
measured in a fresh process (:mod:`bench.speed_wake`) from the JSON config that
:meth:`SpeedSystem.wake_config` returns.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.speed_data import LookupEmbedder, Synthetic

__all__ = ["SYSTEMS", "ChromaSpeed", "Mem0Speed", "SeveranceSpeed", "SpeedSystem", "dir_bytes"]

PERSONA = "bench"
MEM0_USER = "bench"
COLLECTION = "speed"


def dir_bytes(path: Path) -> int:
    """Bytes on disk under ``path`` (allocated blocks, so sparse files count what they use)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(root, name))
                total += min(st.st_size, st.st_blocks * 512) if st.st_blocks else st.st_size
    return total


class SpeedSystem(ABC):
    name: str = ""
    #: Texts per call of the batched path.
    batch: int = 1000

    def __init__(self, workdir: Path, lookup: LookupEmbedder) -> None:
        self.workdir = workdir
        self.lookup = lookup
        workdir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def remember_batch(self, syn: Synthetic) -> None:
        """Store every memory of ``syn`` through the system's batched write path."""

    @abstractmethod
    def remember_one(self, text: str, tag: str, occurred_at: float) -> None:
        """Store one memory with one call."""

    @abstractmethod
    def recall(self, query: str, k: int, *, dense: bool = False) -> list[str]:
        """Texts of the top ``k`` memories for ``query``, best first."""

    @abstractmethod
    def persist(self) -> None:
        """Make the on-disk state complete for a cold open (snapshot, flush), then close."""

    @abstractmethod
    def wake_config(self) -> dict[str, Any]:
        """What :mod:`bench.speed_wake` needs to open this store in a fresh process."""

    def disk_bytes(self) -> int:
        return dir_bytes(self.workdir)

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (the work directory is removed by the caller)."""


# -- Severance ------------------------------------------------------------------------------


class SeveranceSpeed(SpeedSystem):
    """One store, one persona, one session; ``remember_many`` / ``remember`` / ``recall``."""

    name = "severance"
    batch = 10_000  # drafts per remember_many call (it commits every 256 internally)

    def __init__(self, workdir: Path, lookup: LookupEmbedder) -> None:
        super().__init__(workdir, lookup)
        import severance

        self._sev = severance
        self._key = os.urandom(32)
        self.path = workdir / "store"
        self.store = severance.Store.init(self.path, key=self._key, embedder=lookup)
        self.store.add_persona(PERSONA)
        self.store.add_floor(PERSONA, persona=PERSONA)
        self.session = self.store.enter(floor=PERSONA)

    def _drafts(self, syn: Synthetic) -> list[Any]:
        draft = self._sev.MemoryDraft
        return [
            draft(
                text=t,
                kind="episode",
                tags=(tag,),
                occurred_at=datetime.fromtimestamp(float(ts), UTC),
            )
            for t, tag, ts in zip(syn.texts, syn.tags, syn.occurred_at, strict=True)
        ]

    def remember_batch(self, syn: Synthetic) -> None:
        for start in range(0, len(syn), self.batch):
            self.session.remember_many(self._drafts(syn.slice(start, start + self.batch)))

    def remember_one(self, text: str, tag: str, occurred_at: float) -> None:
        self.session.remember(
            text,
            kind="episode",
            tags=(tag,),
            occurred_at=datetime.fromtimestamp(occurred_at, UTC),
        )

    def recall(self, query: str, k: int, *, dense: bool = False) -> list[str]:
        hits = self.session.recall(query, k=k, mode="dense" if dense else "hybrid")
        return [h.memory.text for h in hits]

    def recall_filtered(self, query: str, k: int, tag: str) -> list[str]:
        hits = self.session.recall(query, k=k, tags=[tag])
        return [h.memory.text for h in hits]

    def persist(self) -> None:
        self.session.checkpoint()
        self.session.close()
        self.store.close()

    def wake_config(self) -> dict[str, Any]:
        return {
            "system": self.name,
            "path": str(self.path),
            "key": base64.b64encode(self._key).decode(),
            "floor": PERSONA,
        }

    def info(self) -> dict[str, Any]:
        from severance.search import index as sindex

        return {
            "severance": getattr(self._sev, "__version__", None),
            "layout": "one store (SQLite), one persona holding every memory, one session",
            "batched": f"Session.remember_many, {self.batch} drafts per call "
            "(committed in transactions of 256)",
            "single": "Session.remember, one call (one transaction, fsync) per memory",
            "recall": "Session.recall(q, k=10): hybrid (default) and mode='dense'; "
            "includes decrypting the returned memories",
            "hnsw_threshold": getattr(sindex, "HNSW_THRESHOLD", None),
            "snapshot": "Session.checkpoint() before the cold wake",
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store.close()


# -- mem0 -----------------------------------------------------------------------------------


class Mem0Speed(SpeedSystem):
    """mem0 ``Memory`` (``infer=False``) over local Qdrant, one ``user_id``."""

    name = "mem0"
    batch = 256  # messages per add() call; with infer=False mem0 inserts them one by one

    def __init__(self, workdir: Path, lookup: LookupEmbedder) -> None:
        super().__init__(workdir, lookup)
        self._memory = make_mem0(workdir, lookup)

    def remember_batch(self, syn: Synthetic) -> None:
        for start in range(0, len(syn), self.batch):
            msgs = [{"role": "user", "content": t} for t in syn.texts[start : start + self.batch]]
            self._memory.add(msgs, user_id=MEM0_USER, infer=False)

    def remember_one(self, text: str, tag: str, occurred_at: float) -> None:
        self._memory.add(
            [{"role": "user", "content": text}],
            user_id=MEM0_USER,
            metadata={"tag": tag},
            infer=False,
        )

    def recall(self, query: str, k: int, *, dense: bool = False) -> list[str]:
        res = self._memory.search(query, top_k=k, filters={"user_id": MEM0_USER}, threshold=0.0)
        return [str(r["memory"]) for r in res["results"]]

    def persist(self) -> None:
        with contextlib.suppress(Exception):
            self._memory.close()
        self._memory = None

    def wake_config(self) -> dict[str, Any]:
        return {"system": self.name, "path": str(self.workdir)}

    def info(self) -> dict[str, Any]:
        import mem0

        return {
            "mem0ai": getattr(mem0, "__version__", None),
            "layout": "one Memory, local Qdrant (on_disk), one user_id holding every memory",
            "batched": f"Memory.add(<{self.batch} messages>, infer=False) per call "
            "(mem0 embeds and inserts each message separately)",
            "single": "Memory.add([message], infer=False)",
            "recall": "Memory.search(q, top_k=10, filters={user_id}, threshold=0.0)",
            "embedder": "EmbeddingBase subclass answering from the precomputed vectors",
        }

    def close(self) -> None:
        if self._memory is not None:
            with contextlib.suppress(Exception):
                self._memory.close()


def make_mem0(workdir: Path, lookup: LookupEmbedder) -> Any:
    from bench.systems.mem0_peer import _import_mem0

    mem0 = _import_mem0(workdir / "mem0dir")
    from mem0.configs.base import MemoryConfig
    from mem0.embeddings.base import EmbeddingBase

    class LookupMem0Embedding(EmbeddingBase):
        def __init__(self, inner: LookupEmbedder) -> None:
            super().__init__(None)
            self.inner = inner
            self.config.embedding_dims = inner.dimension

        def embed(self, text: Any, memory_action: Any = None) -> list[float]:
            return self.inner.vector(str(text)).tolist()  # type: ignore[no-any-return]

        def embed_batch(self, texts: Any, memory_action: Any = "add") -> list[list[float]]:
            return self.inner.embed([str(t) for t in texts]).tolist()  # type: ignore[no-any-return]

    dims = lookup.dimension
    config = MemoryConfig(
        vector_store={
            "provider": "qdrant",
            "config": {
                "collection_name": COLLECTION,
                "path": str(workdir / "qdrant"),
                "embedding_model_dims": dims,
                "on_disk": True,
            },
        },
        embedder={"provider": "openai", "config": {"embedding_dims": dims}},
        history_db_path=str(workdir / "history.db"),
    )
    memory = mem0.Memory(config)
    memory.embedding_model = LookupMem0Embedding(lookup)
    return memory


# -- Chroma ---------------------------------------------------------------------------------


class ChromaSpeed(SpeedSystem):
    """Chroma ``PersistentClient``, one cosine collection, vectors passed to ``add()``."""

    name = "chroma"
    batch = 5000

    def __init__(self, workdir: Path, lookup: LookupEmbedder) -> None:
        super().__init__(workdir, lookup)
        self._client, self._col, self._key = open_chroma(workdir, lookup, create=True)
        self._n = 0
        self.batch = max(1, min(self._client.get_max_batch_size(), self.batch))

    def _add(self, texts: Sequence[str], tags: Sequence[str], when: Sequence[float]) -> None:
        ids = [str(self._n + i) for i in range(len(texts))]
        self._n += len(texts)
        self._col.add(
            ids=ids,
            documents=list(texts),
            embeddings=self.lookup.embed(texts),
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
        res = self._col.query(query_texts=[query], n_results=k, include=["documents"])
        return [str(d) for d in res["documents"][0]]

    def persist(self) -> None:
        from bench.systems.chroma_peer import _MODELS

        _MODELS.pop(self._key, None)
        self._col = None
        self._client = None

    def wake_config(self) -> dict[str, Any]:
        return {"system": self.name, "path": str(self.workdir), "ef_key": self._key}

    def info(self) -> dict[str, Any]:
        import chromadb

        return {
            "chromadb": chromadb.__version__,
            "layout": "PersistentClient, one collection (hnsw:space cosine, default HNSW "
            "parameters) holding every memory",
            "batched": f"collection.add(ids, documents, embeddings, metadatas), {self.batch} "
            "per call",
            "single": "collection.add() with one memory",
            "recall": "collection.query(query_texts=[q], n_results=10, include=[documents]) "
            "through an EmbeddingFunction answering from the precomputed vectors",
        }


def open_chroma(
    workdir: Path, lookup: LookupEmbedder, *, create: bool, key: str | None = None
) -> tuple[Any, Any, str]:
    """Client and collection; the embedding function is registered under ``key``, which is
    persisted in the collection's config, so a cold open must register the same key."""
    import chromadb
    from chromadb.config import Settings

    from bench.systems.chroma_peer import _MODELS, _embedding_function_class

    key = key or uuid.uuid4().hex
    _MODELS[key] = lookup
    client = chromadb.PersistentClient(
        path=str(workdir / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    ef = _embedding_function_class()(key)
    if create:
        col = client.create_collection(
            name=COLLECTION, embedding_function=ef, metadata={"hnsw:space": "cosine"}
        )
    else:
        col = client.get_collection(name=COLLECTION, embedding_function=ef)
    return client, col, key


SYSTEMS: dict[str, type[SpeedSystem]] = {
    "severance": SeveranceSpeed,
    "mem0": Mem0Speed,
    "chroma": ChromaSpeed,
}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
