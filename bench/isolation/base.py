"""What every system adapter of the isolation benchmark provides.

An adapter holds one system with three scopes planted (:data:`~bench.isolation.plants.SCOPES`)
and answers each public operation *as the holder of one scope's handle* would call it. Every
answer is a :class:`Call`: the exact call, as a reader would type it to reproduce it, and its
:class:`~bench.isolation.tally.Outcome`. An operation the system does not have returns
``None``; a vector the system's design has no scope for is a string saying why (n/a).
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.isolation.plants import Plant
from bench.isolation.tally import Outcome, Tally

__all__ = ["Adapter", "Call", "PeerUnavailable", "capture"]

#: The k asked of every search: more than everything planted, or the system's maximum.
BIG_K = 1000


class PeerUnavailable(Exception):
    """The system cannot run here (package or runtime missing); the row is skipped."""


@dataclass(frozen=True)
class Call:
    call: str
    outcome: Outcome


def capture(call: str, fn: Callable[[], Any], render: Callable[[Any], str] = repr) -> Call:
    """Run ``fn`` and keep what it answered, or the error it raised (type and message)."""
    try:
        value = fn()
    except Exception as exc:  # any error is an answer: its type and text are the observation
        return Call(call, Outcome(type(exc).__name__, str(exc)))
    return Call(call, Outcome("ok", render(value)))


class Adapter(ABC):
    """One system, three scopes. Subclasses say how each operation is called."""

    #: Row label and what the scope handle is, as the system's docs name it.
    label: str = ""
    handle: str = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ids: dict[str, str] = {}  # plant key -> the system's id of that memory

    # -- set-up and files --------------------------------------------------------------------
    @abstractmethod
    def plant(self, plants: Mapping[str, Sequence[Plant]]) -> None:
        """Write every plant into its scope, through that scope's own handle; fill ``ids``."""

    @abstractmethod
    def files(self) -> list[Path]:
        """Every directory or file the system writes (scanned byte by byte)."""

    @abstractmethod
    def close(self) -> None:
        """Close everything (the 'after close' scans follow)."""

    @abstractmethod
    def reopen(self) -> None:
        """Open the same data again after :meth:`close`."""

    @abstractmethod
    def erase(self, scope: str, plants: Sequence[Plant]) -> list[str]:
        """Delete the scope's memories through its own handle, then the scope itself where
        the system has such an operation; return the calls made."""

    def shutdown(self) -> None:
        """Release everything for good (temporary servers, processes)."""
        self.close()

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """How the system was configured (with the doc followed) and its version."""

    # -- the operations, as the holder of ``scope``'s handle ----------------------------------
    @abstractmethod
    def search(self, scope: str, query: str) -> list[Call]:
        """Every search the system offers, for ``query``, with k large."""

    def filtered_search(self, scope: str, victim: Plant) -> list[Call]:
        """Searches filtered by the victim's tag or metadata value, where filters exist."""
        return []

    def get(self, scope: str, ident: str) -> Call | None:
        return None

    def update(self, scope: str, ident: str, text: str) -> Call | None:
        return None

    def delete(self, scope: str, ident: str) -> Call | None:
        return None

    def history(self, scope: str, ident: str) -> Call | None:
        return None

    @abstractmethod
    def listing(self, scope: str) -> list[Call]:
        """Every listing the system offers (k / limit large)."""

    def counts(self, scope: str) -> list[tuple[str, int]]:
        """Every count or pagination total: (call, number reported)."""
        return []

    @abstractmethod
    def absent_id(self) -> str:
        """An id of the system's own format that exists in no scope."""

    def forgotten(self) -> list[Call] | str:
        """The reads with the scope argument omitted or empty, or why there is none (n/a)."""
        return "no call takes a scope argument"

    def servers(self, scope: str, victims: Sequence[Plant], tally: Tally) -> str | None:
        """Probe the system's servers with ``scope``'s credential, recording into ``tally``
        (vector ``servers``); return why not (n/a) when the system has no server."""
        return "the system has no server"

    @abstractmethod
    def victim_view(self, scope: str, plant: Plant) -> str | None:
        """What the plant's own scope now reads for it (its text), or None if it is gone."""

    def timed_get(self, scope: str, ident: str) -> Callable[[], object] | None:
        """A zero-argument call timing an id lookup, for the timing oracle."""
        return None

    def timed_label(self) -> str:
        """The call :meth:`timed_get` makes, for the report."""
        return "get(<id>)"


def clock(fn: Callable[[], object]) -> float:
    """Seconds one call takes (errors are part of the call)."""
    start = time.perf_counter()
    with contextlib.suppress(Exception):  # the timing oracle times failures as well
        fn()
    return time.perf_counter() - start
