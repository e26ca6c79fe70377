"""The LoCoMo retrieval-quality section: ingest every turn, ask every question, score ranks.

Each conversation becomes one persona / collection / user holding one memory per turn
(``"Speaker: text"`` plus ``" [image: caption]"``). Each question is run against its own
conversation only, and the returned turn ids are scored against the question's evidence
(:mod:`bench.metrics`). Categories 1-4 make the headline; 5 (adversarial) is reported apart.

Every figure is also given per *split* (:data:`SPLITS`): retrieval constants are chosen on the
first five conversations of the file (``dev``) only, and the other five (``test``) show whether
they hold on conversations they were not chosen on. ``--split dev`` runs the dev conversations
alone (for tuning); the published run covers all ten and reports dev, test and all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import systems as systems_mod
from bench.embedding import (
    DEFAULT_CACHE_DIR,
    CachingEmbedder,
    EmbedderLike,
    EmbeddingCache,
    default_embedder_factory,
)
from bench.locomo import (
    CATEGORY_NAMES,
    SCORED_CATEGORIES,
    Conversation,
    LoCoMo,
    Question,
    load_locomo,
)
from bench.machine import load_average, machine_info, package_versions
from bench.metrics import KS, QuestionScore, aggregate, latency_stats, score_question

__all__ = [
    "QUICK_CONVERSATIONS",
    "QUICK_QUESTIONS",
    "SPLITS",
    "LocomoOptions",
    "add_arguments",
    "run",
    "run_locomo",
    "select_questions",
]

SECTION = "locomo"
SCHEMA = 1
QUICK_CONVERSATIONS = 2
QUICK_QUESTIONS = 60
LICENCE = "CC BY-NC 4.0 (LoCoMo, snap-research/locomo); read at run time, never copied"
#: The research notes' BM25 figure (categories 1-4), kept beside the measured one as a check.
BM25_REFERENCE = {"recall@5": 0.497, "recall@10": 0.563, "recall@20": 0.633, "hit@10": 0.620}
#: Conversations (sample ids) that retrieval constants may be chosen on (``dev``), and those
#: kept for checking them (``test``): the first and the last five of ``locomo10.json``.
SPLITS: dict[str, tuple[str, ...]] = {
    "dev": ("conv-26", "conv-30", "conv-41", "conv-42", "conv-43"),
    "test": ("conv-44", "conv-47", "conv-48", "conv-49", "conv-50"),
}

Log = Callable[[str], None]


@dataclass
class LocomoOptions:
    locomo_path: Path | None = None
    conversations: Sequence[str] | None = None  # sample ids; None = all (in file order)
    max_conversations: int | None = None
    max_questions: int | None = None  # per conversation, evenly spaced over the file order
    systems: Sequence[str] = systems_mod.SYSTEM_NAMES
    k: int = max(KS)
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    refresh_cache: bool = False  # re-embed every turn (re-measures embedding throughput)
    workdir: Path | None = None  # where temporary stores go (default: the system temp dir)
    raw_path: Path | None = None  # per-question ranks as JSON lines (for analysis)
    quick: bool = False
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def select_questions(conv: Conversation, cap: int | None) -> list[Question]:
    """The scorable questions of ``conv``, or ``cap`` of them evenly spaced (deterministic).

    Questions are grouped by category in the file, so a plain prefix would skew categories.
    """
    qs = [q for q in conv.questions if q.scorable]
    if cap is None or cap >= len(qs):
        return qs
    idx = np.unique(np.linspace(0, len(qs) - 1, num=cap).round().astype(int))
    return [qs[i] for i in idx]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _display_path(path: Path) -> str:
    """``path`` relative to the repository root when it is nearby (no machine-local prefix)."""
    repo = Path(__file__).resolve().parent.parent
    rel = Path(os.path.relpath(path.resolve(), repo))
    return rel.as_posix() if rel.parts[:2].count("..") <= 1 else str(path)


def _dataset_block(
    data: LoCoMo, convs: list[Conversation], asked: dict[str, list[Question]]
) -> dict[str, Any]:
    all_q = [q for c in convs for q in c.questions]
    picked = [q for c in convs for q in asked[c.sample_id]]
    sel_ids = {c.sample_id for c in convs}
    issues = [i for i in data.issues if i.qid.split("#")[0] in sel_ids]
    counts: dict[str, int] = {}
    for i in issues:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    by_cat = {
        str(c): {
            "name": CATEGORY_NAMES.get(c, str(c)),
            "questions": sum(1 for q in all_q if q.category == c),
            "scored": sum(1 for q in picked if q.category == c),
        }
        for c in sorted({q.category for q in all_q})
    }
    return {
        "path": _display_path(data.path),
        "sha256": _sha256(data.path),
        "licence": LICENCE,
        "conversations": [c.sample_id for c in convs],
        "sessions": sum(len({t.session for t in c.turns}) for c in convs),
        "turns": sum(len(c.turns) for c in convs),
        "questions": len(all_q),
        "questions_scored": len(picked),
        "questions_unscorable": sum(1 for q in all_q if not q.scorable),
        "by_category": by_cat,
        "evidence_issue_counts": dict(sorted(counts.items())),
        "evidence_issues": [i.to_dict() for i in issues],
    }


@dataclass
class _Tally:
    """Everything measured for one system (all its variants)."""

    system: systems_mod.RetrievalSystem
    ingest_seconds: float = 0.0
    memories: int = 0
    scores: dict[str, list[QuestionScore]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    short_lists: dict[str, int] = field(default_factory=dict)

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        variants = self.system.variants
        for v in variants:
            scores = self.scores.get(v, [])
            splits = {}
            for split, members in SPLITS.items():
                part = [q for q in scores if q.qid.split("#")[0] in members]
                if part:
                    splits[split] = aggregate(part, SCORED_CATEGORIES)
            out[v] = {
                "system": self.system.name,
                "ingest": {
                    "seconds": self.ingest_seconds,
                    "memories": self.memories,
                    "memories_per_second": self.memories / self.ingest_seconds
                    if self.ingest_seconds
                    else None,
                    "shared_with": [w for w in variants if w != v],
                },
                "query_latency": latency_stats(self.latencies.get(v, [])),
                "short_result_lists": self.short_lists.get(v, 0),
                **aggregate(scores, SCORED_CATEGORIES),
                "splits": splits,
            }
        return out


def _run_interleaved(
    tallies: dict[str, _Tally],
    convs: list[Conversation],
    asked: dict[str, list[Question]],
    k: int,
    log: Log,
    raw: list[dict[str, Any]],
    failed: dict[str, str],
) -> None:
    """Ingest each conversation into every system, then ask each question of every system.

    Systems take turns question by question (the starting system rotates), so background
    load on a shared machine affects every system's latencies alike. A system that raises
    is recorded in ``failed`` and dropped from the rest of the run.
    """

    def fail(name: str, exc: Exception) -> None:
        failed[name] = f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
        tallies.pop(name, None)

    for conv in convs:
        for name, t in list(tallies.items()):
            try:
                t0 = time.perf_counter()
                t.system.index(conv)
                dt = time.perf_counter() - t0
            except Exception as exc:  # record, keep the other systems going
                fail(name, exc)
                continue
            t.ingest_seconds += dt
            t.memories += len(conv.turns)
            log(f"  {name}: {conv.sample_id} ({len(conv.turns)} turns) ingested in {dt:.2f}s")
        questions = asked[conv.sample_id]
        for i, q in enumerate(questions):
            names = list(tallies)
            order = names[i % len(names) :] + names[: i % len(names)] if names else []
            for name in order:
                t = tallies[name]
                try:
                    for variant in t.system.variants:
                        t0 = time.perf_counter()
                        ranked = t.system.search(variant, q.question, k)
                        t.latencies.setdefault(variant, []).append(time.perf_counter() - t0)
                        if len(ranked) < k:
                            t.short_lists[variant] = t.short_lists.get(variant, 0) + 1
                        score = score_question(q.qid, q.category, q.evidence, ranked)
                        t.scores.setdefault(variant, []).append(score)
                        raw.append(
                            {
                                "system": variant,
                                "qid": q.qid,
                                "category": q.category,
                                "n_evidence": len(q.evidence),
                                "first_rank": score.first_rank,
                                "recall@10": score.recall.get(10),
                                "ranked": ranked,
                            }
                        )
                except Exception as exc:
                    fail(name, exc)
        for name, t in list(tallies.items()):
            try:
                t.system.release()
            except Exception as exc:
                fail(name, exc)
        log(f"  {conv.sample_id}: {len(questions)} questions asked of {len(tallies)} system(s)")


def run_locomo(
    opts: LocomoOptions,
    *,
    embedder_factory: Callable[[], EmbedderLike] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Run the section and return its JSON-ready result (see ``docs/benchmarks.md``)."""
    started = datetime.now(UTC)
    load_at_start = load_average()
    data = load_locomo(opts.locomo_path, only=opts.conversations)
    convs = data.conversations
    if opts.max_conversations is not None:
        convs = convs[: opts.max_conversations]
    asked = {c.sample_id: select_questions(c, opts.max_questions) for c in convs}
    log(
        f"LoCoMo: {len(convs)} conversations, {sum(len(c.turns) for c in convs)} turns, "
        f"{sum(len(v) for v in asked.values())} questions scored"
    )

    names = [n for n in systems_mod.SYSTEM_NAMES if n in opts.systems]
    unknown = sorted(set(opts.systems) - set(systems_mod.SYSTEM_NAMES))
    if unknown:
        raise ValueError(f"unknown system(s): {', '.join(unknown)}")

    embedding: dict[str, Any] | None = None
    make_embedder: Callable[[], CachingEmbedder] | None = None
    if any(n in systems_mod.DENSE_SYSTEMS for n in names):
        factory = embedder_factory or default_embedder_factory()
        t0 = time.perf_counter()
        probe = factory()
        load_s = time.perf_counter() - t0
        cache = EmbeddingCache(probe, opts.cache_dir, refresh=opts.refresh_cache)
        stats = cache.warm([t.document for c in convs for t in c.turns])
        embedding = {**stats.to_dict(), "model_load_seconds": load_s}
        log(
            f"embedder {stats.embedder}: {stats.n_texts} turn texts, {stats.n_computed} embedded "
            f"now in {stats.seconds:.1f}s (rest from {opts.cache_dir})"
        )

        def make_embedder() -> CachingEmbedder:
            return CachingEmbedder(factory(), cache)

    results: dict[str, Any] = {}
    info: dict[str, Any] = {}
    ablation: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    raw: list[dict[str, Any]] = []
    tallies: dict[str, _Tally] = {}
    for name in names:
        try:
            tallies[name] = _Tally(systems_mod.build(name, make_embedder, workdir=opts.workdir))
        except systems_mod.SystemUnavailable as exc:
            skipped[name] = str(exc)
            log(f"system {name} skipped: {exc}")
    built = dict(tallies)
    try:
        _run_interleaved(tallies, convs, asked, opts.k, log, raw, failed)
        for name, t in tallies.items():
            results.update(t.results())
            info[name] = t.system.info()
            ablation.extend(getattr(t.system, "ablation_steps", []))
    finally:
        for t in built.values():
            t.system.close()

    if opts.raw_path is not None:
        opts.raw_path.parent.mkdir(parents=True, exist_ok=True)
        with opts.raw_path.open("w", encoding="utf-8") as f:
            for row in raw:
                f.write(json.dumps(row) + "\n")

    return {
        "section": SECTION,
        "schema": SCHEMA,
        "generated_at": started.isoformat(timespec="seconds"),
        "duration_seconds": (datetime.now(UTC) - started).total_seconds(),
        "command": opts.command,
        "quick": opts.quick,
        "machine": {
            **machine_info(),
            "load_average_1min": {"start": load_at_start, "end": load_average()},
        },
        "versions": package_versions(),
        "dataset": _dataset_block(data, convs, asked),
        "settings": {
            "ks": list(KS),
            "headline_categories": list(SCORED_CATEGORIES),
            "category_names": {str(k): v for k, v in CATEGORY_NAMES.items()},
            "max_questions_per_conversation": opts.max_questions,
            "splits": {k: list(v) for k, v in SPLITS.items()},
            "document": "'Speaker: text' + ' [image: caption]' when the turn has one",
            "aggregation": "micro-average over questions",
            "bm25_reference": BM25_REFERENCE,
            **opts.extra,
        },
        "embedding": embedding,
        "systems": results,
        "ablation": ablation,
        "system_info": info,
        "skipped": skipped,
        "failed": failed,
    }


# -- section hooks used by ``python -m bench`` ---------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("LoCoMo")
    g.add_argument(
        "--locomo",
        type=Path,
        default=None,
        help="path to locomo10.json (default: $SEVERANCE_LOCOMO or ../shared/data/locomo/)",
    )
    g.add_argument(
        "--systems",
        default=",".join(systems_mod.SYSTEM_NAMES),
        help="comma-separated subset of: " + ", ".join(systems_mod.SYSTEM_NAMES),
    )
    g.add_argument("--conversations", default=None, help="comma-separated sample ids")
    g.add_argument(
        "--split",
        choices=["all", *SPLITS],
        default="all",
        help="run the dev conversations only (choose constants on these), the test ones, or all",
    )
    g.add_argument("--max-questions", type=int, default=None, help="cap per conversation")
    g.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="turn-embedding cache (default bench/.cache)",
    )
    g.add_argument(
        "--refresh-cache",
        action="store_true",
        help="re-embed every turn, replacing the cache (re-measures embedding throughput)",
    )


def run(args: argparse.Namespace, log: Log = print) -> tuple[dict[str, Any], bool]:
    """Run from parsed CLI arguments; returns (result, ok)."""
    max_q = args.max_questions
    max_c = None
    if args.quick:
        max_q = max_q or QUICK_QUESTIONS
        max_c = QUICK_CONVERSATIONS if not args.conversations else None
    out_dir: Path = args.out
    conversations: list[str] | None = args.conversations.split(",") if args.conversations else None
    split = getattr(args, "split", "all")
    if split != "all":
        conversations = [c for c in conversations or SPLITS[split] if c in SPLITS[split]]
    opts = LocomoOptions(
        locomo_path=args.locomo,
        conversations=conversations,
        max_conversations=max_c,
        max_questions=max_q,
        systems=[s.strip() for s in args.systems.split(",") if s.strip()],
        cache_dir=args.cache_dir,
        refresh_cache=bool(args.refresh_cache),
        raw_path=out_dir / "raw" / f"{SECTION}-questions.jsonl",
        quick=bool(args.quick),
        command=args.command_line,
        extra={"split_run": split},
    )
    result = run_locomo(opts, log=log)
    return result, not result["failed"]
