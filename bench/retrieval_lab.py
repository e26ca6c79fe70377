"""A fast, array-level model of Severance's hybrid ranking, for measuring retrieval candidates.

``Session.recall`` goes through the store (decryption, sync, snapshots), which is right for
the published figures and slow for a grid of a hundred settings. This lab scores every turn of
a conversation with the same parts — the same tokenizer and BM25 (k1 1.2, b 0.75), the same
vectors, convex fusion over the top-100 dense and keyword candidates, conversation context,
and the query-analysis boosts of :mod:`severance.search.query` over the best 50 — as numpy
arrays, and adds each candidate change as a switch of :class:`LabConfig`.
:func:`bench.retrieval_eval.main` checks that the lab's default reproduces ``Session.recall``
before any lab row is trusted.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.locomo import Conversation
from bench.metrics import QuestionScore, score_question
from bench.retrieval_data import TwoCacheEmbedder
from severance.search.keyword import STOPWORDS, tokenize
from severance.search.query import analyze, has_time_expression
from severance.search.scoring import REPEAT_COSINE
from severance.search.speakers import SPEAKER_PREFIX, VOCATIVES, learn_aliases, speaker_of, vocative

__all__ = ["LabConfig", "LabConversation", "run_config"]

K1, B = 1.2, 0.5  # Severance's BM25 (b 0.75 until issue 17's third session)
POOL = 100

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LabConfig:
    """One setting of the lab: Severance's index as it is today (Snowball tokens, BM25 k1
    1.2 and b 0.5) under the 0.2 fusion settings, plus candidate switches."""

    ingest: str = "episode"  # episode (speaker metadata, context on) | plain (remember(text))
    mode: str = "hybrid"  # hybrid | dense | keyword
    dense_weight: float = 0.65
    keyword_weight: float = 0.35
    context: float = 0.7
    context_gap: float = 3600.0  # seconds; math.inf: neighbours by order alone
    context_plain: bool = False  # context for plain memories too (not only episodes)
    window: int = 1  # neighbours each side that lend credit
    window_decay: float = 0.5  # credit of the j-th neighbour: decay ** (j - 1)
    session_gap: float | None = None  # a gap this long (s) starts a new exchange
    session_weight: float = 0.0  # + weight * best base score of the exchange
    speaker_boost: float = 0.2
    time_boost: float = 0.3
    date_boost: float = 1.0
    rerank_depth: int = 50
    speaker_from_text: bool = False  # a leading "Name:" of the text names the speaker
    aliases: bool = False  # names the chat calls each speaker by, learned from the text
    aliases_from_candidates: bool = False  # learned from the re-ranked candidates alone
    prf_dense: float = 0.0  # + weight * mean vector of the top prf_docs fused results
    prf_docs: int = 3
    adaptive: float = 0.0  # dense weight moves by this * (agreement - 0.3)
    context_sum: bool = False  # credit from both neighbours (sum), not the best one
    diversity: float = 0.0  # share of score lost per earlier result of the same exchange
    diversity_gap: float = 6 * 3600.0
    context_after: float = 1.0  # credit from the turn after, as a share of the one before
    pool: int = POOL  # candidates taken from each of the dense and keyword lists
    k1: float = K1
    b: float = B
    temporal_dense_weight: float | None = None  # dense weight of 'when' questions (keyword: 1 - it)
    drop_vocative: str = ""  # keyword side: a name used to address someone is not indexed
    # ("any": every form :func:`vocative` finds; "greeting": "Hey Mel," / "thanks Jo" forms)
    # A repeat of a result ranked higher goes after the re-ranked head: "text" (the same
    # text), "scores" (as the index tells: speaker, BM25 score, vectors within REPEAT_COSINE)
    dedupe: str = ""
    stemmer: str = "snowball"  # snowball (Severance's tokenizer) | light (the suffix strip of 0.2)
    # Contextual dense vectors: a turn embedded together with the turn before it (by order,
    # what a store knows at write time). "replace": that vector instead of the turn's own;
    # "max": the better cosine of the two; "mix": ctx_mix * contextual + (1 - it) * own;
    # "mixnorm": the cosine of that mix of the two vectors normalised (one unit vector).
    ctx_vectors: str = ""
    ctx_mix: float = 0.5
    ctx_vec_gap: float = math.inf  # the turn before lends its text only within this (s)
    # Keyword document expansion: the neighbours' tokens (the turn before; with kw_next, and
    # the one after) added to a turn's BM25 document at this weight (index time).
    kw_expand: float = 0.0
    kw_next: bool = False
    # RM3-style feedback on the keyword side: + rm3 * BM25 of the rm3_terms best terms of the
    # rm3_docs best results (weighted by their tf share, idf and the result's score).
    rm3: float = 0.0
    rm3_docs: int = 5
    rm3_terms: int = 10
    idf_power: float = 1.0  # query term weighting: idf ** this (> 1 sharpens rare words)
    temporal_idf_power: float | None = None  # idf power of 'when' questions (None: idf_power)
    query_stop: bool = False  # question verbs ("tell", "think", "kind") left out of the query
    # Cosines mapped onto 0-1 across the dense candidate list (its last to its best) before
    # the convex mix, as BM25 is divided by its best (a calibration for compressed cosines).
    dense_range: bool = False


_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)


def _light_stem(word: str) -> str:
    """Severance's suffix strip before the Snowball stemmer (kept for its ablation row)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        return word[:-2] if not word.endswith("ied") else word[:-3] + "y"
    return word


def lab_tokenize(text: str, stemmer: str) -> list[str]:
    """Severance's tokens (``snowball``: English Snowball, today's tokenizer), or the same
    words with the light suffix strip of before (``light``)."""
    if stemmer == "snowball":
        return tokenize(text)
    words = [w for w in _WORD_RE.findall(text.lower()) if w not in STOPWORDS and len(w) <= 40]
    return [_light_stem(w) for w in words]


def greeted(text: str, speaker: str | None) -> str | None:
    """:func:`vocative` without its closing-word form ("... ok Kate"): only "Hey Mel," and
    "thanks Jo" forms (a closing capitalised word is as often a place or a title)."""
    if speaker is not None:
        m = SPEAKER_PREFIX.match(text)
        if m and m.group(1) == speaker:
            text = text[m.end() :]
    for pattern in VOCATIVES[1:]:
        for word in pattern.findall(text):
            if word[0].isupper() and word not in ("I", "The", "A", "So", "And", "But"):
                return str(word).lower()
    return None


def _name_words(name: str) -> frozenset[str]:
    return frozenset(w.lower() for w in re.findall(r"[^\W\d_][\w'’-]*", name) if len(w) > 1)


#: Words of questions that ask rather than say what they are about ("What kind of books
#: would she enjoy?", "What did Kate tell me?").
QUERY_STOP = frozenset(
    tokenize(
        "kind type sort think thought feel felt tell told say said mention mentioned describe "
        "likely probably might enjoy enjoyed something anything thing things much many"
    )
)

_CAPITALISED = re.compile(r"\b([A-Z][a-z]{1,15})\b")


def address_names(texts: Sequence[str]) -> frozenset[str]:
    """Lower-case words :func:`vocative` finds at least twice, capitalised at least 75% of
    the time in that use: names people are called by, not a place or a title that happens to
    close a message now and then ("we loved Lisbon" — Lisbon is mostly said mid-sentence)."""
    as_vocative: Counter[str] = Counter()
    capitalised: Counter[str] = Counter()
    for t in texts:
        who = speaker_of(t, {})
        body = t
        if who is not None:
            m = SPEAKER_PREFIX.match(t)
            body = t[m.end() :] if m else t
        for w in _CAPITALISED.findall(body):
            capitalised[w.lower()] += 1
        word = vocative(t, who)
        if word is not None:
            as_vocative[word] += 1
    return frozenset(w for w, c in as_vocative.items() if c >= 2 and c >= 0.75 * capitalised[w])


@dataclass
class LabConversation:
    """One conversation as arrays: vectors, BM25 postings, order, speakers."""

    conv: Conversation
    embedder: TwoCacheEmbedder
    vectors: F64 = field(init=False)
    occurred: F64 = field(init=False)
    order: I64 = field(init=False)
    place: I64 = field(init=False)

    def __post_init__(self) -> None:
        turns = self.conv.turns
        self.texts = [t.document for t in turns]
        self.ids = [t.dia_id for t in turns]
        self.n = len(turns)
        self.vectors = np.stack([self.embedder.vector(t) for t in self.texts]).astype(np.float64)
        self.occurred = np.array([t.occurred_at.timestamp() for t in turns], dtype=np.float64)
        seq = np.arange(self.n)
        self.order = np.lexsort((seq, self.occurred))
        self.place = np.empty(self.n, dtype=np.int64)
        self.place[self.order] = seq
        self.when = [t.occurred_at for t in turns]
        self._postings: dict[str, tuple[F64, dict[str, tuple[I64, F64]]]] = {}
        self.meta_speaker = [_name_words(t.speaker) for t in turns]
        self.text_speaker = [_name_words(speaker_of(t, {}) or "") for t in self.texts]
        aliases = learn_aliases([t.speaker for t in turns], [vocative(t.text, None) for t in turns])
        self.alias_of = [aliases.get(t.speaker, frozenset()) for t in turns]
        self.has_time = np.array([has_time_expression(t) for t in self.texts])
        self._sessions: dict[float, I64] = {}
        self._ctx: dict[float, F64] = {}
        self._tokens: dict[str, list[list[str]]] = {}
        # Names used to address someone at least twice, and capitalised mostly in that use.
        self.address_names = address_names(self.texts)
        # Token -> the turns addressing someone by it (what the index's addressed codes say).
        by_word: dict[str, list[int]] = {}
        for i, t in enumerate(self.texts):
            word = vocative(t, speaker_of(t, {}))
            toks = tokenize(word) if word is not None else []
            if toks:
                by_word.setdefault(toks[0], []).append(i)
        self.addressed_slots = {w: np.array(v, dtype=np.int64) for w, v in by_word.items()}

    def neighbour(self, step: int, gap: float = math.inf) -> I64:
        """The turn ``step`` places away by order (-1: none, or dated more than ``gap`` off)."""
        at = self.place + step
        inside = (at >= 0) & (at < self.n)
        other = np.full(self.n, -1, dtype=np.int64)
        other[inside] = self.order[at[inside]]
        far = inside.copy()
        far[inside] = np.abs(self.occurred[other[inside]] - self.occurred[inside]) > gap
        other[far] = -1
        return other

    def ctx_vectors(self, gap: float = math.inf) -> F64:
        """Each turn embedded together with the turn before it (its own text if none)."""
        key = float(gap)
        got = self._ctx.get(key)
        if got is None:
            prev = self.neighbour(-1, gap)
            texts = [
                f"{self.texts[p]}\n{t}" if p >= 0 else t
                for t, p in zip(self.texts, prev.tolist(), strict=True)
            ]
            got = self._ctx[key] = self.embedder.contextual(texts).astype(np.float64)
        return got

    def tokens(self, stemmer: str) -> list[list[str]]:
        got = self._tokens.get(stemmer)
        if got is None:
            got = self._tokens[stemmer] = [lab_tokenize(t, stemmer) for t in self.texts]
        return got

    def _index(
        self,
        stemmer: str,
        k1: float = K1,
        b: float = B,
        drop_vocative: str = "",
        expand: float = 0.0,
        expand_next: bool = False,
    ) -> tuple[F64, dict[str, tuple[I64, F64]]]:
        key = f"{stemmer}/{k1}/{b}/{drop_vocative}/{expand}/{expand_next}"
        got = self._postings.get(key)
        if got is None:
            toks = list(self.tokens(stemmer))
            if drop_vocative and not drop_vocative.startswith("query"):
                for i, t in enumerate(self.texts):
                    who = speaker_of(t, {})
                    if drop_vocative == "any":
                        word = vocative(t, who)
                    elif drop_vocative == "alias":
                        word = vocative(t, who)
                        word = word if word in self.address_names else None
                    else:
                        word = greeted(t, who)
                    if word is not None:
                        gone = set(lab_tokenize(word, stemmer))
                        toks[i] = [x for x in toks[i] if x not in gone]
            counts = [{w: float(c) for w, c in Counter(ts).items()} for ts in toks]
            doc_len = np.array([len(t) for t in toks], dtype=np.float64)
            if expand:
                steps = (-1, 1) if expand_next else (-1,)
                for step in steps:
                    other = self.neighbour(step, 12 * 3600.0)
                    for i, j in enumerate(other.tolist()):
                        if j >= 0:
                            for w in toks[j]:
                                counts[i][w] = counts[i].get(w, 0.0) + expand
                            doc_len[i] += expand * len(toks[j])
            avgdl = float(doc_len.mean()) or 1.0
            norm = k1 * (1.0 - b + b * doc_len / avgdl)
            post: dict[str, tuple[list[int], list[float]]] = {}
            for i, cs in enumerate(counts):
                for term, tf in cs.items():
                    ids, tfs = post.setdefault(term, ([], []))
                    ids.append(i)
                    tfs.append(tf)
            postings = {
                t: (np.array(i, dtype=np.int64), np.array(f, dtype=np.float64))
                for t, (i, f) in post.items()
            }
            got = self._postings[key] = (norm, postings)
        return got

    def bm25(self, query: str | Mapping[str, float], cfg: LabConfig) -> F64:
        """BM25 of every turn for ``query`` (a text, or term -> weight)."""
        out = np.zeros(self.n)
        norm, postings = self._index(
            cfg.stemmer, cfg.k1, cfg.b, cfg.drop_vocative, cfg.kw_expand, cfg.kw_next
        )
        terms: Mapping[str, float]
        if isinstance(query, str):
            terms = {
                w: float(c)
                for w, c in Counter(lab_tokenize(query, cfg.stemmer)).items()
                if not (cfg.query_stop and w in QUERY_STOP)
            }
        else:
            terms = query
        skip = self.addressed_slots if cfg.drop_vocative.startswith("query") else {}
        for term, qtf in terms.items():
            p = postings.get(term)
            if p is None:
                continue
            idx, tf = p
            idf = math.log(1.0 + (self.n - len(idx) + 0.5) / (len(idx) + 0.5)) ** cfg.idf_power
            part = qtf * idf * tf * (cfg.k1 + 1.0) / (tf + norm[idx])
            gone = skip.get(term)
            if gone is not None and (
                cfg.drop_vocative == "query" or len(gone) >= max(2.0, 0.5 * len(idx))
            ):
                # A memory addressing someone by this word does not match it.
                part = np.where(np.isin(idx, gone), 0.0, part)
            out[idx] += part
        return out

    def idf(self, term: str, stemmer: str) -> float:
        _, postings = self._index(stemmer)
        p = postings.get(term)
        df = 0 if p is None else len(p[0])
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def sessions(self, gap: float) -> I64:
        got = self._sessions.get(gap)
        if got is None:
            t = self.occurred[self.order]
            starts = np.concatenate([[0], (np.diff(t) > gap).astype(np.int64)])
            in_order = np.cumsum(starts)
            got = np.empty(self.n, dtype=np.int64)
            got[self.order] = in_order
            self._sessions[gap] = got
        return got


def _top(scores: F64, k: int, keep: npt.NDArray[np.bool_] | None = None) -> I64:
    idx = np.arange(len(scores)) if keep is None else np.flatnonzero(keep)
    if len(idx) == 0:
        return idx
    order = np.lexsort((idx, -scores[idx]))[:k]
    return idx[order]


def _fused(lc: LabConversation, cfg: LabConfig, cos: F64, bm: F64) -> tuple[I64, F64]:
    """Slots scored and their fused, context-credited scores (before the re-ranking)."""
    dense = _top(cos, cfg.pool)
    keyword = _top(bm, cfg.pool, bm > 0)
    if cfg.mode == "dense":
        return dense, cos[dense]
    if cfg.mode == "keyword":
        return keyword, bm[keyword]
    best = float(bm[keyword[0]]) if len(keyword) else 0.0
    if cfg.dense_range and len(dense) > 1 and cos[dense[0]] > cos[dense[-1]]:
        cos = (cos - cos[dense[-1]]) / (cos[dense[0]] - cos[dense[-1]])
    wd, wk = cfg.dense_weight, cfg.keyword_weight
    if cfg.adaptive and len(keyword):
        agree = len(set(dense[:10].tolist()) & set(keyword[:10].tolist())) / 10.0
        wd = min(1.0, max(0.0, wd + cfg.adaptive * (agree - 0.3)))
        wk = 1.0 - wd
    base = wd * cos + (wk * bm / best if best > 0 else 0.0)
    cand = np.unique(np.concatenate([dense, keyword]))
    scored = np.zeros(lc.n, dtype=bool)
    scored[cand] = True
    use_context = cfg.context > 0 and (cfg.ingest == "episode" or cfg.context_plain)
    final = np.where(scored, base, 0.0)
    if use_context:
        own = np.where(scored, base, 0.0)
        credit = np.zeros(lc.n)
        extra = np.zeros(lc.n, dtype=bool)
        for j in range(1, cfg.window + 1):
            for step in (-j, j):
                at = lc.place + step
                inside = (at >= 0) & (at < lc.n)
                other = np.full(lc.n, -1)
                other[inside] = lc.order[at[inside]]
                ok = inside.copy()
                ok[inside] = (
                    np.abs(lc.occurred[other[inside]] - lc.occurred[inside]) <= cfg.context_gap
                )
                # a scored slot brings in its (unscored) neighbours, scored with the base
                extra[other[ok & scored]] = True
        extra &= ~scored
        own = np.where(scored | extra, base, 0.0)
        for j in range(1, cfg.window + 1):
            weight = cfg.context * cfg.window_decay ** (j - 1)
            for step in (-j, j):
                at = lc.place + step
                inside = (at >= 0) & (at < lc.n)
                other = np.full(lc.n, -1)
                other[inside] = lc.order[at[inside]]
                ok = inside.copy()
                ok[inside] = (
                    np.abs(lc.occurred[other[inside]] - lc.occurred[inside]) <= cfg.context_gap
                )
                lend = np.zeros(lc.n)
                lend[ok] = np.maximum(own[other[ok]], 0.0)
                if step > 0:
                    lend *= cfg.context_after
                credit = (
                    credit + weight * lend if cfg.context_sum else np.maximum(credit, weight * lend)
                )
        scored |= extra
        final = np.where(scored, base + credit, 0.0)
    if cfg.session_gap is not None and cfg.session_weight:
        sess = lc.sessions(cfg.session_gap)
        best_of = np.zeros(int(sess.max()) + 1)
        np.maximum.at(best_of, sess[scored], base[scored])
        final = np.where(scored, final + cfg.session_weight * best_of[sess], 0.0)
    slots = np.flatnonzero(scored)
    return slots, final[slots]


def _rank(
    lc: LabConversation,
    cfg: LabConfig,
    query: str,
    cos: F64,
    bm: F64,
    k: int,
    vectors: F64 | None = None,
) -> list[int]:
    """The best ``k`` slots; ``vectors`` are the turns' stored vectors (repeats compare
    them; default: the turns' own)."""
    vecs = lc.vectors if vectors is None else vectors
    slots, scores = _fused(lc, cfg, cos, bm)
    order = np.lexsort((slots, -scores))
    slots, scores = slots[order], scores[order]
    a = analyze(query)
    depth = min(len(slots), cfg.rerank_depth)
    if cfg.mode == "hybrid" and depth > 0 and (a.names or a.temporal or a.dates):
        head, hs = slots[:depth], scores[:depth].copy()
        local: dict[Any, frozenset[str]] = {}
        if cfg.aliases_from_candidates:
            by_time = sorted(head.tolist(), key=lambda x: int(lc.place[x]))
            meta = [
                {"speaker": lc.conv.turns[x].speaker} if cfg.ingest == "episode" else {}
                for x in by_time
            ]
            who_of = [speaker_of(lc.texts[x], m) for x, m in zip(by_time, meta, strict=True)]
            local = learn_aliases(
                who_of, [vocative(lc.texts[x], w) for x, w in zip(by_time, who_of, strict=True)]
            )
        for i, s in enumerate(head.tolist()):
            boost = 0.0
            if cfg.speaker_boost and a.names:
                words = lc.meta_speaker[s] if cfg.ingest == "episode" else frozenset()
                if cfg.speaker_from_text and not words:
                    words = lc.text_speaker[s]
                if cfg.aliases and words:
                    words = words | lc.alias_of[s]
                if cfg.aliases_from_candidates and words:
                    who = lc.conv.turns[s].speaker
                    if cfg.ingest != "episode":
                        who = speaker_of(lc.texts[s], {}) or who
                    words = words | local.get(who, frozenset())
                if a.names & words:
                    boost += cfg.speaker_boost
            if cfg.time_boost and a.temporal and lc.has_time[s]:
                boost += cfg.time_boost
            if cfg.date_boost and a.dates and any(d.matches(lc.when[s]) for d in a.dates):
                boost += cfg.date_boost
            hs[i] = hs[i] + boost * abs(hs[i])
        re_order = np.argsort(-hs, kind="stable")
        slots = np.concatenate([head[re_order], slots[depth:]])
        scores = np.concatenate([hs[re_order], scores[depth:]])
    if cfg.mode == "hybrid" and cfg.diversity and len(slots):
        # Each earlier result from the same exchange lowers a result's score by this share.
        depth = min(len(slots), max(cfg.rerank_depth, k))
        sess = lc.sessions(cfg.diversity_gap)[slots[:depth]]
        seen: Counter[int] = Counter()
        adjusted = scores[:depth].copy()
        for i, x in enumerate(sess.tolist()):
            adjusted[i] *= (1.0 - cfg.diversity) ** seen[x]
            seen[x] += 1
        re_order = np.argsort(-adjusted, kind="stable")
        slots = np.concatenate([slots[:depth][re_order], slots[depth:]])
    if cfg.mode == "hybrid" and cfg.dedupe and len(slots):
        depth = min(len(slots), max(cfg.rerank_depth, k))
        first, later = [], []
        seen_key: set[str] = set()
        kept: list[int] = []
        for x in slots[:depth].tolist():
            who = lc.conv.turns[x].speaker
            if cfg.dedupe == "text":
                key = lc.conv.turns[x].text.strip().lower()
                repeat = key in seen_key
                seen_key.add(key)
            else:  # as the index tells: speaker, BM25 score, vectors within REPEAT_COSINE
                repeat = any(
                    lc.conv.turns[y].speaker == who
                    and np.float32(bm[y]) == np.float32(bm[x])
                    and float(vecs[x] @ vecs[y]) >= REPEAT_COSINE
                    for y in kept
                )
            (later if repeat else first).append(x)
            kept.append(x)
        slots = np.concatenate([np.asarray(first + later, dtype=np.int64), slots[depth:]])
    return [int(x) for x in slots[:k]]


def _feedback_terms(
    lc: LabConversation, cfg: LabConfig, top: list[int], query: str
) -> dict[str, float]:
    """RM3's expansion terms: tf share in each feedback result x its rank weight x idf, the
    best ``rm3_terms`` not in the query, scaled so the best is 1."""
    asked = set(lab_tokenize(query, cfg.stemmer))
    weight: dict[str, float] = {}
    toks = lc.tokens(cfg.stemmer)
    for r, d in enumerate(top):
        if not toks[d]:
            continue
        for term, tf in Counter(toks[d]).items():
            if term not in asked:
                share = tf / len(toks[d]) / (r + 1) * lc.idf(term, cfg.stemmer)
                weight[term] = weight.get(term, 0.0) + share
    best = sorted(weight.items(), key=lambda tw: (-tw[1], tw[0]))[: cfg.rm3_terms]
    if not best:
        return {}
    top_w = best[0][1]
    return {t: w / top_w for t, w in best}


def run_config(
    convs: Sequence[LabConversation], cfg: LabConfig, k: int = 10
) -> list[QuestionScore]:
    """Score every scorable question of ``convs`` under ``cfg``."""
    out: list[QuestionScore] = []
    for lc in convs:
        for q in lc.conv.questions:
            if not q.scorable:
                continue
            qv = lc.embedder.vector(q.question).astype(np.float64)
            cos = lc.vectors @ qv
            stored = None
            if cfg.ctx_vectors:
                ctx_vecs = lc.ctx_vectors(cfg.ctx_vec_gap)
                ctx = ctx_vecs @ qv
                if cfg.ctx_vectors == "replace":
                    cos, stored = ctx, ctx_vecs
                elif cfg.ctx_vectors == "mixnorm":  # one unit vector per turn, as stored
                    mixed = cfg.ctx_mix * ctx_vecs + (1.0 - cfg.ctx_mix) * lc.vectors
                    stored = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
                    cos = stored @ qv
                elif cfg.ctx_vectors == "max":
                    cos = np.maximum(cos, ctx)
                else:
                    cos = cfg.ctx_mix * ctx + (1.0 - cfg.ctx_mix) * cos
            temporal = cfg.temporal_idf_power is not None and analyze(q.question).temporal
            power = cfg.temporal_idf_power if temporal else cfg.idf_power
            bm = lc.bm25(q.question, dataclasses.replace(cfg, idf_power=power) if temporal else cfg)
            asked = cfg
            if cfg.temporal_dense_weight is not None and analyze(q.question).temporal:
                w = cfg.temporal_dense_weight
                asked = dataclasses.replace(cfg, dense_weight=w, keyword_weight=1.0 - w)
            if cfg.prf_dense and cfg.mode == "hybrid":
                top = _rank(lc, asked, q.question, cos, bm, cfg.prf_docs)
                q2 = qv + cfg.prf_dense * lc.vectors[top].mean(axis=0)
                q2 /= np.linalg.norm(q2) or 1.0
                cos = lc.vectors @ q2
            if cfg.rm3 and cfg.mode == "hybrid":
                bm = bm + cfg.rm3 * lc.bm25(
                    _feedback_terms(lc, asked, _rank(lc, asked, q.question, cos, bm, cfg.rm3_docs),
                                    q.question), cfg)  # fmt: skip
            ranked = _rank(lc, asked, q.question, cos, bm, k, stored)
            out.append(
                score_question(q.qid, q.category, q.evidence, [lc.ids[i] for i in ranked], ks=(k,))
            )
    return out
