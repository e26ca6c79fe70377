"""mem0 (open-source ``Memory``), LLM-free (``add(..., infer=False)``), same embedder.

Set-up that keeps it offline (see RESEARCH.md):

* ``MEM0_TELEMETRY=False`` and ``MEM0_DIR=<temporary directory>`` before ``mem0`` is first
  imported (both are read at import time; telemetry also gates a remote "notices" fetch);
* a dummy ``OPENAI_API_KEY``: construction builds an OpenAI LLM client although
  ``infer=False`` never calls it;
* vector store: local Qdrant (``path=<temporary directory>``), one ``Memory`` for the run and
  one ``user_id`` per conversation, as mem0 is meant to be used;
* embedder: mem0 is constructed with its ``openai`` embedder config (no network at
  construction) and its ``embedding_model`` is then replaced by :class:`SharedMem0Embedding`,
  a subclass of mem0's ``EmbeddingBase`` over the shared model. Turn vectors come from the
  shared cache; queries are embedded live.

mem0 2.2's search is "hybrid" only when its optional pieces are present: BM25 needs
``fastembed`` (which downloads ``Qdrant/bm25`` from the model hub) and lemmas and entity
boosts need spaCy's ``en_core_web_sm`` (also downloaded at run time). Neither is installed
here, so mem0 ranks by dense cosine similarity alone. ``threshold=0.0`` is passed to
``search()`` so that it returns a full top-k list (its default 0.1 drops weak matches).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.embedding import CachingEmbedder
from bench.locomo import Conversation
from bench.systems.base import RetrievalSystem, SystemUnavailable

__all__ = ["Mem0System"]


def _import_mem0(mem0_dir: Path) -> Any:
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


class Mem0System(RetrievalSystem):
    name = "mem0"

    def __init__(self, embedder: CachingEmbedder, *, workdir: Path | None = None) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-mem0-", dir=workdir))
        mem0 = _import_mem0(self._tmp / "mem0dir")
        from mem0.configs.base import MemoryConfig
        from mem0.embeddings.base import EmbeddingBase

        class SharedMem0Embedding(EmbeddingBase):
            """mem0's embedder interface over the shared model (list-of-float vectors)."""

            def __init__(self, inner: CachingEmbedder) -> None:
                super().__init__(None)
                self.inner = inner
                self.config.embedding_dims = inner.dimension

            def embed(self, text: Any, memory_action: Any = None) -> list[float]:
                vec = self.inner.embed([str(text)])[0]
                return [float(x) for x in vec]

            def embed_batch(self, texts: Any, memory_action: Any = "add") -> list[list[float]]:
                return [[float(x) for x in v] for v in self.inner.embed([str(t) for t in texts])]

        dims = embedder.dimension
        config = MemoryConfig(
            vector_store={
                "provider": "qdrant",
                "config": {
                    "collection_name": "locomo",
                    "path": str(self._tmp / "qdrant"),
                    "embedding_model_dims": dims,
                    "on_disk": True,
                },
            },
            embedder={"provider": "openai", "config": {"embedding_dims": dims}},
            history_db_path=str(self._tmp / "history.db"),
        )
        self._memory = mem0.Memory(config)
        self._memory.embedding_model = SharedMem0Embedding(embedder)
        self._user: str | None = None
        self._version = getattr(mem0, "__version__", None)

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

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort on the way out
            self._memory.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

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
