"""mem0 (open-source ``Memory``), LLM-free (``add(..., infer=False)``), same embedder.

Set-up that keeps it offline (see RESEARCH.md):

* ``MEM0_TELEMETRY=False`` and ``MEM0_DIR=<temporary directory>`` before ``mem0`` is first
  imported (both are read at import time; telemetry also gates a remote "notices" fetch);
* a dummy ``OPENAI_API_KEY``: construction builds an OpenAI LLM client although
  ``infer=False`` never calls it;
* vector store: local Qdrant (``path=<temporary directory>``, ``on_disk``), one ``Memory``
  for the run and one ``user_id`` per conversation (retrieval) or one ``user_id`` holding
  every memory (speed), as mem0 is meant to be used;
* embedder: mem0 is constructed with its ``openai`` embedder config (no network at
  construction) and its ``embedding_model`` is then replaced by :class:`SharedMem0Embedding`,
  a subclass of mem0's ``EmbeddingBase`` over the shared model. Retrieval: turn vectors come
  from the shared cache, queries are embedded live. Speed: every vector comes from the
  precomputed lookup.

mem0 2.2's search is "hybrid" only when its optional pieces are present: BM25 needs
``fastembed`` (which downloads ``Qdrant/bm25`` from the model hub) and lemmas and entity
boosts need spaCy's ``en_core_web_sm`` (also downloaded at run time). Neither is installed
here, so mem0 ranks by dense cosine similarity alone. ``threshold=0.0`` is passed to
``search()`` so that it returns a full top-k list (its default 0.1 drops weak matches).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.embedding import EmbedderLike
from bench.locomo import Conversation
from bench.systems.base import PeerSystem, SystemUnavailable

if TYPE_CHECKING:
    from bench.speed_data import Synthetic

__all__ = ["SPEED_USER", "Mem0System", "import_mem0", "make_memory"]

#: The one ``user_id`` of the speed section.
SPEED_USER = "bench"


def import_mem0(mem0_dir: Path) -> Any:
    """``mem0``, imported with telemetry off and its side files in ``mem0_dir``."""
    os.environ["MEM0_TELEMETRY"] = "False"
    os.environ["MEM0_DIR"] = str(mem0_dir)
    os.environ.setdefault("OPENAI_API_KEY", "sk-dummy-not-used")
    try:
        import mem0
        from mem0.memory import main as mem0_main
        from mem0.memory import telemetry as mem0_telemetry
    except ImportError as exc:
        raise SystemUnavailable(f"mem0ai is not installed ({exc})") from exc
    if mem0_telemetry.MEM0_TELEMETRY or mem0_main.MEM0_TELEMETRY:
        raise SystemUnavailable(
            "mem0 was imported before MEM0_TELEMETRY=False was set; refusing to run with "
            "telemetry on"
        )
    return mem0


def make_memory(root: Path, embedder: EmbedderLike, *, collection: str = "bench") -> Any:
    """A ``mem0.Memory`` over local Qdrant in ``root`` answering from ``embedder`` (opens the
    same store again when ``root`` already holds one: the speed section's cold wake, the
    isolation section's reopen)."""
    mem0 = import_mem0(root / "mem0dir")
    from mem0.configs.base import MemoryConfig
    from mem0.embeddings.base import EmbeddingBase

    class SharedMem0Embedding(EmbeddingBase):
        """mem0's embedder interface over the shared model (list-of-float vectors)."""

        def __init__(self, inner: EmbedderLike) -> None:
            super().__init__(None)
            self.inner = inner
            self.config.embedding_dims = inner.dimension

        def embed(self, text: Any, memory_action: Any = None) -> list[float]:
            vec = self.inner.embed([str(text)])[0]
            return np.asarray(vec, dtype=np.float32).tolist()  # type: ignore[no-any-return]

        def embed_batch(self, texts: Any, memory_action: Any = "add") -> list[list[float]]:
            vecs = self.inner.embed([str(t) for t in texts])
            return np.asarray(vecs, dtype=np.float32).tolist()  # type: ignore[no-any-return]

    dims = embedder.dimension
    config = MemoryConfig(
        vector_store={
            "provider": "qdrant",
            "config": {
                "collection_name": collection,
                "path": str(root / "qdrant"),
                "embedding_model_dims": dims,
                "on_disk": True,
            },
        },
        embedder={"provider": "openai", "config": {"embedding_dims": dims}},
        history_db_path=str(root / "history.db"),
    )
    memory = mem0.Memory(config)
    memory.embedding_model = SharedMem0Embedding(embedder)
    return memory


class Mem0System(PeerSystem):
    name = "mem0"
    batch = 256  # speed: messages per add() call; with infer=False mem0 inserts them one by one

    def __init__(self, embedder: EmbedderLike, *, workdir: Path | None = None) -> None:
        super().__init__(workdir=workdir)
        try:
            self._memory: Any = make_memory(self.root, embedder)
        except BaseException:
            super().close()
            raise
        import mem0  # already imported, with telemetry off, by make_memory

        self._user: str | None = None
        self._version = getattr(mem0, "__version__", None)

    # -- retrieval: one user_id per conversation ---------------------------------------------

    @property
    def variants(self) -> tuple[str, ...]:
        return ("mem0",)

    def index(self, conv: Conversation) -> None:
        self._user = conv.sample_id
        for t in conv.turns:
            self._memory.add(
                [{"role": "user", "content": t.document}],
                user_id=conv.sample_id,
                metadata={"dia_id": t.dia_id, "speaker": t.speaker, "session": t.session},
                infer=False,
            )

    def search(self, variant: str, query: str, k: int) -> list[str]:
        res = self._memory.search(query, top_k=k, filters={"user_id": self._user}, threshold=0.0)
        return [str(r["metadata"]["dia_id"]) for r in res["results"]]

    def release(self) -> None:
        self._user = None

    def info(self) -> dict[str, Any]:
        return {
            "mem0ai": self._version,
            "add": "Memory.add([{role: user, content: turn}], user_id=<conversation>, "
            "metadata=..., infer=False), one call per turn",
            "vector_store": "qdrant local mode (path in a temporary directory), cosine",
            "layout": "one Memory for the run, one user_id per conversation (all conversations "
            "ingested so far share the store and are filtered by user_id)",
            "search": "search(q, top_k=k, filters={user_id}, threshold=0.0)",
            "hybrid_parts": "off: BM25 needs fastembed (downloads Qdrant/bm25), entity boosts "
            "need spaCy en_core_web_sm (downloaded at run time); ranking is dense only",
            "telemetry": "MEM0_TELEMETRY=False",
        }

    # -- speed: one user_id holding every memory ---------------------------------------------

    def open_scope(self) -> None:
        self._user = SPEED_USER

    def remember_batch(self, syn: Synthetic) -> None:
        for start in range(0, len(syn), self.batch):
            msgs = [{"role": "user", "content": t} for t in syn.texts[start : start + self.batch]]
            self._memory.add(msgs, user_id=SPEED_USER, infer=False)

    def remember_one(self, text: str, tag: str, occurred_at: float) -> None:
        self._memory.add(
            [{"role": "user", "content": text}],
            user_id=SPEED_USER,
            metadata={"tag": tag},
            infer=False,
        )

    def recall(self, query: str, k: int, *, dense: bool = False) -> list[str]:
        res = self._memory.search(query, top_k=k, filters={"user_id": SPEED_USER}, threshold=0.0)
        return [str(r["memory"]) for r in res["results"]]

    def persist(self) -> None:
        with contextlib.suppress(Exception):
            self._memory.close()
        self._memory = None

    def wake_config(self) -> dict[str, Any]:
        return {"system": self.name, "path": str(self.root)}

    def speed_info(self) -> dict[str, Any]:
        return {
            "mem0ai": self._version,
            "layout": "one Memory, local Qdrant (on_disk), one user_id holding every memory",
            "batched": f"Memory.add(<{self.batch} messages>, infer=False) per call "
            "(mem0 embeds and inserts each message separately)",
            "single": "Memory.add([message], infer=False)",
            "recall": "Memory.search(q, top_k=10, filters={user_id}, threshold=0.0)",
            "embedder": "EmbeddingBase subclass answering from the precomputed vectors",
        }

    def close(self) -> None:
        if self._memory is not None:
            with contextlib.suppress(Exception):  # best effort on the way out
                self._memory.close()
            self._memory = None
        super().close()
