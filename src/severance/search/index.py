"""The in-memory index of one awake persona: vectors, BM25 postings and filterable fields.

Documents live in *slots*. An update appends a new slot and retires the old one, so nothing
is ever moved while awake; :meth:`PersonaIndex.to_bytes` compacts retired slots away when the
index is snapshotted. The index holds no memory text: results are ids, and the session decrypts
only the rows it returns.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from .dense import DenseIndex
from .hybrid import Fusion, rrf
from .keyword import KeywordIndex

__all__ = ["Doc", "Filter", "Hit", "PersonaIndex", "SearchMode"]

SearchMode = Literal["hybrid", "dense", "keyword"]
_SNAPSHOT_FORMAT = 1
DEFAULT_FUSION = Fusion()


@dataclass(frozen=True, slots=True)
class Doc:
    """What the index keeps of one memory."""

    id: str
    seq: int
    kind: str
    tags: tuple[str, ...]
    occurred_at: float
    learned_at: float
    vector: npt.NDArray[np.float32]
    tokens: Sequence[str]


@dataclass(frozen=True, slots=True)
class Filter:
    kinds: frozenset[str] | None = None
    tags: frozenset[str] | None = None  # every tag must be present
    since: float | None = None  # occurred_at >= since
    until: float | None = None  # occurred_at < until


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None


def _grow(array: npt.NDArray[np.generic], n: int) -> npt.NDArray[np.generic]:
    if n <= len(array):
        return array
    grown = np.zeros(max(n, 2 * len(array), 64), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


class PersonaIndex:
    """Hybrid search structures for one persona."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.seqs = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=np.bool_)
        self.kind_codes = np.zeros(0, dtype=np.int32)
        self.kind_names: list[str] = []
        self.occurred = np.zeros(0, dtype=np.float64)
        self.learned = np.zeros(0, dtype=np.float64)
        self.tags: list[tuple[str, ...]] = []
        self.tag_slots: dict[str, list[int]] = {}
        self.dense = DenseIndex(dimension)
        self.keyword = KeywordIndex()
        self.retired = 0

    # -- size -----------------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return len(self.slot_of)

    def seq_of(self, memory_id: str) -> int | None:
        slot = self.slot_of.get(memory_id)
        return None if slot is None else int(self.seqs[slot])

    # -- writes ---------------------------------------------------------------------------------
    def _kind_code(self, kind: str) -> int:
        try:
            return self.kind_names.index(kind)
        except ValueError:
            self.kind_names.append(kind)
            return len(self.kind_names) - 1

    def upsert(self, docs: Sequence[Doc]) -> None:
        """Add documents, replacing any with the same id."""
        if not docs:
            return
        for doc in docs:
            self.remove(doc.id)
        start = self.n_slots
        end = start + len(docs)
        self.seqs = _grow(self.seqs, end)  # type: ignore[assignment]
        self.alive = _grow(self.alive, end)  # type: ignore[assignment]
        self.kind_codes = _grow(self.kind_codes, end)  # type: ignore[assignment]
        self.occurred = _grow(self.occurred, end)  # type: ignore[assignment]
        self.learned = _grow(self.learned, end)  # type: ignore[assignment]
        self.dense.add(start, np.stack([d.vector for d in docs]))
        for slot, doc in enumerate(docs, start=start):
            self.ids.append(doc.id)
            self.slot_of[doc.id] = slot
            self.seqs[slot] = doc.seq
            self.alive[slot] = True
            self.kind_codes[slot] = self._kind_code(doc.kind)
            self.occurred[slot] = doc.occurred_at
            self.learned[slot] = doc.learned_at
            self.tags.append(doc.tags)
            for tag in doc.tags:
                self.tag_slots.setdefault(tag, []).append(slot)
            self.keyword.add(slot, doc.tokens)

    def remove(self, memory_id: str) -> bool:
        slot = self.slot_of.pop(memory_id, None)
        if slot is None:
            return False
        self.alive[slot] = False
        self.retired += 1
        return True

    # -- search ---------------------------------------------------------------------------------
    def _mask(self, flt: Filter) -> npt.NDArray[np.bool_]:
        n = self.n_slots
        mask = self.alive[:n].copy()
        if flt.kinds is not None:
            codes = [i for i, name in enumerate(self.kind_names) if name in flt.kinds]
            mask &= np.isin(self.kind_codes[:n], codes)
        if flt.tags:
            for tag in flt.tags:
                has = np.zeros(n, dtype=np.bool_)
                has[self.tag_slots.get(tag, [])] = True
                mask &= has
        if flt.since is not None:
            mask &= self.occurred[:n] >= flt.since
        if flt.until is not None:
            mask &= self.occurred[:n] < flt.until
        return mask

    @staticmethod
    def _top(scores: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_], k: int) -> list[int]:
        candidates = np.nonzero(mask)[0]
        if len(candidates) == 0 or k <= 0:
            return []
        values = scores[candidates]
        if len(candidates) > k:
            part = np.argpartition(-values, k - 1)[:k]
            candidates, values = candidates[part], values[part]
        order = np.lexsort((candidates, -values))
        return [int(s) for s in candidates[order]]

    def search(
        self,
        query_vector: npt.NDArray[np.float32] | None,
        query_tokens: Sequence[str],
        k: int,
        flt: Filter = Filter(),
        mode: SearchMode = "hybrid",
        depth: int = 100,
        fusion: Fusion = DEFAULT_FUSION,
        recency: float = 0.0,
        half_life_days: float = 30.0,
        now: float = 0.0,
    ) -> list[Hit]:
        """The best ``k`` memories for a query, best first."""
        n = self.n_slots
        if n == 0 or k <= 0:
            return []
        mask = self._mask(flt)
        pool = max(depth, k)
        dense_list: list[int] = []
        keyword_list: list[int] = []
        dense_scores: npt.NDArray[np.float32] | None = None
        keyword_scores: npt.NDArray[np.float32] | None = None
        if mode in ("hybrid", "dense") and query_vector is not None:
            dense_scores = self.dense.scores(query_vector)
            dense_list = self._top(dense_scores, mask, pool)
        if mode in ("hybrid", "keyword"):
            keyword_scores = self.keyword.scores(query_tokens, self.alive, n)
            keyword_list = self._top(keyword_scores, mask & (keyword_scores > 0), pool)

        if mode == "dense" and dense_scores is not None:
            fused = {s: float(dense_scores[s]) for s in dense_list}
        elif mode == "keyword" and keyword_scores is not None:
            fused = {s: float(keyword_scores[s]) for s in keyword_list}
        else:
            fused = rrf(dense_list, keyword_list, fusion)
        if recency > 0.0 and fused:
            # Blend in an exponential decay by age of the memory (occurred_at).
            for slot in fused:
                age_days = max(0.0, now - float(self.occurred[slot])) / 86400.0
                decay = 0.5 ** (age_days / half_life_days)
                fused[slot] *= (1.0 - recency) + recency * decay
        ranked = sorted(fused, key=lambda s: (-fused[s], s))[:k]
        dense_rank = {s: i for i, s in enumerate(dense_list, start=1)}
        keyword_rank = {s: i for i, s in enumerate(keyword_list, start=1)}
        return [
            Hit(
                id=self.ids[s],
                score=fused[s],
                dense_rank=dense_rank.get(s),
                keyword_rank=keyword_rank.get(s),
                dense_score=float(dense_scores[s]) if dense_scores is not None else None,
                keyword_score=float(keyword_scores[s]) if keyword_scores is not None else None,
            )
            for s in ranked
        ]

    # -- snapshots ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A compact serialisation of the live documents (no pickles: plain arrays)."""
        n = self.n_slots
        live = np.nonzero(self.alive[:n])[0]
        remap = np.full(n, -1, dtype=np.int64)
        remap[live] = np.arange(len(live))
        keyword = self.keyword.compacted(remap)
        ids = [self.ids[s] for s in live]
        meta = {
            "format": _SNAPSHOT_FORMAT,
            "dimension": self.dimension,
            "ids": ids,
            "kind_names": self.kind_names,
            "tags": [list(self.tags[s]) for s in live],
        }
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "seqs": self.seqs[live],
            "kind_codes": self.kind_codes[live],
            "occurred": self.occurred[live],
            "learned": self.learned[live],
            "vectors": self.dense.vectors()[live],
            "doc_len": keyword.doc_len[: len(live)],
            **keyword.arrays(),
        }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PersonaIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays["meta"].tobytes().decode())
        if meta.get("format") != _SNAPSHOT_FORMAT:
            raise ValueError("unknown snapshot format")
        index = cls(int(meta["dimension"]))
        ids: list[str] = meta["ids"]
        n = len(ids)
        index.ids = ids
        index.slot_of = {memory_id: slot for slot, memory_id in enumerate(ids)}
        index.seqs = arrays["seqs"].astype(np.int64)
        index.alive = np.ones(n, dtype=np.bool_)
        index.kind_codes = arrays["kind_codes"].astype(np.int32)
        index.kind_names = list(meta["kind_names"])
        index.occurred = arrays["occurred"].astype(np.float64)
        index.learned = arrays["learned"].astype(np.float64)
        index.tags = [tuple(t) for t in meta["tags"]]
        for slot, tags in enumerate(index.tags):
            for tag in tags:
                index.tag_slots.setdefault(tag, []).append(slot)
        index.dense = DenseIndex(index.dimension, arrays["vectors"].reshape(n, index.dimension))
        index.keyword = KeywordIndex.from_arrays(arrays, arrays["doc_len"])
        return index

    def ids_matching(self, flt: Filter) -> Iterable[str]:
        """Ids of live documents passing a filter (for selections such as reintegration)."""
        mask = self._mask(flt)
        return [self.ids[s] for s in np.nonzero(mask)[0]]
