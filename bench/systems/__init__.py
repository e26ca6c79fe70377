"""The compared systems. Each is built lazily so a missing optional peer only skips itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.embedding import CachingEmbedder
from bench.systems.base import RetrievalSystem, SystemUnavailable

__all__ = ["DENSE_SYSTEMS", "SYSTEM_NAMES", "RetrievalSystem", "SystemUnavailable", "build"]

#: Every system, in report order.
SYSTEM_NAMES: tuple[str, ...] = ("severance", "bm25", "mem0", "chroma")
#: Systems that need the shared embedder.
DENSE_SYSTEMS: frozenset[str] = frozenset({"severance", "mem0", "chroma"})


def build(
    name: str,
    make_embedder: Callable[[], CachingEmbedder] | None,
    *,
    workdir: Path | None = None,
) -> RetrievalSystem:
    """Construct system ``name``; raises :class:`SystemUnavailable` if it cannot run here."""
    if name == "bm25":
        from bench.systems.bm25 import BM25System

        return BM25System()
    if make_embedder is None:
        raise SystemUnavailable(f"{name} needs an embedder")
    if name == "severance":
        from bench.systems.severance_store import SeveranceSystem

        return SeveranceSystem(make_embedder(), workdir=workdir)
    if name == "mem0":
        from bench.systems.mem0_peer import Mem0System

        return Mem0System(make_embedder(), workdir=workdir)
    if name == "chroma":
        from bench.systems.chroma_peer import ChromaSystem

        return ChromaSystem(make_embedder(), workdir=workdir)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEM_NAMES)}")
