"""Retrieval on both development sets in one run: the systems, and the candidates' ablation.

``python -m bench.retrieval_eval`` scores, on LoCoMo dev and the synthetic chats
(:mod:`bench.retrieval_data`), recall@10 over categories 1-4 and per category (multi-hop,
temporal, open-domain, single-hop) of

* the systems themselves, through their public APIs: plain BM25, Severance hybrid with
  conversation ingest (``episode`` turns with speaker metadata), Severance hybrid with plain
  ``remember(text, occurred_at=...)``, Severance dense only and keyword only;
* the lab (:mod:`bench.retrieval_lab`): its model of the default, checked against the real
  rows above, then every candidate change of :data:`CANDIDATES` as one ablation row.

``--sets locomo-test`` adds the held-back LoCoMo conversations (for the final figure only;
nothing may be chosen on them). ``--no-lab`` / ``--no-systems`` run one half. Vectors come
from ``bench/.cache/``, so a rerun takes about a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.locomo import SCORED_CATEGORIES, Conversation
from bench.metrics import QuestionScore, latency_stats, score_question
from bench.retrieval_data import SETS, DevSet, TwoCacheEmbedder, load_set
from bench.retrieval_lab import LabConfig, LabConversation, run_config
from bench.systems.bm25 import BM25System
from bench.systems.severance_store import SeveranceSystem, persona_name

__all__ = [
    "CANDIDATES",
    "COLUMNS",
    "CONTEXTUAL_SETS",
    "STEPS",
    "main",
    "run_lab",
    "run_systems",
    "summarise",
]

#: (column, categories) of every table.
COLUMNS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("all", SCORED_CATEGORIES),
    ("multi-hop", (1,)),
    ("temporal", (2,)),
    ("open-domain", (3,)),
    ("single-hop", (4,)),
)

#: The 0.2 fusion settings (context for episodes, the turn before or after, within an hour) on
#: today's index (Snowball tokens, BM25 b 0.5): the ``ablation-5-context`` row.
_D = LabConfig()
_PLAIN = LabConfig(ingest="plain")
#: Candidate changes, each measured on its own against the default (episode ingest) and,
#: where it concerns plain memories, against plain ``remember(text)``.
CANDIDATES: tuple[tuple[str, LabConfig], ...] = (
    ("lab: default (episode ingest)", _D),
    ("lab: default (plain remember)", _PLAIN),
    ("context by order, no time window", dataclasses.replace(_D, context_gap=float("inf"))),
    ("context window 6 h", dataclasses.replace(_D, context_gap=6 * 3600.0)),
    ("context window 12 h", dataclasses.replace(_D, context_gap=12 * 3600.0)),
    ("context window 24 h", dataclasses.replace(_D, context_gap=24 * 3600.0)),
    ("context window ±2 turns (decay 0.5)", dataclasses.replace(_D, window=2)),
    ("context 0.5", dataclasses.replace(_D, context=0.5)),
    ("context 0.85", dataclasses.replace(_D, context=0.85)),
    ("plain: context for every kind", dataclasses.replace(_PLAIN, context_plain=True)),
    (
        "plain: context every kind, by order",
        dataclasses.replace(_PLAIN, context_plain=True, context_gap=float("inf")),
    ),
    ("plain: speaker from 'Name:' prefix", dataclasses.replace(_PLAIN, speaker_from_text=True)),
    ("aliases learned from the text", dataclasses.replace(_D, aliases=True)),
    (
        "exchange aggregation 0.2 (gap 2 h)",
        dataclasses.replace(_D, session_gap=7200.0, session_weight=0.2),
    ),
    (
        "exchange aggregation 0.1 (gap 2 h)",
        dataclasses.replace(_D, session_gap=7200.0, session_weight=0.1),
    ),
    (
        "exchange aggregation 0.2 (gap 6 h)",
        dataclasses.replace(_D, session_gap=6 * 3600.0, session_weight=0.2),
    ),
    ("dense PRF 0.3 (top 3)", dataclasses.replace(_D, prf_dense=0.3)),
    ("dense PRF 0.6 (top 3)", dataclasses.replace(_D, prf_dense=0.6)),
    ("adaptive fusion 0.5", dataclasses.replace(_D, adaptive=0.5)),
    ("adaptive fusion -0.5", dataclasses.replace(_D, adaptive=-0.5)),
    ("context from both neighbours (sum)", dataclasses.replace(_D, context_sum=True)),
    ("diversity 0.1 per earlier result of the exchange", dataclasses.replace(_D, diversity=0.1)),
    ("diversity 0.2 per earlier result of the exchange", dataclasses.replace(_D, diversity=0.2)),
    ("diversity 0.3 per earlier result of the exchange", dataclasses.replace(_D, diversity=0.3)),
    ("re-rank depth 100", dataclasses.replace(_D, rerank_depth=100)),
    ("light suffix strip (the 0.2 tokens)", dataclasses.replace(_D, stemmer="light")),
    ("BM25 b 0.75", dataclasses.replace(_D, b=0.75)),
    ("dense weight 0.55", dataclasses.replace(_D, dense_weight=0.55, keyword_weight=0.45)),
    ("dense weight 0.75", dataclasses.replace(_D, dense_weight=0.75, keyword_weight=0.25)),
)


def _steps(base: LabConfig) -> list[tuple[str, LabConfig]]:
    """The kept changes, each added to the ones before it (step 5 is today's default), what
    the index's own changes (tokens, BM25 b) add to it, then the candidates of :data:`NEXT`."""
    c1 = dataclasses.replace(base, context_gap=12 * 3600.0, context_plain=True)
    c2 = dataclasses.replace(c1, window=2, window_decay=0.85)
    c3 = dataclasses.replace(c2, aliases_from_candidates=True, speaker_from_text=True)
    c4 = dataclasses.replace(c3, rerank_depth=100)
    c5 = dataclasses.replace(c4, dedupe="scores")
    c6 = dataclasses.replace(c5, drop_vocative="query-alias")
    c7 = dataclasses.replace(c6, idf_power=3.0)
    tag = base.ingest
    rows = [
        (f"{tag} 1: + context for every kind, neighbours within 12 h (was 1 h)", c1),
        (f"{tag} 2: + context from ±2 turns (second at 0.85)", c2),
        (f"{tag} 3: + speaker from 'Name:' text, aliases learned from candidates", c3),
        (f"{tag} 4: + re-rank depth 100 (was 50)", c4),
        (f"{tag} 5: + repeats after the distinct results", c5),
        (f"{tag} 6: + a name a memory addresses someone by does not match it", c6),
        (f"{tag} 7: + each query word's idf cubed (the default)", c7),
        (f"{tag} 5, BM25 b 0.75 (before)", dataclasses.replace(c5, b=0.75)),
        (
            f"{tag} 5, light suffix strip and b 0.75 (the index before)",
            dataclasses.replace(c5, b=0.75, stemmer="light"),
        ),
    ]
    rows += [(f"{tag} 5 {name}", dataclasses.replace(c5, **change)) for name, change in NEXT]
    if tag == "episode":  # plain remember ranks as episodes do from row 3 on
        rows += [(f"{tag} 7 {name}", dataclasses.replace(c7, **change)) for name, change in NEXT7]
    return rows


#: Candidates measured on top of today's default (step 5), each on its own.
NEXT: tuple[tuple[str, dict[str, Any]], ...] = (
    ("+ BM25 k1 0.9", {"k1": 0.9}),
    ("+ BM25 b 0.3", {"b": 0.3}),
    ("+ context 0.8", {"context": 0.8}),
    ("+ credit from the turn after at 0.8 of the turn before's", {"context_after": 0.8}),
    ("+ neighbours by order alone", {"context_gap": math.inf}),
    ("+ exchange aggregation 0.1 (gap 2 h)", {"session_gap": 7200.0, "session_weight": 0.1}),
    ("+ speaker boost 0.3", {"speaker_boost": 0.3}),
    ("+ time boost 0.5", {"time_boost": 0.5}),
    ("+ dense weight 0.6", {"dense_weight": 0.6, "keyword_weight": 0.4}),
    ("+ dense weight 0.7", {"dense_weight": 0.7, "keyword_weight": 0.3}),
    ("+ 'when' questions: dense weight 0.5", {"temporal_dense_weight": 0.5}),
    ("+ 'when' questions: dense weight 0.8", {"temporal_dense_weight": 0.8}),
    ("+ names used to address someone not indexed", {"drop_vocative": "any"}),
    ("+ names after a greeting or before a comma not indexed", {"drop_vocative": "greeting"}),
    ("+ repeats by their text (needs the text)", {"dedupe": "text"}),
    # Issue 17, fourth session.
    ("+ contextual vectors (turn before + turn) instead", {"ctx_vectors": "replace"}),
    ("+ contextual vectors, the better cosine of the two", {"ctx_vectors": "max"}),
    ("+ contextual vectors mixed 0.5", {"ctx_vectors": "mix", "ctx_mix": 0.5}),
    ("+ contextual vectors mixed 0.3", {"ctx_vectors": "mix", "ctx_mix": 0.3}),
    ("+ contextual vectors mixed 0.5, within 12 h", {"ctx_vectors": "mix", "ctx_vec_gap": 43200.0}),
    ("+ keyword expansion from the turn before 0.1", {"kw_expand": 0.1}),
    ("+ keyword expansion from the turn before 0.25", {"kw_expand": 0.25}),
    ("+ keyword expansion from both neighbours 0.1", {"kw_expand": 0.1, "kw_next": True}),
    ("+ RM3 keyword feedback 0.2 (5 results, 10 terms)", {"rm3": 0.2}),
    ("+ RM3 keyword feedback 0.4 (5 results, 10 terms)", {"rm3": 0.4}),
    (
        "+ RM3 keyword feedback 0.3 (3 results, 5 terms)",
        {"rm3": 0.3, "rm3_docs": 3, "rm3_terms": 5},
    ),
    ("+ query idf ** 1.5", {"idf_power": 1.5}),
    ("+ query idf ** 2", {"idf_power": 2.0}),
    ("+ question verbs out of the keyword query", {"query_stop": True}),
    ("+ learned address names not indexed", {"drop_vocative": "alias"}),
    ("+ a name a memory addresses someone by does not match it", {"drop_vocative": "query"}),
    (
        "+ ... when at least half the memories with the word address someone by it",
        {"drop_vocative": "query-alias"},
    ),
)


#: Issue 17, fifth session: candidates measured on top of today's default (row 7), each on
#: its own (the leads of the issue: feedback, adaptive weights, exchanges, calibration).
NEXT7: tuple[tuple[str, dict[str, Any]], ...] = (
    ("+ query idf ** 2 (not 3)", {"idf_power": 2.0}),
    ("+ query idf ** 4 (not 3)", {"idf_power": 4.0}),
    ("+ dense PRF 0.3 (top 3)", {"prf_dense": 0.3}),
    ("+ dense PRF 0.15 (top 3)", {"prf_dense": 0.15}),
    ("+ dense PRF 0.3 (top 5)", {"prf_dense": 0.3, "prf_docs": 5}),
    ("+ adaptive fusion 0.3 (lists agree: more dense)", {"adaptive": 0.3}),
    ("+ adaptive fusion -0.3 (lists agree: more keyword)", {"adaptive": -0.3}),
    ("+ exchange aggregation 0.1 (gap 2 h)", {"session_gap": 7200.0, "session_weight": 0.1}),
    ("+ exchange aggregation 0.2 (gap 6 h)", {"session_gap": 6 * 3600.0, "session_weight": 0.2}),
    ("+ cosines over the dense list's range", {"dense_range": True}),
    (
        "+ cosines over the dense list's range, dense weight 0.35",
        {"dense_range": True, "dense_weight": 0.35, "keyword_weight": 0.65},
    ),
    ("+ speaker boost 0.3", {"speaker_boost": 0.3}),
    ("+ RM3 keyword feedback 0.2 (5 results, 10 terms)", {"rm3": 0.2}),
    (
        "+ RM3 keyword feedback 0.1 (3 results, 5 terms)",
        {"rm3": 0.1, "rm3_docs": 3, "rm3_terms": 5},
    ),
    ("+ context window ±3 turns", {"window": 3}),
    ("+ 'when' questions: plain idf", {"temporal_idf_power": 1.0}),
    ("+ 'when' questions: idf squared", {"temporal_idf_power": 2.0}),
)


#: Sets the contextual-vector rows run on: embedding every turn again with the one before
#: it takes about 1.6x the time of the turns themselves (13,500 more texts for chat-hard),
#: and the rows lost on chat before chat-hard was measured (see docs/benchmarks.md).
CONTEXTUAL_SETS = ("locomo-dev", "chat")

#: The cumulative rows (episode ingest, then plain remember).
STEPS: tuple[tuple[str, LabConfig], ...] = (*_steps(_D), *_steps(_PLAIN))


def summarise(scores: Sequence[QuestionScore], k: int = 10) -> dict[str, float | None]:
    """Mean recall@k per column of :data:`COLUMNS` (None for a category with no questions)."""
    out: dict[str, float | None] = {}
    for col, cats in COLUMNS:
        vals = [s.recall[k] for s in scores if s.category in cats]
        out[col] = float(np.mean(vals)) if vals else None
    out["n"] = float(sum(1 for s in scores if s.category in SCORED_CATEGORIES))
    return out


class PlainSeverance(SeveranceSystem):
    """Severance with plain ``remember(text, occurred_at=...)``: no kind, metadata or tags."""

    name = "severance-plain"

    def __init__(self, embedder: Any, *, workdir: Path | None = None) -> None:
        super().__init__(embedder, modes=("hybrid",), workdir=workdir, ablation=False)
        self._dia: dict[str, str] = {}

    @property
    def variants(self) -> tuple[str, ...]:
        return ("severance-plain-hybrid",)

    def index(self, conv: Conversation) -> None:
        persona = persona_name(conv.sample_id)
        self._store.add_persona(persona)
        self._store.add_floor(f"f-{persona}", persona=persona)
        self._ctx = self._store.enter(floor=f"f-{persona}")
        self._session = self._ctx.__enter__()
        stored = self._session.remember_many(
            [self._sev.MemoryDraft(text=t.document, occurred_at=t.occurred_at) for t in conv.turns]
        )
        self._dia = {m.id: t.dia_id for m, t in zip(stored, conv.turns, strict=True)}

    def search(self, variant: str, query: str, k: int) -> list[str]:
        return [self._dia[h.memory.id] for h in self._session.recall(query, k=k)]


def run_systems(
    sets: Sequence[DevSet], embedder: TwoCacheEmbedder, k: int, *, ablation: bool = False
) -> dict[str, dict[str, Any]]:
    """Set -> variant -> summary (and query latency)."""
    out: dict[str, dict[str, Any]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    old_xdg = os.environ.get("XDG_CONFIG_HOME")
    try:
        for ds in sets:
            systems = [
                BM25System(),
                SeveranceSystem(embedder, workdir=workdir, ablation=ablation),  # type: ignore[arg-type]
                PlainSeverance(embedder, workdir=workdir),
            ]
            scores: dict[str, list[QuestionScore]] = {}
            latency: dict[str, list[float]] = {}
            try:
                for conv in ds.conversations:
                    for system in systems:
                        system.index(conv)
                        for i, q in enumerate(conv.questions):
                            if not q.scorable:
                                continue
                            # Variants take turns going first, so that what the first search
                            # of a question pays (caches warming) is spread over all of them.
                            names = system.variants
                            shift = i % len(names)
                            for variant in (*names[shift:], *names[:shift]):
                                t0 = time.perf_counter()
                                ranked = system.search(variant, q.question, k)
                                latency.setdefault(variant, []).append(time.perf_counter() - t0)
                                scores.setdefault(variant, []).append(
                                    score_question(q.qid, q.category, q.evidence, ranked, ks=(k,))
                                )
                        system.release()
            finally:
                for system in systems:
                    system.close()
            out[ds.name] = {
                v: {**summarise(s, k), "p50_ms": latency_stats(latency[v])["p50_ms"]}
                for v, s in scores.items()
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if old_xdg is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = old_xdg
    return out


def run_lab(
    sets: Sequence[DevSet],
    embedder: TwoCacheEmbedder,
    k: int,
    only: Sequence[str] | None,
    extra: Sequence[tuple[str, LabConfig]] = (),
    progress: Callable[[str], None] | None = None,
    checkpoint: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ds in sets:
        convs = [LabConversation(c, embedder) for c in ds.conversations]
        rows: dict[str, Any] = {}
        for name, cfg in [*CANDIDATES, *STEPS, *extra]:
            if only and not any(o in name for o in only) and not name.startswith("lab:"):
                continue
            if cfg.ctx_vectors and ds.name not in CONTEXTUAL_SETS:
                continue
            t0 = time.perf_counter()
            rows[name] = summarise(run_config(convs, cfg, k), k)
            rows[name]["seconds"] = time.perf_counter() - t0
            if progress is not None:
                progress(f"{ds.name} {rows[name]['all']:.3f} {name}")
            if checkpoint is not None:  # a long run keeps what it measured if stopped
                checkpoint({**out, ds.name: rows})
        out[ds.name] = rows
    return out


def _table(results: dict[str, dict[str, Any]], title: str) -> str:
    sets = list(results)
    head = ["row"] + [f"{s} {c}" for s in sets for c, _ in COLUMNS[:4]]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = list(dict.fromkeys(n for s in sets for n in results[s]))
    for name in names:
        cells = [name]
        for s in sets:
            row = results[s].get(name, {})
            cells += [f"{row[c]:.3f}" if row.get(c) is not None else "" for c, _ in COLUMNS[:4]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.retrieval_eval", description=__doc__.splitlines()[0]
    )
    p.add_argument("--sets", default="locomo-dev,chat", help="comma-separated: " + ", ".join(SETS))
    p.add_argument("--no-lab", action="store_true")
    p.add_argument("--no-systems", action="store_true")
    p.add_argument("--only", action="append", help="lab rows whose name contains this")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    sets = [load_set(s) for s in args.sets.split(",")]
    embedder = TwoCacheEmbedder(sets)
    result: dict[str, Any] = {"sets": [s.name for s in sets]}
    if not args.no_systems:
        result["systems"] = run_systems(sets, embedder, 10)
        print(_table(result["systems"], "Systems (recall@10)"), flush=True)
    if not args.no_lab:

        def keep(lab: dict[str, dict[str, Any]]) -> None:
            if args.json is not None:
                args.json.write_text(json.dumps({**result, "lab": lab}, indent=2) + "\n")

        result["lab"] = run_lab(
            sets,
            embedder,
            10,
            args.only,
            progress=lambda line: print(line, file=sys.stderr),
            checkpoint=keep,
        )
        print(_table(result["lab"], "Lab rows (recall@10)"), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
