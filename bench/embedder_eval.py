"""Embedders compared on the retrieval development sets, and what each costs, in one run.

``python -m bench.embedder_eval --embedders minilm,e5-small`` runs, for every embedder spec
(:func:`severance.embedders.load_embedder` names), the systems of :mod:`bench.retrieval_eval`
(BM25, Severance hybrid with conversation ingest, dense only, keyword only, plain
``remember``) on LoCoMo dev and the synthetic chats, each Severance store built with that
embedder; ``--sets locomo-dev,chat,locomo-test`` adds the held-back LoCoMo conversations (to
report, never to choose on). Then, in the same process and interleaved so that machine load
falls on every embedder alike, it measures

* throughput: texts per second embedding a fixed sample of LoCoMo turns in batches of 64;
* one query: the p50 of embedding one question at a time (no cache), as recall does.

A spec ``e5-small/passage`` or ``e5-small/asym`` runs the same model with other prefixes
(see :data:`VARIANTS`): what ``embed`` would give with ``"passage: "`` everywhere, and what a
store that embedded memories and queries through separate methods would.

``--cosine`` adds a table of dense-only recall@10 by plain cosine over each conversation's
turns, with e5's intended prefixes (``"passage: "`` on turns, ``"query: "`` on questions)
beside the ``"query: "``-on-both that the store's single ``embed`` method gives: what an
asymmetric embedder API would buy.

Turn and question vectors are cached per embedder under ``bench/.cache/`` (as for
:mod:`bench.retrieval_eval`); the timings never come from the cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.embedding import DEFAULT_CACHE_DIR, EmbedderLike, EmbeddingCache
from bench.locomo import SCORED_CATEGORIES
from bench.metrics import QuestionScore, score_question
from bench.retrieval_data import SETS, DevSet, TwoCacheEmbedder, load_set
from bench.retrieval_eval import COLUMNS, run_systems, summarise

__all__ = ["SpecEmbedder", "cosine_recall", "fresh_embedder", "main", "measure_costs"]

Vectors = np.ndarray[Any, np.dtype[np.float32]]
#: Rows of the recall tables: run_systems' variant -> label.
ROWS: tuple[tuple[str, str], ...] = (
    ("bm25", "BM25"),
    ("severance-hybrid", "hybrid (episode ingest)"),
    ("severance-plain-hybrid", "hybrid (plain remember)"),
    ("severance-dense", "dense only"),
    ("severance-keyword", "keyword only"),
)


def fresh_embedder(spec: str) -> EmbedderLike:
    """A new instance for ``spec`` (not the process-wide cached one), with no query cache."""
    if spec.strip() == "minilm":
        from severance.embedders.minilm import MiniLM

        return MiniLM(cache_size=0)
    if spec.strip() == "e5-small":
        from severance.embedders.e5 import E5Small

        return E5Small()
    from severance.embedders import load_embedder

    return load_embedder(spec)


#: Spec suffixes for e5: ``/passage`` puts "passage: " on memories and queries alike;
#: ``/asym`` puts it on memories and "query: " on queries (an embedder API that told them
#: apart). No suffix is the registered ``embed``: "query: " on both.
VARIANTS = ("", "passage", "asym")


class _Passages:
    """e5's ``"passage: "`` vectors under a name of their own (another space, another cache)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = f"{inner.name}-passage"
        self.dimension = int(inner.dimension)

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors: Vectors = self.inner.embed_passages(texts)
        return vectors


class SpecEmbedder(TwoCacheEmbedder):
    """:class:`~bench.retrieval_data.TwoCacheEmbedder` for any spec, not only the default.

    Its ``__init__`` replaces the parent's (which always loads the default model); the rest
    — answering turn texts and questions from their caches, misses live — is the parent's.
    """

    def __init__(
        self, spec: str, sets: Sequence[DevSet], cache_dir: Path = DEFAULT_CACHE_DIR
    ) -> None:
        self.spec = spec
        base, _, variant = spec.partition("/")
        model = fresh_embedder(base)
        if variant not in VARIANTS or (variant and not hasattr(model, "embed_passages")):
            raise ValueError(f"unknown embedder variant {spec!r} (variants: /passage, /asym)")
        passages: EmbedderLike = _Passages(model) if variant else model
        # Turn texts are what the store remembers, questions what it is asked: the two caches
        # give each its own prefix, as a store that told them apart would.
        for_turns, for_questions = {
            "": (model, model),
            "passage": (passages, passages),
            "asym": (passages, model),
        }[variant]
        self.inner = for_questions  # live misses are queries
        self.turns = EmbeddingCache(for_turns, cache_dir)
        self.turns.warm([t.document for s in sets for c in s.conversations for t in c.turns])
        self.questions = EmbeddingCache(for_questions, cache_dir / "queries")
        self.questions.warm(
            [q.question for s in sets for c in s.conversations for q in c.questions], batch=64
        )
        self.name = f"{model.name}-{variant}" if variant else model.name
        self.dimension = int(model.dimension)
        self.batch_size = 64


def cosine_recall(
    ds: DevSet,
    turn_vector: Callable[[str], Vectors | None],
    question_vector: Callable[[str], Vectors | None],
    k: int = 10,
) -> dict[str, float | None]:
    """Dense-only recall@k by plain cosine over each conversation's turns."""
    scores: list[QuestionScore] = []
    for conv in ds.conversations:
        turns = np.stack([_need(turn_vector(t.document)) for t in conv.turns])
        for q in conv.questions:
            if not q.scorable:
                continue
            sims = turns @ _need(question_vector(q.question))
            top = np.argsort(-sims, kind="stable")[:k]
            ranked = [conv.turns[i].dia_id for i in top]
            scores.append(score_question(q.qid, q.category, q.evidence, ranked, ks=(k,)))
    return summarise(scores, k)


def _need(v: Vectors | None) -> Vectors:
    if v is None:
        raise RuntimeError("a text is missing from the cache it was warmed into")
    return v


def measure_costs(
    embedders: dict[str, EmbedderLike],
    sample: Sequence[str],
    queries: Sequence[str],
    rounds: int = 3,
) -> dict[str, dict[str, float]]:
    """Texts/s (best of ``rounds`` over ``sample``, batches of 64) and one-query p50 (ms).

    Embedders take turns within each round, so load on the machine falls on all of them.
    """
    throughput: dict[str, list[float]] = {s: [] for s in embedders}
    single: dict[str, list[float]] = {s: [] for s in embedders}
    for e in embedders.values():  # warm-up: first calls pay for lazy set-up
        e.embed(list(sample[:8]))
    for _ in range(rounds):
        for spec, e in embedders.items():
            t0 = time.perf_counter()
            for start in range(0, len(sample), 64):
                e.embed(list(sample[start : start + 64]))
            throughput[spec].append(len(sample) / (time.perf_counter() - t0))
        for q in queries:
            for spec, e in embedders.items():
                t0 = time.perf_counter()
                e.embed([q])
                single[spec].append(time.perf_counter() - t0)
    return {
        s: {
            "texts_per_second": max(throughput[s]),
            "query_p50_ms": statistics.median(single[s]) * 1000.0,
            "n_sample": float(len(sample)),
            "n_queries": float(len(single[s])),
        }
        for s in embedders
    }


def _recall_table(results: dict[str, Any], sets: Sequence[str]) -> str:
    head = ["embedder", "row"] + [f"{s} {c}" for s in sets for c, _ in COLUMNS[:4]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for spec, per_set in results.items():
        for variant, label in ROWS:
            if variant == "bm25" and spec != next(iter(results)):
                continue  # BM25 does not depend on the embedder
            cells = [spec if variant != "bm25" else "-", label]
            for s in sets:
                row = per_set.get(s, {}).get(variant, {})
                cells += [f"{row[c]:.3f}" if row.get(c) is not None else "" for c, _ in COLUMNS[:4]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.embedder_eval", description=__doc__.splitlines()[0]
    )
    p.add_argument("--embedders", default="minilm,e5-small", help="comma-separated specs")
    p.add_argument("--sets", default="locomo-dev,chat", help="comma-separated: " + ", ".join(SETS))
    p.add_argument("--cosine", action="store_true", help="add the plain-cosine prefix table")
    p.add_argument("--no-systems", action="store_true", help="costs (and --cosine) only")
    p.add_argument("--no-costs", action="store_true", help="skip the throughput/latency part")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    specs = [s.strip() for s in args.embedders.split(",") if s.strip()]
    sets = [load_set(s) for s in args.sets.split(",")]
    names = [s.name for s in sets]
    started = time.perf_counter()
    result: dict[str, Any] = {"sets": names, "embedders": specs}

    wrapped = {spec: SpecEmbedder(spec, sets) for spec in specs}
    result["names"] = {spec: w.name for spec, w in wrapped.items()}
    if not args.no_systems:
        result["systems"] = {spec: run_systems(sets, w, 10) for spec, w in wrapped.items()}
        print("### Recall@10 by embedder\n\n" + _recall_table(result["systems"], names), flush=True)

    if args.cosine:
        cos: dict[str, dict[str, Any]] = {}
        for spec, w in wrapped.items():
            cos[f"{spec} (as stored)"] = {
                ds.name: cosine_recall(ds, w.turns.get, w.questions.get) for ds in sets
            }
            if hasattr(w.inner, "embed_passages"):
                passages = EmbeddingCache(_Passages(w.inner), DEFAULT_CACHE_DIR)
                passages.warm(
                    [t.document for ds in sets for c in ds.conversations for t in c.turns]
                )
                cos[f"{spec} (passage: turns, query: questions)"] = {
                    ds.name: cosine_recall(ds, passages.get, w.questions.get) for ds in sets
                }
        result["cosine"] = cos
        lines = ["| dense by cosine | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for row, per in cos.items():
            lines.append(f"| {row} | " + " | ".join(f"{per[n]['all']:.3f}" for n in names) + " |")
        print("\n### Dense-only recall@10 by plain cosine\n\n" + "\n".join(lines), flush=True)

    if args.no_costs:
        return _finish(result, started, args.json)
    sample = [t.document for c in sets[0].conversations[:1] for t in c.turns][:256]
    queries = [q.question for c in sets[0].conversations[:1] for q in c.questions][:40]
    models = list(dict.fromkeys(s.partition("/")[0] for s in specs))  # variants cost the same
    costs = measure_costs({s: fresh_embedder(s) for s in models}, sample, queries)
    base = costs[models[0]]
    for c in costs.values():
        c["throughput_vs_first"] = c["texts_per_second"] / base["texts_per_second"]
        c["query_p50_vs_first"] = c["query_p50_ms"] / base["query_p50_ms"]
    result["costs"] = costs
    print(
        "\n### Costs (same run)\n\n| embedder | texts/s | vs first | one query p50 ms | vs first |"
    )
    print("|---|---|---|---|---|")
    for s, c in costs.items():
        print(
            f"| {s} | {c['texts_per_second']:.1f} | {c['throughput_vs_first']:.2f}x"
            f" | {c['query_p50_ms']:.1f} | {c['query_p50_vs_first']:.2f}x |"
        )
    return _finish(result, started, args.json)


def _finish(result: dict[str, Any], started: float, path: Path | None) -> int:
    result["scored_categories"] = list(SCORED_CATEGORIES)
    result["duration_seconds"] = time.perf_counter() - started
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
