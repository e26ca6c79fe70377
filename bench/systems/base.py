"""The interfaces every compared system implements: one class per peer, two faces.

Each peer (Severance, Chroma, mem0, BM25) is ONE class in this package, built on the shared
embedder in a temporary directory of its own (removed by :meth:`System.close`). It offers
the face of each section it takes part in:

* :class:`RetrievalSystem` (the ``locomo`` and ``retrieval`` sections) indexes one
  conversation at a time (one persona / collection / user per conversation), answers ranked
  searches over it, then releases it. One system may expose several *variants* that share
  one index (Severance's hybrid, dense and keyword modes share one store), each reported as
  its own row.
* :class:`SpeedSystem` (the ``speed`` and ``postgres`` sections) holds every memory in ONE
  large persona / collection / user, writes through its batched and one-call paths, answers
  query texts, and persists for a cold wake in a fresh process (:mod:`bench.speed_wake`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.locomo import Conversation

if TYPE_CHECKING:
    from bench.speed_data import Synthetic

__all__ = [
    "PeerSystem",
    "RetrievalSystem",
    "SpeedSystem",
    "System",
    "SystemUnavailable",
    "dir_bytes",
]


class SystemUnavailable(RuntimeError):
    """The system cannot run here (a missing optional dependency); the run records why."""


def dir_bytes(path: Path) -> int:
    """Bytes on disk under ``path`` (allocated blocks, so sparse files count what they use)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(root, name))
                total += min(st.st_size, st.st_blocks * 512) if st.st_blocks else st.st_size
    return total


class System:
    """What every peer shares: a name and a temporary directory of its own."""

    #: Short id used on the command line (``--systems``, ``--speed-systems``).
    name: str = ""

    def __init__(self, *, workdir: Path | None = None) -> None:
        #: Everything this system writes lives below here (created under ``workdir``).
        self.root = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-", dir=workdir))

    def close(self) -> None:
        """Done with everything: release handles, remove the temporary directory."""
        shutil.rmtree(self.root, ignore_errors=True)


class RetrievalSystem(System, ABC):
    """The retrieval face: one conversation at a time, ranked ``dia_id`` lists."""

    @property
    @abstractmethod
    def variants(self) -> tuple[str, ...]:
        """Row labels of the results this system produces, e.g. ``("severance-hybrid",)``."""

    @abstractmethod
    def index(self, conv: Conversation) -> None:
        """Ingest every turn of ``conv`` (timed by the caller as this system's ingest time)."""

    @abstractmethod
    def search(self, variant: str, query: str, k: int) -> list[str]:
        """The ``dia_id`` of the top ``k`` turns of the indexed conversation, best first."""

    def release(self) -> None:
        """Done with the current conversation (close sessions, free memory)."""

    def info(self) -> dict[str, Any]:
        """Configuration worth recording next to the retrieval results (versions, parameters)."""
        return {}


class SpeedSystem(System, ABC):
    """The speed face: one large persona fed precomputed vectors, then a cold wake.

    The embedder given to the constructor is a :class:`~bench.speed_data.LookupEmbedder`, so
    no timing includes the model; a query *text* is turned into its precomputed vector by the
    same lookup, the way the system's users call it.
    """

    #: Texts per call of the batched path.
    batch: int = 1000

    @abstractmethod
    def open_scope(self) -> None:
        """Create the one persona / collection / user every memory goes to (not timed)."""

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

    @abstractmethod
    def speed_info(self) -> dict[str, Any]:
        """How the system was set up for the speed section (recorded with its figures)."""

    def disk_bytes(self) -> int:
        """Bytes the store takes on disk."""
        return dir_bytes(self.root)


class PeerSystem(RetrievalSystem, SpeedSystem, ABC):
    """A system with both faces (Severance, Chroma, mem0): one store class for every section."""
