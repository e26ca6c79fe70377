"""The compared systems: one class per peer, serving every section it takes part in.

Each is built lazily, by name, so a missing optional peer only skips itself (its library is
imported by its constructor, which raises :class:`SystemUnavailable`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.embedding import CachingEmbedder, EmbedderLike
from bench.systems.base import PeerSystem, RetrievalSystem, SpeedSystem, System, SystemUnavailable

__all__ = [
    "DENSE_SYSTEMS",
    "SPEED_SYSTEMS",
    "SYSTEM_NAMES",
    "PeerSystem",
    "RetrievalSystem",
    "SpeedFactory",
    "SpeedSystem",
    "System",
    "SystemUnavailable",
    "build",
]

#: Every system of the retrieval sections, in report order.
SYSTEM_NAMES: tuple[str, ...] = ("severance", "bm25", "mem0", "chroma")
#: Systems that need the shared embedder.
DENSE_SYSTEMS: frozenset[str] = frozenset({"severance", "mem0", "chroma"})

#: Builds a speed system over the precomputed-vector embedder, in a directory under workdir.
SpeedFactory = Callable[[EmbedderLike, Path], SpeedSystem]


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
    if name not in DENSE_SYSTEMS:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEM_NAMES)}")
    if make_embedder is None:
        raise SystemUnavailable(f"{name} needs an embedder")
    return _dense(name, make_embedder(), workdir)


def _dense(name: str, embedder: EmbedderLike, workdir: Path | None) -> PeerSystem:
    if name == "severance":
        from bench.systems.severance_store import SeveranceSystem

        return SeveranceSystem(embedder, workdir=workdir)
    if name == "mem0":
        from bench.systems.mem0_peer import Mem0System

        return Mem0System(embedder, workdir=workdir)
    from bench.systems.chroma_peer import ChromaSystem

    return ChromaSystem(embedder, workdir=workdir)


def _speed(name: str) -> SpeedFactory:
    def make(embedder: EmbedderLike, workdir: Path) -> SpeedSystem:
        return _dense(name, embedder, workdir)

    return make


#: The speed section's systems (the PostgreSQL section adds its own rows to a copy).
SPEED_SYSTEMS: dict[str, SpeedFactory] = {n: _speed(n) for n in ("severance", "mem0", "chroma")}
