"""Severance itself: one store, one persona and one floor per conversation.

The store lives in a temporary directory and its key file under a temporary
``$XDG_CONFIG_HOME`` (restored on close), so a run never touches the user's keys. Turns are
ingested with ``Session.remember_many`` as ``episode`` memories; the three search modes
(``hybrid``, ``dense``, ``keyword``) query the same store and are reported as three rows
sharing one ingest time.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.embedding import CachingEmbedder
from bench.locomo import Conversation
from bench.systems.base import RetrievalSystem, SystemUnavailable

__all__ = ["MODES", "SeveranceSystem"]

MODES: tuple[str, ...] = ("hybrid", "dense", "keyword")


def persona_name(sample_id: str) -> str:
    """A valid persona name (``[a-z0-9][a-z0-9_-]*``) for a conversation id."""
    name = re.sub(r"[^a-z0-9_-]+", "-", sample_id.lower()).strip("-_")
    return name or "conv"


class SeveranceSystem(RetrievalSystem):
    name = "severance"

    def __init__(
        self,
        embedder: CachingEmbedder | None,
        *,
        modes: tuple[str, ...] = MODES,
        workdir: Path | None = None,
    ) -> None:
        try:
            import severance
        except ImportError as exc:
            raise SystemUnavailable(f"severance is not importable ({exc})") from exc
        self._sev = severance
        self.modes = modes
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-severance-", dir=workdir))
        self._old_xdg = os.environ.get("XDG_CONFIG_HOME")
        os.environ["XDG_CONFIG_HOME"] = str(self._tmp / "config")
        kwargs: dict[str, Any] = {}
        init_params = inspect.signature(severance.Store.init).parameters
        self.embedder_injected = embedder is not None and "embedder" in init_params
        if self.embedder_injected:
            kwargs["embedder"] = embedder
        self._store = severance.Store.init(self._tmp / "store", **kwargs)
        self._ctx: Any = None
        self._session: Any = None

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(f"severance-{m}" for m in self.modes)

    def index(self, conv: Conversation) -> None:
        persona = persona_name(conv.sample_id)
        floor = f"f-{persona}"
        self._store.add_persona(persona)
        self._store.add_floor(floor, persona=persona)
        self._ctx = self._store.enter(floor=floor)
        self._session = self._ctx.__enter__()
        drafts = [
            self._sev.MemoryDraft(
                text=t.document,
                kind="episode",
                tags=(f"session-{t.session}",),
                metadata={"dia_id": t.dia_id, "speaker": t.speaker, "session": t.session},
                occurred_at=t.occurred_at,
            )
            for t in conv.turns
        ]
        self._session.remember_many(drafts, progress=None)

    def search(self, variant: str, query: str, k: int) -> list[str]:
        mode = variant.removeprefix("severance-")
        hits = self._session.recall(query, k=k, mode=mode)
        return [str(h.memory.metadata["dia_id"]) for h in hits]

    def release(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
        self._ctx = None
        self._session = None

    def close(self) -> None:
        self.release()
        try:
            self._store.close()
        finally:
            if self._old_xdg is None:
                os.environ.pop("XDG_CONFIG_HOME", None)
            else:
                os.environ["XDG_CONFIG_HOME"] = self._old_xdg
            shutil.rmtree(self._tmp, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        return {
            "severance": getattr(self._sev, "__version__", None),
            "layout": "one store; one persona + floor per conversation; one session per "
            "conversation for ingest and all its questions",
            "ingest": "Session.remember_many(MemoryDraft(kind='episode', occurred_at=session "
            "date, metadata={dia_id, speaker, session}))",
            "search": "Session.recall(q, k=k, mode=<hybrid|dense|keyword>), defaults otherwise",
            "embedder": "shared model injected, turn vectors from the cache"
            if self.embedder_injected
            else "the store's default embedder (ingest time includes embedding)",
        }
