"""The end-to-end row of the speed section: Severance's hybrid recall with the real bundled
model embedding each query, against embedding the query alone (issue 11's target: recall
within 1.5 ms of the embedding). Run by :func:`bench.speed_phases.finish` once the store is
checkpointed; rendered by :mod:`bench.speed_render` from :func:`rows`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["E2E_MAX", "end_to_end", "rows"]

#: Largest size at which :func:`end_to_end` runs (it opens a second handle on the store).
E2E_MAX = 100_000


def _latency(seconds: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": len(arr),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }


def end_to_end(
    cfg: dict[str, Any],
    queries: Sequence[str],
    log: Callable[[str], None],
    name: str,
    k: int = 10,
) -> dict[str, Any]:
    """Hybrid recall with the real bundled model embedding each query, against embedding the
    query alone, interleaved query by query: what a caller waits for, and what the memory
    layer adds to the model. The store (checkpointed) is opened again with the model as its
    embedder; the embedding-alone probe uses its own copy of the model with no cache, so
    neither is answered from a cache; a second recall of each query is (``recall_repeated``)."""
    import severance
    from severance.embedders.minilm import MiniLM

    model, alone = MiniLM(), MiniLM(cache_size=0)  # both one-thread query sessions
    store = severance.Store.open(cfg["path"], key=base64.b64decode(cfg["key"]), embedder=model)
    try:
        with store.enter(floor=cfg["floor"]) as session:
            session.recall(f"{queries[0]} (warm-up)", k=k)
            embed_s: list[float] = []
            recall_s: list[float] = []
            repeated_s: list[float] = []
            for q in queries:
                t0 = time.perf_counter()
                alone.embed([q])
                embed_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                session.recall(q, k=k)
                recall_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                session.recall(q, k=k)
                repeated_s.append(time.perf_counter() - t0)
    finally:
        store.close()
    out = {
        "mode": "hybrid",
        "embedder": model.name,
        "embed": _latency(embed_s),
        "recall": _latency(recall_s),
        "recall_repeated": _latency(repeated_s),
    }
    out["over_embedding_p50_ms"] = out["recall"]["p50_ms"] - out["embed"]["p50_ms"]
    log(
        f"  {name}: end to end p50 {out['recall']['p50_ms']:.2f} ms = embedding "
        f"{out['embed']['p50_ms']:.2f} + {out['over_embedding_p50_ms']:.2f} ms; repeated "
        f"query {out['recall_repeated']['p50_ms']:.2f} ms"
    )
    return out


def rows(res: dict[str, Any]) -> list[list[float]]:
    """Per size with the row: memories, embedding p50, recall p50 and p99, recall over
    embedding, repeated query p50 (milliseconds)."""
    out = []
    for size, block in res["sizes"].items():
        e = block["systems"].get("severance", {}).get("end_to_end")
        if e:
            out.append(
                [
                    float(size),
                    e["embed"]["p50_ms"],
                    e["recall"]["p50_ms"],
                    e["recall"]["p99_ms"],
                    e["over_embedding_p50_ms"],
                    e["recall_repeated"]["p50_ms"],
                ]
            )
    return out
