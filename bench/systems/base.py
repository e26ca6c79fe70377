"""The interface every compared system implements.

A system indexes one conversation at a time (one persona / collection / user per
conversation), answers ranked searches over it, then releases it. One system may expose
several *variants* that share one index (Severance's hybrid, dense and keyword modes share
one store), each reported as its own row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from bench.locomo import Conversation

__all__ = ["RetrievalSystem", "SystemUnavailable"]


class SystemUnavailable(RuntimeError):
    """The system cannot run here (a missing optional dependency); the run records why."""


class RetrievalSystem(ABC):
    #: Short id used on the command line (``--systems``).
    name: str = ""

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

    def release(self) -> None:  # noqa: B027 - optional hook
        """Done with the current conversation (close sessions, free memory)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Done with everything (remove temporary directories)."""

    def info(self) -> dict[str, Any]:
        """Configuration worth recording next to the results (versions, parameters)."""
        return {}
