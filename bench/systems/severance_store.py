"""Severance itself: one store, one persona and one floor per conversation.

The store lives in a temporary directory and its key file under a temporary
``$XDG_CONFIG_HOME`` (restored on close), so a run never touches the user's keys. Turns are
ingested with ``Session.remember_many`` as ``episode`` memories; the three search modes
(``hybrid``, ``dense``, ``keyword``) query the same store and are reported as three rows
sharing one ingest time.

The ablation variants (:data:`ABLATION`) query the same store in ``hybrid`` mode with the
retrieval changes switched on one at a time, from the 0.1 default (plain reciprocal-rank
fusion) through the 0.2 default (``ablation-5-context``) to the current default
(``severance-hybrid``).
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

__all__ = ["ABLATION", "MODES", "SeveranceSystem", "ablation_fusions"]

MODES: tuple[str, ...] = ("hybrid", "dense", "keyword")

#: The ablation, in the order the changes were made: (variant, change, Fusion keyword
#: arguments; None for the 0.1 default). Each step keeps the ones before it; the last step
#: is the current default, reported as ``severance-hybrid``.
#: Context as Severance 0.2 had it: episodes only, the turn before or after, within an hour,
#: speakers named only by metadata. Each later step turns part of today's default back on.
_CONTEXT_02: dict[str, Any] = {
    "context_kinds": frozenset({"episode"}),
    "context_speakers": False,
    "context_gap": 3600.0,
    "context_reach": 1,
    "speaker_aliases": False,
}
#: Issue 17, third session: the re-rank depth (50 before) and repeats after distinct results.
_DEPTH_50: dict[str, Any] = {"rerank_depth": 50, "repeats_last": False}
_NO_ALIASES: dict[str, Any] = {"speaker_aliases": False, **_DEPTH_50}
ABLATION: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("ablation-0-rrf", "0.1 default: reciprocal-rank fusion, k0 60, equal weights", None),
    (
        "ablation-1-convex",
        "+ convex fusion: 0.65 cosine + 0.35 BM25 / best BM25",
        {"context": 0.0, "speaker_boost": 0.0, "time_boost": 0.0, "date_boost": 0.0, **_DEPTH_50},
    ),
    (
        "ablation-2-speaker",
        "+ speaker boost (question names the memory's speaker)",
        {"context": 0.0, "time_boost": 0.0, "date_boost": 0.0, **_NO_ALIASES},
    ),
    (
        "ablation-3-time",
        "+ time boost (a 'when' question, a memory that says when)",
        {"context": 0.0, "date_boost": 0.0, **_NO_ALIASES},
    ),
    (
        "ablation-4-date",
        "+ date boost (a date in the question, a memory from that date)",
        {"context": 0.0, **_NO_ALIASES},
    ),
    (
        "ablation-5-context",
        "+ conversation context (0.2: episodes, the turn before or after, within 1 h)",
        {**_CONTEXT_02, **_DEPTH_50},
    ),
    (
        "ablation-6-turns",
        "+ context for any memory with a speaker, neighbours within 12 h",
        {**_CONTEXT_02, **_DEPTH_50, "context_speakers": True, "context_gap": 12 * 3600.0},
    ),
    (
        "ablation-7-reach",
        "+ context from two turns each side (the second at 0.85)",
        _NO_ALIASES,
    ),
    ("ablation-8-aliases", "+ speaker aliases learned from the text", _DEPTH_50),
    ("ablation-9-depth", "+ re-rank depth 100 (was 50)", {"repeats_last": False}),
    ("severance-hybrid", "+ repeats after the distinct results (= the default)", {}),
)


def ablation_fusions() -> dict[str, Any]:
    """Variant -> the ``severance.search.Fusion`` it searches with."""
    from severance.search import Fusion

    return {
        name: Fusion.reciprocal_rank() if kwargs is None else Fusion(**kwargs)
        for name, _change, kwargs in ABLATION
    }


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
        ablation: bool = True,
    ) -> None:
        try:
            import severance
        except ImportError as exc:
            raise SystemUnavailable(f"severance is not importable ({exc})") from exc
        self._sev = severance
        self.modes = modes
        self._fusions: dict[str, Any] = {}
        if ablation and "hybrid" in modes:
            self._fusions = {
                name: fusion
                for name, fusion in ablation_fusions().items()
                if name != "severance-hybrid"
            }
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
        return tuple(f"severance-{m}" for m in self.modes) + tuple(self._fusions)

    @property
    def ablation_steps(self) -> list[dict[str, Any]]:
        """The ablation rows this system produces (variant, change, fusion settings)."""
        if not self._fusions:
            return []
        fusions = ablation_fusions()
        return [
            {
                "variant": name,
                "change": change,
                "fusion": {
                    k: sorted(v) if isinstance(v, frozenset) else v
                    for k, v in vars(fusions[name]).items()
                },
            }
            for name, change, _kwargs in ABLATION
        ]

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
        fusion = self._fusions.get(variant)
        if fusion is not None:
            hits = self._session.recall(query, k=k, mode="hybrid", fusion=fusion)
        else:
            hits = self._session.recall(query, k=k, mode=variant.removeprefix("severance-"))
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
            "search": "Session.recall(q, k=k, mode=<hybrid|dense|keyword>), defaults otherwise; "
            "ablation rows: mode hybrid with the fusion of each step",
            "embedder": "shared model injected, turn vectors from the cache"
            if self.embedder_injected
            else "the store's default embedder (ingest time includes embedding)",
        }
