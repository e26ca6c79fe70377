"""Severance itself: one store; one persona and one floor per conversation, or one for all.

The store lives in a temporary directory, opened with a random key given to it (so a cold
open in another process needs no key file), and its anchor under a temporary
``$XDG_CONFIG_HOME`` shared by the process's live stores (restored when the last one closes),
so a run never touches the user's keys.

Retrieval: turns are ingested with ``Session.remember_many`` as ``episode`` memories, one
persona per conversation; the three search modes (``hybrid``, ``dense``, ``keyword``) query
the same store and are reported as three rows sharing one ingest time. Speed: one persona
holds every memory, written with ``remember_many`` (batched) and ``remember`` (one call),
searched with ``recall`` (hybrid, dense, and with a tag filter), checkpointed for the wake.

The ablation variants (:data:`ABLATION`) query the same store in ``hybrid`` mode with the
retrieval changes switched on one at a time, from the 0.1 default (plain reciprocal-rank
fusion) through the 0.2 default (``ablation-5-context``) to the current default
(``severance-hybrid``).
"""

from __future__ import annotations

import base64
import inspect
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.embedding import EmbedderLike
from bench.locomo import Conversation
from bench.systems.base import PeerSystem, SystemUnavailable

if TYPE_CHECKING:
    from bench.speed_data import Synthetic

__all__ = ["ABLATION", "MODES", "SPEED_PERSONA", "SeveranceSystem", "ablation_fusions"]

#: The one persona of the speed section.
SPEED_PERSONA = "bench"

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
#: Issue 17, third session: the re-rank depth (50 before) and repeats after distinct results;
#: fourth session: a memory does not match the name it addresses someone by.
#: Fifth session: each query word's idf cubed (plain BM25 idf before).
_IDF_1: dict[str, Any] = {"idf_power": 1.0}
_DEPTH_50: dict[str, Any] = {
    "rerank_depth": 50,
    "repeats_last": False,
    "skip_addressed": False,
    **_IDF_1,
}
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
    (
        "ablation-9-depth",
        "+ re-rank depth 100 (was 50)",
        {"repeats_last": False, "skip_addressed": False, **_IDF_1},
    ),
    (
        "ablation-10-repeats",
        "+ repeats after the distinct results",
        {"skip_addressed": False, **_IDF_1},
    ),
    (
        "ablation-11-addressed",
        "+ a name a memory addresses someone by does not match it",
        _IDF_1,
    ),
    ("severance-hybrid", "+ each query word's BM25 idf cubed (= the default)", {}),
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


class _PrivateConfig:
    """One temporary ``$XDG_CONFIG_HOME`` for every live Severance system of this process.

    A store writes its anchor (and a key file, when it makes one) there. Shared rather than
    one per system so that stores opened together and closed in any order leave the variable
    as it was found, and so that a cold wake started while its store is alive (it inherits the
    environment) finds the same anchor.
    """

    def __init__(self) -> None:
        self._users = 0
        self._dir: str | None = None
        self._old: str | None = None

    def acquire(self) -> None:
        if self._users == 0:
            self._old = os.environ.get("XDG_CONFIG_HOME")
            self._dir = tempfile.mkdtemp(prefix="bench-severance-config-")
            os.environ["XDG_CONFIG_HOME"] = self._dir
        self._users += 1

    def release(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        if self._old is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = self._old
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self._old = None


_CONFIG = _PrivateConfig()


class SeveranceSystem(PeerSystem):
    name = "severance"
    batch = 10_000  # speed: drafts per remember_many call (it commits every 256 internally)
    backend_label = "SQLite"  # what the set-up notes say the store is kept in

    def __init__(
        self,
        embedder: EmbedderLike | None,
        *,
        modes: tuple[str, ...] = MODES,
        workdir: Path | None = None,
        ablation: bool = True,
    ) -> None:
        try:
            import severance
        except ImportError as exc:
            raise SystemUnavailable(f"severance is not importable ({exc})") from exc
        super().__init__(workdir=workdir)
        self._sev = severance
        self.modes = modes
        self._fusions: dict[str, Any] = {}
        if ablation and "hybrid" in modes:
            self._fusions = {
                name: fusion
                for name, fusion in ablation_fusions().items()
                if name != "severance-hybrid"
            }
        self._key = os.urandom(32)
        kwargs: dict[str, Any] = {"key": self._key}
        init_params = inspect.signature(severance.Store.init).parameters
        self.embedder_injected = embedder is not None and "embedder" in init_params
        if self.embedder_injected:
            kwargs["embedder"] = embedder
        _CONFIG.acquire()
        try:
            self.location = self.store_location()
            self._store = severance.Store.init(self.location, **kwargs)
        except BaseException:
            _CONFIG.release()
            super().close()
            raise
        self._ctx: Any = None
        self._session: Any = None
        self._floor: str | None = None

    def store_location(self) -> str | Path:
        """Where the store goes (a directory; a database URL for the PostgreSQL rows)."""
        return self.root / "store"

    def persona_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Store.add_persona`` for the speed section's persona."""
        return {}

    def _enter(self, persona: str, **options: Any) -> None:
        """A new persona with a floor of its own, entered: the session later calls use."""
        floor = f"f-{persona}"
        self._store.add_persona(persona, **options)
        self._store.add_floor(floor, persona=persona)
        self._ctx = self._store.enter(floor=floor)
        self._session = self._ctx.__enter__()
        self._floor = floor

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
            _CONFIG.release()
            super().close()

    # -- retrieval: one persona per conversation ---------------------------------------------

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
        self._enter(persona_name(conv.sample_id))
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

    # -- speed: one persona holding every memory ---------------------------------------------

    def open_scope(self) -> None:
        self._enter(SPEED_PERSONA, **self.persona_options())

    def remember_batch(self, syn: Synthetic) -> None:
        draft = self._sev.MemoryDraft
        for start in range(0, len(syn), self.batch):
            part = syn.slice(start, start + self.batch)
            self._session.remember_many(
                [
                    draft(
                        text=t,
                        kind="episode",
                        tags=(tag,),
                        occurred_at=datetime.fromtimestamp(float(ts), UTC),
                    )
                    for t, tag, ts in zip(part.texts, part.tags, part.occurred_at, strict=True)
                ]
            )

    def remember_one(self, text: str, tag: str, occurred_at: float) -> None:
        self._session.remember(
            text,
            kind="episode",
            tags=(tag,),
            occurred_at=datetime.fromtimestamp(occurred_at, UTC),
        )

    def recall(self, query: str, k: int, *, dense: bool = False) -> list[str]:
        hits = self._session.recall(query, k=k, mode="dense" if dense else "hybrid")
        return [h.memory.text for h in hits]

    def recall_filtered(self, query: str, k: int, tag: str) -> list[str]:
        """Texts of the top ``k`` memories tagged ``tag`` (the selective-filter probe)."""
        hits = self._session.recall(query, k=k, tags=[tag])
        return [h.memory.text for h in hits]

    def dense_graph(self) -> tuple[Any, dict[str, Any]] | None:
        """The persona's HNSW graph as ``((usearch index, key -> slot), figures)``, or ``None``
        while dense search is exact. Reads the session's index internals on purpose: the
        speed section's ceiling searches this very graph with no memory layer around it."""
        import numpy as np

        index = self._session.search_index
        if index is None or getattr(index, "hnsw", None) is None:
            return None
        graph = (index.hnsw.usearch, np.array(index.hnsw.key_slot, copy=True))
        return graph, {
            "in_graph": len(index.hnsw),
            "pending": index.n_slots - index.hnsw.covered,
            "memory_bytes": index.hnsw.memory_bytes(),
        }

    def persist(self) -> None:
        self._session.checkpoint()
        self.release()
        self._store.close()

    def wake_config(self) -> dict[str, Any]:
        # Every Severance row (SQLite or PostgreSQL) wakes the same way: a URL is a path.
        return {
            "system": "severance",
            "path": str(self.location),
            "key": base64.b64encode(self._key).decode(),
            "floor": self._floor,
        }

    def speed_info(self) -> dict[str, Any]:
        from severance.search import index as sindex

        return {
            "severance": getattr(self._sev, "__version__", None),
            "layout": f"one store ({self.backend_label}), one persona holding every memory,"
            " one session",
            "batched": f"Session.remember_many, {self.batch} drafts per call "
            "(committed in transactions of 256)",
            "single": "Session.remember, one call (one transaction, fsync) per memory",
            "recall": "Session.recall(q, k=10): hybrid (default) and mode='dense'; "
            "includes decrypting the returned memories",
            "hnsw_threshold": getattr(sindex, "HNSW_THRESHOLD", None),
            "snapshot": "Session.checkpoint() before the cold wake",
        }
