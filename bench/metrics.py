"""Retrieval metrics: evidence recall@k and hit@k, aggregated per category, and latency stats.

For one question with evidence turns ``E`` and a ranked list ``R``:

* ``recall@k = |E ∩ R[:k]| / |E|`` — the share of evidence turns retrieved in the top k;
* ``hit@k = 1 if E ∩ R[:k] else 0`` — whether any evidence turn is in the top k.

Aggregates are micro-averages over questions (each question weighs the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "KS",
    "QuestionScore",
    "aggregate",
    "latency_stats",
    "score_question",
]

KS: tuple[int, ...] = (1, 5, 10, 20)


@dataclass(frozen=True)
class QuestionScore:
    qid: str
    category: int
    recall: dict[int, float]
    hit: dict[int, float]
    first_rank: int | None  # 1-based rank of the first evidence turn within the list, if any


def score_question(
    qid: str,
    category: int,
    evidence: Sequence[str],
    ranked: Sequence[str],
    ks: Sequence[int] = KS,
) -> QuestionScore:
    """Score one ranked list of turn ids against the question's evidence turn ids."""
    if not evidence:
        raise ValueError(f"{qid}: a question without evidence cannot be scored")
    gold = set(evidence)
    # A system may return one turn twice (it should not); count each evidence turn once.
    seen: set[str] = set()
    ranked_unique: list[str] = []
    for r in ranked:
        if r not in seen:
            seen.add(r)
            ranked_unique.append(r)
    recall: dict[int, float] = {}
    hit: dict[int, float] = {}
    for k in ks:
        found = len(gold.intersection(ranked_unique[:k]))
        recall[k] = found / len(gold)
        hit[k] = 1.0 if found else 0.0
    first_rank = next((i + 1 for i, r in enumerate(ranked_unique) if r in gold), None)
    return QuestionScore(qid, category, recall, hit, first_rank)


def _mean_block(scores: Sequence[QuestionScore], ks: Sequence[int]) -> dict[str, Any]:
    n = len(scores)
    block: dict[str, Any] = {"n": n}
    for k in ks:
        block[f"recall@{k}"] = float(np.mean([s.recall[k] for s in scores])) if n else None
        block[f"hit@{k}"] = float(np.mean([s.hit[k] for s in scores])) if n else None
    ranks = [s.first_rank for s in scores]
    block["mrr"] = float(np.mean([1.0 / r if r else 0.0 for r in ranks])) if n else None
    return block


def aggregate(
    scores: Iterable[QuestionScore],
    headline_categories: Sequence[int],
    ks: Sequence[int] = KS,
) -> dict[str, Any]:
    """Per-category blocks plus an ``overall`` block over ``headline_categories`` only."""
    all_scores = list(scores)
    by_cat: dict[int, list[QuestionScore]] = {}
    for s in all_scores:
        by_cat.setdefault(s.category, []).append(s)
    return {
        "overall": _mean_block([s for s in all_scores if s.category in headline_categories], ks),
        "by_category": {str(c): _mean_block(v, ks) for c, v in sorted(by_cat.items())},
    }


def latency_stats(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean, p50, p95 and p99 of a list of durations, reported in milliseconds."""
    if not seconds:
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": len(seconds),
        "mean_ms": float(arr.mean()),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
    }


def per_category_lookup(result: Mapping[str, Any], category: int, key: str) -> float | None:
    """``result["by_category"][str(category)][key]`` or ``None`` when absent."""
    block = result.get("by_category", {}).get(str(category))
    if not block:
        return None
    value = block.get(key)
    return float(value) if value is not None else None
