"""BM25 keyword scoring over one persona's memories, in memory.

Postings are kept per term as a compact *base* (CSR arrays loaded from a snapshot or built by
compaction) plus a *tail* of Python lists for what was added since. A query that reads a term,
or the tails reaching :data:`_TAIL_FOLD` postings in all, moves a tail into a growable array
kept for its term, so each posting is converted to an array once, not on every query.
Deleted or superseded documents stay in the postings until the next compaction and are masked
out with the caller's ``alive`` array, so removal is O(1).
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import snowballstemmer

__all__ = ["TOKENIZER_VERSION", "KeywordIndex", "tokenize"]

#: Version of :func:`tokenize` (and the stemming and stop words it applies). Index snapshots
#: record it; a snapshot whose postings came from another version has its texts tokenised
#: again on wake (its vectors and graph are kept). Bump it whenever ``tokenize`` changes
#: what it returns for some text.
TOKENIZER_VERSION = 2  # 1: a light suffix strip; 2: English Snowball


class _Term:
    """What a query reads of one term, kept for one state of the index (``key``: version,
    N, avgdl): its live postings, their tfs and BM25 denominators ``tf + k1 * norm(len)``,
    their *impacts* (each posting's BM25 score for a query holding the term once) and, once
    asked for, the impacts with the postings addressing someone by the term set to 0
    (``addressed``: (the codes of the names the term is, those impacts, whether any was))."""

    __slots__ = ("addressed", "denominator", "impact", "key", "slots", "tfs")

    def __init__(
        self,
        key: Hashable,
        slots: npt.NDArray[np.int32],
        tfs: npt.NDArray[np.float32],
        denominator: npt.NDArray[np.float32],
        impact: npt.NDArray[np.float32],
    ) -> None:
        self.key = key
        self.slots = slots
        self.tfs = tfs
        self.denominator = denominator
        self.impact = impact
        self.addressed: tuple[tuple[int, ...], npt.NDArray[np.float32], bool] | None = None


K1 = 1.2
#: Length normalisation. Below the textbook 0.75: memories are short (a chat message, a turn)
#: and a long one is usually long because it says more, not because it repeats itself; 0.5
#: raised recall@10 on both development sets (issue 17, docs/benchmarks.md).
B = 0.5
#: Postings waiting in tails (Python lists) that trigger moving every tail into its term's
#: array: a posting costs ~60 bytes as list items and 8 in an array, and a query need not
#: convert a long tail the first time it reads a term.
_TAIL_FOLD = 1 << 18
#: Live postings whose BM25 denominators and impacts are kept between queries (see
#: :class:`_Term`), least recently used term first out (16 bytes each, 20 for a term that is
#: a name). A common term of a large persona has hundreds of thousands of postings;
#: re-deriving its live postings, length norms and weights on every query was most of the
#: cost of keyword search. Entries are valid for one state of the index (``version``).
_CACHE_POSTINGS = 1 << 22
_MAX_TOKEN = 40
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A short English stop list: words that carry no retrieval signal on their own.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "re",
        "ve",
    ]
)


# English Snowball (Porter 2) from snowballstemmer, the stemmer Sphinx and Whoosh use, rather
# than a hand-written suffix strip: it also folds "adoption"/"adopting"/"adopt" and
# "lovely"/"loved"/"loving", which the questions and the turns phrase differently (+0.02
# recall@10 on the chat development set; see docs/benchmarks.md). It uses PyStemmer's C
# implementation when that is installed.
_STEMMER = snowballstemmer.stemmer("english")
# A stemmer object keeps the word it is working on: searches in several threads take turns.
_STEMMER_LOCK = threading.Lock()


def _stem(word: str) -> str:
    with _STEMMER_LOCK:
        return str(_STEMMER.stemWord(word))


# Word -> its token (None: dropped). Stemming a word is pure, and a persona's vocabulary is
# small next to its token count, so this saves most of the work of tokenising. Bounded.
_TOKEN_OF: dict[str, str | None] = {}
_TOKEN_MEMO_MAX = 200_000


def _token(word: str) -> str | None:
    token = None if word in STOPWORDS or len(word) > _MAX_TOKEN else _stem(word)
    if len(_TOKEN_OF) < _TOKEN_MEMO_MAX:
        _TOKEN_OF[word] = token
    return token


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens with stop words dropped, stemmed by English Snowball."""
    out = []
    memo = _TOKEN_OF
    for word in _WORD.findall(text.lower()):
        token = memo[word] if word in memo else _token(word)
        if token is not None:
            out.append(token)
    return out


def _unaddressed(
    part: npt.NDArray[np.float32], said_to: npt.NDArray[np.int32], codes: Sequence[int]
) -> tuple[npt.NDArray[np.float32], bool]:
    """``part`` (a term's scores, per posting) with the postings addressing someone by the
    term (``said_to``: each posting's addressed-name code; ``codes``: the names the term is)
    set to 0, and whether they were; only for a word mostly used to address someone: a place
    closing a note ("the offsite is in Lisbon") is not a name said to someone."""
    # A table over the codes instead of numpy.isin (whose set-up is most of its cost on a few
    # thousand postings); -1 (addressing no one) reads the table's last entry, False.
    top = max(codes) + 1
    named = np.zeros(top + 1, dtype=np.bool_)
    named[list(codes)] = True
    hit = named[np.minimum(said_to, top)]
    if int(np.count_nonzero(hit)) >= max(2.0, 0.5 * len(part)):
        return np.where(hit, np.float32(0.0), part), True
    return part, False


class KeywordIndex:
    """BM25 over documents addressed by integer slots."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._base_offsets = np.zeros(1, dtype=np.int64)
        self._base_slots = np.zeros(0, dtype=np.int32)
        self._base_tfs = np.zeros(0, dtype=np.float32)
        self._tail: dict[int, tuple[list[int], list[float]]] = {}
        # Terms read since their tail last grew: (slots, tfs, used length) of growable arrays
        # holding the base postings followed by the tail.
        self._merged: dict[int, tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], int]] = {}
        self._tail_postings = 0
        # (term id, idf power) -> its entry: a hybrid search (idf cubed) and a keyword one
        # (plain BM25) each keep their own.
        self._cache: OrderedDict[tuple[int, float], _Term] = OrderedDict()
        self._cached_postings = 0
        self.doc_len = np.zeros(0, dtype=np.float32)

    def add(self, slot: int, tokens: Iterable[str]) -> None:
        """Index the document at ``slot`` (slots are appended in increasing order)."""
        counts = Counter(tokens)
        if slot >= len(self.doc_len):
            grown = np.zeros(max(16, 2 * len(self.doc_len), slot + 1), dtype=np.float32)
            grown[: len(self.doc_len)] = self.doc_len
            self.doc_len = grown
        self.doc_len[slot] = sum(counts.values())
        vocab = self.vocab
        tail = self._tail
        for term, tf in counts.items():
            tid = vocab.get(term)
            if tid is None:
                tid = vocab[term] = len(vocab)
            entry = tail.get(tid)
            if entry is None:
                tail[tid] = ([slot], [float(tf)])
            else:
                entry[0].append(slot)
                entry[1].append(float(tf))
        self._tail_postings += len(counts)
        if self._tail_postings >= _TAIL_FOLD:
            for tid in list(tail):
                self.postings(tid)
            self._tail_postings = 0

    def _base(self, tid: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        if tid + 1 < len(self._base_offsets):
            lo, hi = self._base_offsets[tid], self._base_offsets[tid + 1]
            return self._base_slots[lo:hi], self._base_tfs[lo:hi]
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)

    def postings(self, tid: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Every posting of a term (base, then tail, in slot order); moves the tail into the
        term's growable array. The arrays returned must not be modified."""
        merged = self._merged.get(tid)
        tail = self._tail.pop(tid, None)
        if merged is None:
            slots, tfs = self._base(tid)
            if not tail:
                return slots, tfs
            used = len(slots)
        else:
            slots, tfs, used = merged
            if not tail:
                return slots[:used], tfs[:used]
        end = used + len(tail[0])
        if end > len(slots) or merged is None:
            size = max(end, used + used // 2, 16)
            grown_slots = np.empty(size, dtype=np.int32)
            grown_tfs = np.empty(size, dtype=np.float32)
            grown_slots[:used] = slots[:used]
            grown_tfs[:used] = tfs[:used]
            slots, tfs = grown_slots, grown_tfs
        slots[used:end] = tail[0]
        tfs[used:end] = tail[1]
        self._merged[tid] = (slots, tfs, end)
        return slots[:end], tfs[:end]

    def _all_postings(self, tid: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Like :meth:`postings` but without caching anything (for compaction)."""
        merged = self._merged.get(tid)
        if merged is None:
            slots, tfs = self._base(tid)
        else:
            slots, tfs = merged[0][: merged[2]], merged[1][: merged[2]]
        tail = self._tail.get(tid)
        if tail:
            slots = np.concatenate([slots, np.asarray(tail[0], dtype=np.int32)])
            tfs = np.concatenate([tfs, np.asarray(tail[1], dtype=np.float32)])
        return slots, tfs

    def collection_stats(self, alive: npt.NDArray[np.bool_], n_slots: int) -> tuple[int, float]:
        """Live document count and average length (BM25's N and avgdl)."""
        live = alive[:n_slots]
        n_docs = int(np.count_nonzero(live))
        if n_docs == 0:
            return 0, 1.0
        return n_docs, float(self.doc_len[:n_slots][live].mean()) or 1.0

    def scores(
        self,
        query_tokens: Iterable[str],
        alive: npt.NDArray[np.bool_],
        n_slots: int,
        stats: tuple[int, float] | None = None,
        version: Hashable | None = None,
        addressed: tuple[npt.NDArray[np.int32], Mapping[str, Sequence[int]]] | None = None,
        idf_power: float = 1.0,
    ) -> npt.NDArray[np.float32]:
        """BM25 score of every slot (0 for slots matching no query term).

        ``stats`` is :meth:`collection_stats` for the same ``alive`` (computed if omitted).
        ``version`` names the current state of the documents, of ``alive`` and of the
        addressed-name codes (it must change whenever any does); with it, per-term work is
        cached for the next query.
        ``addressed`` is (each slot's addressed-name code, term -> the codes of the names it
        is the token of): a slot addressing someone by a query term does not match that term
        (see :func:`.speakers.vocative`: "good luck today Kate!!" is not about Kate, it is said
        to her; who said what to whom is the re-ranking's speaker boost).
        Each term's idf is raised to ``idf_power`` (:attr:`.hybrid.Fusion.idf_power`).
        """
        return self.matches(query_tokens, alive, n_slots, stats, version, addressed, idf_power)[0]

    def matches(
        self,
        query_tokens: Iterable[str],
        alive: npt.NDArray[np.bool_],
        n_slots: int,
        stats: tuple[int, float] | None = None,
        version: Hashable | None = None,
        addressed: tuple[npt.NDArray[np.int32], Mapping[str, Sequence[int]]] | None = None,
        idf_power: float = 1.0,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """(:meth:`scores`, the slots scoring above 0 in increasing order) for the same
        arguments.

        Each cached term holds its postings' *impacts* (a posting's BM25 score for a query
        holding the term once, computed in the order a fresh query computes it, so a cached
        query gives the same floats to the bit), so a query costs one scatter-add over each
        term's postings; the slots it touched come from those postings rather than from a
        pass over every slot, when they are few.
        """
        scores = np.zeros(n_slots, dtype=np.float32)
        n_docs, avgdl = stats if stats is not None else self.collection_stats(alive, n_slots)
        if n_docs == 0:
            return scores, np.zeros(0, dtype=np.int64)
        live = alive[:n_slots]
        hits: list[npt.NDArray[np.int32]] = []
        every = False  # some postings were zeroed (addressed): they may score 0
        key = (version, n_docs, avgdl)
        for term, qtf in Counter(query_tokens).items():
            tid = self.vocab.get(term)
            if tid is None:
                continue
            entry = self._cache.get((tid, idf_power)) if version is not None else None
            if entry is not None and entry.key == key:
                self._cache.move_to_end((tid, idf_power))
            else:
                slots, tfs = self.postings(tid)
                keep = live[slots]
                slots, tfs = slots[keep], tfs[keep]
                if len(slots) == 0:
                    continue
                norm = K1 * (1.0 - B + B * self.doc_len[slots] / avgdl)
                denominator = tfs + norm
                df = len(slots)
                idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
                if idf_power != 1.0:
                    idf **= idf_power
                # In the order a query holding the term once computes it (qtf * idf == idf).
                impact = np.asarray(idf * tfs * (K1 + 1.0) / denominator, dtype=np.float32)
                entry = _Term(key, slots, tfs, denominator, impact)
                if version is not None:
                    self._keep((tid, idf_power), entry)
            slots = entry.slots
            codes = addressed[1].get(term) if addressed is not None else None
            zeroed = False
            if qtf == 1 and not codes:
                part = entry.impact  # never written to: it is the cache's own array
            elif qtf == 1 and codes and addressed is not None:
                known = entry.addressed
                if known is None or known[0] != tuple(codes):
                    part, zeroed = _unaddressed(entry.impact, addressed[0][slots], codes)
                    # Valid with the key: the caller's version changes with the codes.
                    entry.addressed = known = (tuple(codes), part, zeroed)
                _, part, zeroed = known
            else:
                df = len(slots)
                idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
                if idf_power != 1.0:
                    idf **= idf_power
                part = qtf * idf * entry.tfs * (K1 + 1.0) / entry.denominator
                if codes and addressed is not None:
                    part, zeroed = _unaddressed(part, addressed[0][slots], codes)
            every |= zeroed
            scores[slots] += part
            hits.append(slots)
        return scores, self._touched(scores, hits, every)

    @staticmethod
    def _touched(
        scores: npt.NDArray[np.float32], hits: list[npt.NDArray[np.int32]], every: bool
    ) -> npt.NDArray[np.int64]:
        """The slots with a positive score, in increasing order: from the postings of the
        query's terms (each in slot order) when they are few next to the slots, else by a
        pass over every score (a sort costs ~12x more per element than that pass)."""
        total = sum(len(h) for h in hits)
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        if total * 12 > len(scores):
            # Through a mask: numpy finds the set entries of a bool array 4x faster than the
            # nonzero ones of a float array, comparison included.
            return np.flatnonzero(scores > 0)
        if len(hits) == 1:
            touched: npt.NDArray[np.int64] = hits[0].astype(np.int64)
        else:
            ordered = np.concatenate(hits).astype(np.int64)
            ordered.sort()
            keep = np.empty(len(ordered), dtype=np.bool_)
            keep[0] = True
            np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
            touched = ordered[keep]
        # A term whose addressed postings were zeroed leaves some of them at 0.
        return touched[scores[touched] > 0] if every else touched

    def _keep(self, at: tuple[int, float], entry: _Term) -> None:
        old = self._cache.pop(at, None)
        if old is not None:
            self._cached_postings -= len(old.slots)
        self._cache[at] = entry
        self._cached_postings += len(entry.slots)
        while self._cached_postings > _CACHE_POSTINGS and self._cache:
            _, evicted = self._cache.popitem(last=False)
            self._cached_postings -= len(evicted.slots)

    def compacted(self, remap: npt.NDArray[np.int64]) -> KeywordIndex:
        """A new index holding only slots with ``remap[slot] >= 0``, renumbered to it.

        Every term's postings are its *head* (the base run, or for a term read since, its
        merged array, which begins with the base) followed by its tail, both in slot order.
        The heads are taken as they are (the base itself when no term was merged), the tails
        are spliced in after their term's head with one :func:`numpy.insert`, and retired
        slots are dropped with one mask: no sort, no per-posting term ids, and nothing copied
        at all when nothing was written or retired since the base was built. ``remap`` must
        keep the order of the slots it keeps (as compaction does).
        """
        new = KeywordIndex()
        n = len(remap)
        keep_old = np.flatnonzero(remap >= 0)
        n_new = len(keep_old)
        new.doc_len = np.zeros(max(n_new, 1), dtype=np.float32)
        new.doc_len[remap[keep_old]] = self.doc_len[keep_old]
        slots, tfs, lengths = self._spliced()
        if n_new == n:  # nothing retired: the slots keep their numbers
            mapped, counts = slots, lengths
        else:
            renumbered = remap[slots]
            kept = renumbered >= 0
            mapped, tfs = renumbered[kept].astype(np.int32), tfs[kept]
            # Kept postings per term: differences of the running count at the term bounds.
            running = np.zeros(len(kept) + 1, dtype=np.int64)
            np.cumsum(kept, out=running[1:])
            bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=bounds[1:])
            counts = running[bounds[1:]] - running[bounds[:-1]]
        used = counts > 0
        if used.all():
            new.vocab = dict(self.vocab)  # ids are given in insertion order: the same order
        else:
            terms = sorted(self.vocab, key=self.vocab.__getitem__)
            kept_terms = itertools.compress(terms, used.tolist())
            new.vocab = {term: i for i, term in enumerate(kept_terms)}
            counts = counts[used]
        offsets = np.zeros(len(new.vocab) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        new._base_offsets = offsets
        new._base_slots = mapped.astype(np.int32, copy=False)
        new._base_tfs = tfs.astype(np.float32, copy=False)
        return new

    def _spliced(
        self,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Every posting in term order, each term's in slot order: (slots, tfs, the number
        of postings of each term id). The base's arrays themselves when nothing was added
        since it was built (they are only read)."""
        n_terms = len(self.vocab)
        n_base = len(self._base_offsets) - 1
        base_offsets = self._base_offsets.astype(np.int64, copy=False)
        lengths = np.zeros(n_terms, dtype=np.int64)
        lengths[:n_base] = np.diff(base_offsets)
        if self._merged:
            # The heads: the base's runs between merged terms, and each merged array (which
            # holds its term's base run) in its term's place.
            slot_parts: list[npt.NDArray[np.int32]] = []
            tf_parts: list[npt.NDArray[np.float32]] = []
            at = 0  # first base term not yet taken
            for tid in sorted(self._merged):
                slots, tfs, used = self._merged[tid]
                lo, hi = base_offsets[min(at, n_base)], base_offsets[min(tid, n_base)]
                slot_parts += [self._base_slots[lo:hi], slots[:used]]
                tf_parts += [self._base_tfs[lo:hi], tfs[:used]]
                lengths[tid] = used
                at = tid + 1
            lo = base_offsets[min(at, n_base)]
            slot_parts.append(self._base_slots[lo:])
            tf_parts.append(self._base_tfs[lo:])
            head_slots = np.concatenate(slot_parts).astype(np.int32, copy=False)
            head_tfs = np.concatenate(tf_parts).astype(np.float32, copy=False)
        else:
            head_slots = self._base_slots.astype(np.int32, copy=False)
            head_tfs = self._base_tfs.astype(np.float32, copy=False)
        if not self._tail:
            return head_slots, head_tfs, lengths
        tail_tids = np.fromiter(self._tail, dtype=np.int64, count=len(self._tail))
        tail_tids.sort()
        tails = [self._tail[tid] for tid in tail_tids.tolist()]
        tail_lengths = np.fromiter((len(s) for s, _ in tails), dtype=np.int64, count=len(tails))
        total = int(tail_lengths.sum())
        tail_slots = np.fromiter(
            itertools.chain.from_iterable(s for s, _ in tails), dtype=np.int32, count=total
        )
        tail_tfs = np.fromiter(
            itertools.chain.from_iterable(t for _, t in tails), dtype=np.float32, count=total
        )
        # Each tail posting goes in just after its term's head (numpy.insert keeps the order
        # of values inserted at the same place).
        head_ends = np.cumsum(lengths)
        at_end = np.repeat(head_ends[tail_tids], tail_lengths)
        lengths[tail_tids] += tail_lengths
        return (
            np.insert(head_slots, at_end, tail_slots),
            np.insert(head_tfs, at_end, tail_tfs),
            lengths,
        )

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The base arrays (call on a compacted index: its tail is empty)."""
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        return {
            "kw_vocab": np.frombuffer("\n".join(terms).encode(), dtype=np.uint8),
            "kw_offsets": self._base_offsets,
            "kw_slots": self._base_slots,
            "kw_tfs": self._base_tfs,
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, npt.NDArray[np.generic]], doc_len: npt.NDArray[np.float32]
    ) -> KeywordIndex:
        new = cls()
        text = arrays["kw_vocab"].tobytes().decode()
        terms = text.split("\n") if text else []
        new.vocab = {t: i for i, t in enumerate(terms)}
        # Not copied again when already of the right type (the caller's arrays are its own;
        # they are only read, never written in place).
        new._base_offsets = arrays["kw_offsets"].astype(np.int64, copy=False)
        new._base_slots = arrays["kw_slots"].astype(np.int32, copy=False)
        new._base_tfs = arrays["kw_tfs"].astype(np.float32, copy=False)
        new.doc_len = doc_len.astype(np.float32, copy=True)
        return new
