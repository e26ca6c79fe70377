"""The in-memory index of one awake persona: vectors, BM25 postings and filterable fields.

Documents live in *slots*. An update appends a new slot and retires the old one, so nothing
is ever moved while awake; :meth:`PersonaIndex.to_bytes` compacts retired slots away when the
index is snapshotted. The index holds no memory text: results are ids, and the session decrypts
only the rows it returns.

Dense search is exact (one matrix-vector product) until a persona holds
:data:`HNSW_THRESHOLD` live memories; from then on an HNSW graph (:class:`HNSWIndex`) proposes
candidates, which are re-scored exactly, so only the candidate set is approximate. The graph
is kept up to date in batches: slots written since the last batch (fewer than
:data:`HNSW_BATCH`) are scored exactly beside it. A filter that leaves few candidates is
answered by exact scoring of those candidates, which is both cheaper and exact. The graph is
saved inside the (encrypted) snapshot, so waking a large persona does not rebuild it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .columns import NO_SPEAKER, Columns, SearchMode
from .container import Buffer
from .context import SeqOrder
from .dense import DenseIndex, HNSWIndex
from .documents import Doc, Filter, Hit, document
from .hybrid import Fusion
from .identity import IdentityLookup
from .keyword import KeywordIndex
from .query import QueryAnalysis, search_depth
from .ranking import Candidates, KeywordStage, Settings, hits_of, top_of
from .scoring import Cosines
from .scratch import ScratchPool
from .snapshot import Parts, decode, encode_pieces, live_rows, restore_order, saved_order
from .speakers import address_tokens, name_words
from .threads import one_blas_thread

__all__ = [
    "HNSW_BATCH",
    "HNSW_EXACT_BELOW",
    "HNSW_FOLD_MAX",
    "HNSW_THRESHOLD",
    "Doc",
    "Filter",
    "Hit",
    "PersonaIndex",
    "SearchMode",
    "document",
]

DEFAULT_FUSION = Fusion()
NO_FILTER = Filter()

#: Live memories from which dense search goes through an HNSW graph instead of scoring every
#: vector. Below it exact search reads the whole float32 matrix per query (about 30 MB and a
#: few milliseconds at 20k memories of 384 dimensions) and writes stay cheap; above it the
#: cost of exact search grows linearly while a graph search stays near a millisecond.
HNSW_THRESHOLD = 20_000
#: Slots written since the graph was last extended that trigger the next extension; until
#: then they are scored exactly (it is cheaper to insert into the graph in batches).
HNSW_BATCH = 512
#: At most this many slots are inserted into the graph per write or search, which bounds the
#: latency of one call while a graph catches up (right after crossing the threshold, or after
#: waking from a snapshot without one).
HNSW_FOLD_MAX = 16_384
#: A filtered search with at most this many candidates scores them all exactly.
HNSW_EXACT_BELOW = 8_192
#: Roughly how many vectors a graph search compares per neighbour it returns (its beam visits
#: ``connectivity`` neighbours per expanded node, at int8). A filtered search scores its
#: candidates exactly when that is cheaper than a graph search wide enough to find ``depth``
#: of them, i.e. when the filter is selective.
_GRAPH_VISIT_COST = 8
#: Neighbours asked from the graph per wanted result (beyond ``depth``), against misses.
_HNSW_OVERSAMPLE = 1.5
#: From this many live memories on, the graph search widens as ``(live / this) ** 0.6``: the
#: same beam finds fewer of the true neighbours in a larger graph. Measured on 1M memories
#: (``bench/speed.py`` data): recall@10 against exact search 0.89 with a beam of 150, 0.95 with
#: 500-600 (about 4 ms), which this rule gives at 1M.
_HNSW_WIDEN_FROM = 100_000
_HNSW_WIDEN_POWER = 0.6


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
        self._tag_arrays: dict[str, npt.NDArray[np.int64]] = {}
        self.has_time = np.zeros(0, dtype=np.bool_)
        self.speaker_codes = np.zeros(0, dtype=np.int32)
        self.addressed_codes = np.zeros(0, dtype=np.int32)
        self.speaker_names: list[str] = []
        self._speaker_code: dict[str, int] = {}
        self._named_by: dict[str, list[int]] = {}
        #: Per slot, its memory's identity key (see :mod:`.identity`): the duplicate check's
        #: leads, found with :meth:`same_identity`.
        self.identities = np.zeros(0, dtype=np.uint64)
        self._by_identity: IdentityLookup | None = None
        #: Set on an index woken from a snapshot without identity keys or with keys of other
        #: rules: the caller fills them in with :meth:`set_identity` (and re-snapshots).
        self.stale_identities = False
        #: Set on an index woken from a snapshot older than the re-ranking features: the
        #: caller fills them in with :meth:`set_features` (and re-snapshots).
        self.missing_features = False
        #: Set on an index woken from a snapshot whose postings came from another tokenizer:
        #: the caller re-tokenises the texts with :meth:`retokenize` (and re-snapshots).
        self.stale_keywords = False
        self.dense = DenseIndex(dimension)
        self.keyword = KeywordIndex()
        self.hnsw: HNSWIndex | None = None
        self.retired = 0
        self.order = SeqOrder()
        self._kw_stats: tuple[tuple[int, int], tuple[int, float]] | None = None
        self._by_token: tuple[int, dict[str, list[int]]] | None = None
        self._scratch = ScratchPool()
        self._feature_edits = 0

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

    def _speaker(self, speaker: str | None) -> int:
        if speaker is None:
            return NO_SPEAKER
        code = self._speaker_code.get(speaker)
        if code is None:
            code = self._speaker_code[speaker] = len(self.speaker_names)
            self.speaker_names.append(speaker)
            for word in name_words(speaker):
                self._named_by.setdefault(word, []).append(code)
        return code

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
        self.has_time = _grow(self.has_time, end)  # type: ignore[assignment]
        self.speaker_codes = _grow(self.speaker_codes, end)  # type: ignore[assignment]
        self.addressed_codes = _grow(self.addressed_codes, end)  # type: ignore[assignment]
        self.identities = _grow(self.identities, end)  # type: ignore[assignment]
        self.dense.add(start, np.stack([d.vector for d in docs]))
        self.seqs[start:end] = [d.seq for d in docs]
        self.alive[start:end] = True
        self.kind_codes[start:end] = [self._kind_code(d.kind) for d in docs]
        self.occurred[start:end] = [d.occurred_at for d in docs]
        self.learned[start:end] = [d.learned_at for d in docs]
        self.has_time[start:end] = [d.has_time for d in docs]
        self.speaker_codes[start:end] = [self._speaker(d.speaker) for d in docs]
        self.addressed_codes[start:end] = [self._speaker(d.addressed) for d in docs]
        self.identities[start:end] = [d.identity for d in docs]
        keyword = self.keyword
        tag_slots = self.tag_slots
        for slot, doc in enumerate(docs, start=start):
            self.ids.append(doc.id)
            self.slot_of[doc.id] = slot
            self.tags.append(doc.tags)
            for tag in doc.tags:
                tag_slots.setdefault(tag, []).append(slot)
            keyword.add(slot, doc.tokens)
        self._extend_graph()

    def remove(self, memory_id: str) -> bool:
        slot = self.slot_of.pop(memory_id, None)
        if slot is None:
            return False
        self.alive[slot] = False
        self.order.retire(slot)
        self.retired += 1
        if self.hnsw is not None and slot < self.hnsw.covered:
            self.hnsw.remove(slot)
        return True

    def set_features(
        self,
        memory_id: str,
        seq: int,
        speaker: str | None,
        has_time: bool,
        addressed: str | None = None,
    ) -> None:
        """Fill in the re-ranking features of a memory (see :attr:`missing_features`); a
        memory not in the index at ``seq`` is left alone."""
        slot = self.slot_of.get(memory_id)
        if slot is not None and int(self.seqs[slot]) == seq:
            self._feature_edits += 1  # keyword scores cached per version read these codes
            self.speaker_codes[slot] = self._speaker(speaker)
            self.has_time[slot] = has_time
            self.addressed_codes[slot] = self._speaker(addressed)

    def set_identity(self, memory_id: str, seq: int, key: int) -> None:
        """Fill in the identity key of a memory (see :attr:`stale_identities`); a memory not
        in the index at ``seq`` is left alone."""
        slot = self.slot_of.get(memory_id)
        if slot is not None and int(self.seqs[slot]) == seq:
            self.identities[slot] = key
            self._by_identity = None  # sorted by the old keys

    def same_identity(self, keys: Sequence[int], limit: int) -> list[list[str]]:
        """For each identity key, the ids of up to ``limit`` live memories with it, newest
        first: leads for the duplicate check, which compares the memories themselves."""
        if self._by_identity is None:
            self._by_identity = IdentityLookup()
        found = self._by_identity.find(self.identities, self.alive, self.n_slots, keys, limit)
        ids = self.ids
        return [[ids[s] for s in slots] for slots in found]

    def columns(self) -> Columns:
        """A read-only view of the per-slot arrays, for fusion, context and re-ranking."""
        self.order.update(self.occurred, self.seqs, self.alive, self.n_slots)
        return Columns(
            n_slots=self.n_slots,
            seqs=self.seqs,
            alive=self.alive,
            kind_codes=self.kind_codes,
            kind_names=self.kind_names,
            occurred=self.occurred,
            has_time=self.has_time,
            speaker_codes=self.speaker_codes,
            speaker_names=self.speaker_names,
            named_by=self._named_by,
            addressed_codes=self.addressed_codes,
            before=self.order.before,
            after=self.order.after,
        )

    # -- the HNSW graph -------------------------------------------------------------------------
    def _extend_graph(self, every: bool = False) -> None:
        """Create the graph once the persona is large enough; insert pending slots in batches
        (``every``: whatever is pending, up to :data:`HNSW_FOLD_MAX`)."""
        hnsw = self.hnsw
        if hnsw is None:
            if len(self.slot_of) < HNSW_THRESHOLD:
                return
            hnsw = self.hnsw = HNSWIndex(self.dimension)
            self.dense.halve()
        n = self.n_slots
        if n - hnsw.covered < (1 if every else HNSW_BATCH):
            return
        end = min(n, hnsw.covered + HNSW_FOLD_MAX)
        slots = np.arange(hnsw.covered, end, dtype=np.int64)
        slots = slots[self.alive[hnsw.covered : end]]
        hnsw.add(slots, self.dense.vectors()[slots])
        hnsw.covered = end

    # -- search ---------------------------------------------------------------------------------
    @staticmethod
    def _filters(flt: Filter) -> bool:
        return bool(
            flt.kinds is not None or flt.tags or flt.since is not None or flt.until is not None
        )

    def _mask(self, flt: Filter) -> npt.NDArray[np.bool_]:
        n = self.n_slots
        mask = self.alive[:n].copy()
        if flt.kinds is not None:
            codes = [i for i, name in enumerate(self.kind_names) if name in flt.kinds]
            mask &= np.isin(self.kind_codes[:n], codes)
        if flt.tags:
            for tag in flt.tags:
                has = np.zeros(n, dtype=np.bool_)
                has[self._tag_array(tag)] = True
                mask &= has
        if flt.since is not None:
            mask &= self.occurred[:n] >= flt.since
        if flt.until is not None:
            mask &= self.occurred[:n] < flt.until
        return mask

    def _tag_array(self, tag: str) -> npt.NDArray[np.int64]:
        """The slots that have (or had) ``tag``, as an array kept until the tag's list grows
        (a common tag's list holds a large share of the persona: converting it on every
        filtered search would cost more than the search)."""
        slots = self.tag_slots.get(tag, [])
        cached = self._tag_arrays.get(tag)
        if cached is None or len(cached) != len(slots):
            cached = self._tag_arrays[tag] = np.asarray(slots, dtype=np.int64)
        return cached

    def _top_of(
        self, candidates: npt.NDArray[np.int64], values: npt.NDArray[np.float32], k: int
    ) -> list[int]:
        """The best ``k`` of ``candidates`` by ``values``, ties to the lower seq (see
        :func:`.ranking.top_of`)."""
        return top_of(self.seqs, candidates, values, k)

    def _top(
        self, scores: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_], k: int
    ) -> list[int]:
        """The best ``k`` slots among those set in ``mask`` (see :meth:`_top_of`)."""
        candidates = np.flatnonzero(mask)
        return self._top_of(candidates, scores[candidates], k)

    def _dense_exact(
        self,
        query: npt.NDArray[np.float32],
        mask: npt.NDArray[np.bool_] | None,
        pool: int,
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Exact dense ranking: every vector scored (``mask`` None: every live slot)."""
        scores = self.dense.scores(query)
        n = self.n_slots
        if mask is None and self.retired == 0:
            return self._top_of(np.arange(n, dtype=np.int64), scores, pool), scores
        return self._top(scores, self.alive[:n] if mask is None else mask, pool), scores

    def _dense_graph(
        self,
        hnsw: HNSWIndex,
        query: npt.NDArray[np.float32],
        mask: npt.NDArray[np.bool_] | None,
        pool: int,
        cosines: Cosines | None = None,
    ) -> list[int]:
        """Dense ranking through the graph: candidates from the graph plus the slots not yet
        in it, re-scored exactly; exact over the candidates when a filter is selective. The
        exact scores are kept in ``cosines`` (for fusion), when given."""
        cosines = cosines or Cosines(self.dense, query)
        n = self.n_slots
        live = len(self.slot_of)
        n_candidates = live if mask is None else int(np.count_nonzero(mask))
        if n_candidates == 0:
            return []
        wanted = min(pool, n_candidates)
        widen = max(1.0, (live / _HNSW_WIDEN_FROM) ** _HNSW_WIDEN_POWER)
        count = math.ceil(pool * live / n_candidates * _HNSW_OVERSAMPLE * widen)
        if mask is not None and (
            n_candidates <= HNSW_EXACT_BELOW or count * _GRAPH_VISIT_COST > n_candidates
        ):
            candidates = np.flatnonzero(mask)
            return self._top_of(candidates, cosines.score(candidates), pool)
        found = hnsw.search(query, min(count, len(hnsw)))
        pending = np.arange(hnsw.covered, n, dtype=np.int64)
        candidates = np.concatenate([found, pending]) if len(pending) else found
        keep = self.alive[candidates] if mask is None else mask[candidates]
        candidates = candidates[keep]
        ranked = self._top_of(candidates, cosines.score(candidates), pool)
        if len(ranked) < wanted:
            # The graph missed too many (a filter unluckily spread): be exact instead.
            candidates = np.flatnonzero(self.alive[:n] if mask is None else mask)
            ranked = self._top_of(candidates, cosines.score(candidates), pool)
        return ranked

    def search(
        self,
        query_vector: npt.NDArray[np.float32] | None,
        query_tokens: Sequence[str],
        k: int,
        flt: Filter = NO_FILTER,
        mode: SearchMode = "hybrid",
        depth: int = 100,
        fusion: Fusion = DEFAULT_FUSION,
        recency: float = 0.0,
        half_life_days: float = 30.0,
        now: float = 0.0,
        dense_hits: Sequence[tuple[str, float]] | None = None,
        analysis: QueryAnalysis | None = None,
        min_similarity: float | None = None,
        prepared: KeywordStage | None = None,
    ) -> list[Hit]:
        """The best ``k`` memories for a query, best first.

        ``dense_hits`` (memory id, similarity), when given, replaces the in-memory dense search.
        ``analysis`` (of the query's text) turns on the re-ranking of ``fusion``'s query
        boosts in a hybrid search: the best :func:`.query.search_depth` fused results are
        re-scored from the index's per-memory features, then cut to ``k``.
        ``min_similarity`` drops, before re-ranking, results that share no keyword with the
        query and whose cosine similarity is below it.
        ``prepared`` is :meth:`prepare` of the same tokens and filter, done while the query
        vector was being computed (redone here if the index changed since).
        """
        if self.n_slots == 0 or k <= 0:
            return []
        with one_blas_thread(), self._scratch.borrow(self.n_slots) as scratch:
            self._extend_graph()
            wanted = search_depth(k, fusion, mode) if analysis is not None else k
            pool = max(depth, wanted)
            stage = prepared
            now_at = (self.n_slots, self.retired)
            if stage is None or not stage.serves(query_tokens, flt, now_at, mode, fusion):
                power = fusion.idf_power
                stage = self.prepare(query_tokens, flt, mode, fusion.skip_addressed, pool, power)
            mask = stage.mask
            dense_list: list[int] = []
            keyword_list: list[int] = []
            dense_scores: npt.NDArray[np.float32] | None = None
            keyword_scores: npt.NDArray[np.float32] | None = None
            query: npt.NDArray[np.float32] | None = None
            cosines: Cosines | None = None
            if mode in ("hybrid", "dense") and query_vector is not None:
                query = np.asarray(query_vector, dtype=np.float32)
                if dense_hits is not None:
                    # The nearest neighbours came from elsewhere (the database's own vector
                    # index, in the "indexed" mode): keep the live ones that pass the filter.
                    known = (self.slot_of.get(memory_id) for memory_id, _ in dense_hits)
                    kept = [s for s in known if s is not None and (mask is None or mask[s])]
                    dense_list = kept[:pool]
                elif self.hnsw is None:
                    dense_list, dense_scores = self._dense_exact(query, mask, pool)
                else:
                    cosines = Cosines(self.dense, query, cache=scratch.cosines)
                    dense_list = self._dense_graph(self.hnsw, query, mask, pool, cosines)
            if mode in ("hybrid", "keyword") and stage.scores is not None:
                keyword_scores = stage.scores
                if stage.ranked is not None and stage.ranked[0] == pool:
                    keyword_list = stage.ranked[1]  # ranked while the query was being embedded
                else:
                    touched = stage.touched
                    keyword_list = self._top_of(touched, keyword_scores[touched], pool)

            if query is not None and cosines is None:
                cosines = Cosines(self.dense, query, dense_scores, cache=scratch.cosines)
            found = Candidates(
                np.asarray(dense_list, dtype=np.int64),
                np.asarray(keyword_list, dtype=np.int64),
                keyword_scores,
                cosines,
                scratch,
            )
            how = Settings(
                k, wanted, mode, fusion, recency, half_life_days, now, analysis, min_similarity
            )
            try:
                return hits_of(self.columns(), self.dense.vectors(), self.ids, found, mask, how)
            finally:
                if cosines is not None:
                    cosines.release()

    def prepare(
        self,
        query_tokens: Sequence[str],
        flt: Filter = NO_FILTER,
        mode: SearchMode = "hybrid",
        skip_addressed: bool = True,
        pool: int = 100,
        idf_power: float = 1.0,
    ) -> KeywordStage:
        """What a search for ``query_tokens`` under ``flt`` can do before it has the query's
        vector: the filter's mask, the BM25 scores and the best ``pool`` keyword candidates
        (a search's ``max(depth, ...)``: 100 by default; see :meth:`search`'s ``prepared``);
        with ``skip_addressed``, a memory does not match the name it addresses someone by;
        in a hybrid search each term's idf is raised to ``idf_power``."""
        n = self.n_slots
        idf_power = idf_power if mode == "hybrid" else 1.0  # keyword searches: plain BM25
        mask = self._mask(flt) if self._filters(flt) else None
        scores: npt.NDArray[np.float32] | None = None
        touched = np.zeros(0, dtype=np.int64)
        if mode in ("hybrid", "keyword") and n:
            version = (n, self.retired, self._feature_edits)
            said_to = (self.addressed_codes, self._address_tokens()) if skip_addressed else None
            scores, touched = self.keyword.matches(
                query_tokens,
                self.alive,
                n,
                stats=self._keyword_stats(),
                version=version,
                addressed=said_to,
                idf_power=idf_power,
            )
            if mask is not None:
                touched = touched[mask[touched]]
        ranked = (
            (pool, self._top_of(touched, scores[touched], pool)) if scores is not None else None
        )
        return KeywordStage(
            tuple(query_tokens),
            flt,
            (n, self.retired),
            mask,
            scores,
            touched,
            skip_addressed,
            ranked,
            idf_power,
        )

    def _address_tokens(self) -> dict[str, list[int]]:
        """Keyword token -> the codes of the one-word names that are it (names only grow)."""
        names = self.speaker_names
        if self._by_token is None or self._by_token[0] != len(names):
            self._by_token = (len(names), address_tokens(names))
        return self._by_token[1]

    def _keyword_stats(self) -> tuple[int, float]:
        """Live document count and mean length for BM25, cached until the index changes."""
        version = (self.n_slots, self.retired)
        if self._kw_stats is None or self._kw_stats[0] != version:
            stats = self.keyword.collection_stats(self.alive, self.n_slots)
            self._kw_stats = (version, stats)
        return self._kw_stats[1]

    # -- snapshots ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A compact serialisation of the live documents: :meth:`snapshot_pieces` joined."""
        return b"".join(self.snapshot_pieces())

    def snapshot_pieces(self) -> list[memoryview]:
        """The live documents as the pieces of a snapshot (no pickles: plain arrays; the
        layout is :mod:`.snapshot`'s), views of the index's own arrays where possible (valid
        until the index next changes). Retired slots are compacted away (the vectors as
        views of runs of live rows when there are few). The HNSW graph is brought up to
        date, scrubbed of free nodes (see :meth:`HNSWIndex.scrub`: no forgotten memory's
        vector is carried over) and saved with its key-to-slot map renumbered; so are the
        conversation links."""
        # Pending slots go into the graph first: a woken index then re-scores none of them
        # on every query until the next batch comes along.
        self._extend_graph(every=True)
        n = self.n_slots
        self.order.update(self.occurred, self.seqs, self.alive, n)
        live = np.nonzero(self.alive[:n])[0]
        remap = np.full(n, -1, dtype=np.int64)
        remap[live] = np.arange(len(live))
        every = len(live) == n  # nothing retired: take the arrays as they are (no copies)

        def pick(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return array[:n] if every else array[live]

        parts = Parts(
            dimension=self.dimension,
            ids=[self.ids[s] for s in live.tolist()],
            seqs=pick(self.seqs),
            kind_codes=pick(self.kind_codes),
            kind_names=self.kind_names,
            occurred=pick(self.occurred),
            learned=pick(self.learned),
            tags=[self.tags[s] for s in live.tolist()],
            has_time=pick(self.has_time),
            speaker_codes=pick(self.speaker_codes),
            addressed_codes=pick(self.addressed_codes),
            speaker_names=self.speaker_names,
            identities=pick(self.identities),
            vectors=live_rows(self.dense.vectors(), live, n),
            keyword=self.keyword.compacted(remap),
            order=saved_order(self.order, live, remap),
        )
        if self.hnsw is not None:
            parts.hnsw_covered = int(np.count_nonzero(self.alive[: self.hnsw.covered]))
            parts.hnsw = self.hnsw.to_array()
            parts.hnsw_keys = self.hnsw.compacted_keys(remap)
        return encode_pieces(parts)

    @classmethod
    def from_bytes(cls, data: Buffer) -> PersonaIndex:
        """An index from :meth:`to_bytes` (any buffer: bytes, or the array a snapshot was
        decrypted into). The vectors and the graph are read in place until the first write;
        an index from an older snapshot reports :attr:`missing_features` (and
        :attr:`stale_keywords`) until the caller fills them in from the rows."""
        parts = decode(data)
        index = cls(parts.dimension)
        ids = parts.ids
        n = len(ids)
        index.ids = ids
        index.slot_of = dict(zip(ids, range(n), strict=True))
        index.seqs = parts.seqs
        index.alive = np.ones(n, dtype=np.bool_)
        index.kind_codes, index.kind_names = parts.kind_codes, parts.kind_names
        index.occurred, index.learned = parts.occurred, parts.learned
        index.tags = parts.tags
        index.tag_slots = parts.tag_slots
        index.has_time = parts.has_time
        index.speaker_codes = parts.speaker_codes
        index.addressed_codes = parts.addressed_codes
        index.speaker_names = parts.speaker_names
        index._speaker_code = {name: i for i, name in enumerate(parts.speaker_names)}
        for code, name in enumerate(parts.speaker_names):
            for word in name_words(name):
                index._named_by.setdefault(word, []).append(code)
        index.missing_features, index.stale_keywords = parts.stale_features, parts.stale_keywords
        index.identities, index.stale_identities = parts.identities, parts.stale_identities
        index.dense = DenseIndex(index.dimension, np.asarray(parts.vectors))  # one matrix
        if parts.order is not None:
            restore_order(index.order, parts.order)
        index.keyword = parts.keyword
        if parts.hnsw is not None and parts.hnsw_keys is not None:
            index.hnsw = HNSWIndex.from_bytes(
                index.dimension, parts.hnsw, parts.hnsw_keys, covered=parts.hnsw_covered, n_slots=n
            )
            # A snapshot from before float16 rows (format 4 or older): round them as a live
            # index with a graph would have (one copy, then the next snapshot is float16).
            index.dense.halve()
        return index

    def retokenize(self, tokens_of: Mapping[int, Sequence[str]]) -> None:
        """Rebuild the keyword postings from ``tokens_of`` (slot -> tokens; a slot left out
        gets none), after the tokenizer changed (see :attr:`stale_keywords`)."""
        keyword = KeywordIndex()
        for slot in range(self.n_slots):
            keyword.add(slot, tokens_of.get(slot, ()))
        self.keyword = keyword
        self._kw_stats = None
        self.stale_keywords = False

    def ids_matching(self, flt: Filter) -> Iterable[str]:
        """Ids of live documents passing a filter (for selections such as reintegration)."""
        mask = self._mask(flt)
        return [self.ids[s] for s in np.nonzero(mask)[0]]
