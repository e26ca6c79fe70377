"""The speed section's references: exact top-k, the raw index with no memory layer, ratios.

:func:`exact_top` is the brute-force answer that recall@10 is measured against;
:func:`ceiling` times numpy's brute force and the raw HNSW graph (usearch, Severance's
parameters) on the same vectors; :func:`ratios` turns one size's figures into Severance's
ratios against each peer and its overhead over the raw index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.speed_phases import K, Log, latency, overlap

__all__ = ["ceiling", "exact_top", "ratios"]


def exact_top(
    vectors: np.ndarray, texts: Sequence[str], queries: np.ndarray, k: int
) -> list[list[str]]:
    """Brute-force top ``k`` texts per query (the reference for recall@k vs exact)."""
    out: list[list[str]] = []
    step = max(1, int(2e8 // max(1, len(vectors))))  # ~800 MB of scores at a time
    for lo in range(0, len(queries), step):
        scores = queries[lo : lo + step] @ vectors.T
        for s in scores:
            top = np.argpartition(-s, k)[:k]
            top = top[np.argsort(-s[top])]
            out.append([texts[i] for i in top])
    return out


def usearch_index() -> Any:
    # onnxruntime must be imported before usearch (see severance.search.dense._usearch_index).
    import onnxruntime  # noqa: F401
    from usearch.index import Index

    return Index


def ceiling(
    vectors: np.ndarray,
    queries: np.ndarray,
    exact: list[list[str]],
    texts: Sequence[str],
    *,
    graph: Any | None,
    build_sample: int,
    log: Log,
) -> dict[str, Any]:
    """Raw index latencies on the same vectors, no memory layer."""
    from severance.search import dense as sdense

    params = {
        "dtype": getattr(sdense, "HNSW_DTYPE", "i8"),
        "connectivity": getattr(sdense, "HNSW_CONNECTIVITY", 16),
        "expansion_add": getattr(sdense, "HNSW_EXPANSION_ADD", 64),
        "expansion_search": getattr(sdense, "HNSW_EXPANSION_SEARCH", 64),
    }
    out: dict[str, Any] = {}
    times = []
    for q in queries:
        t0 = time.perf_counter()
        s = vectors @ q
        top = np.argpartition(-s, K)[:K]
        top[np.argsort(-s[top])]
        times.append(time.perf_counter() - t0)
    out["numpy_exact"] = latency(times)
    # A fresh graph on a sample: insertion throughput of the raw index.
    n_build = len(vectors)
    if 1000 <= n_build <= build_sample:
        index_cls = usearch_index()
        ix = index_cls(ndim=vectors.shape[1], metric="cos", **params)
        t0 = time.perf_counter()
        ix.add(np.arange(n_build), vectors[:n_build], threads=0)
        build_s = time.perf_counter() - t0
        out["hnsw_build"] = {"vectors": n_build, "per_second": n_build / build_s}
        log(f"  ceiling: raw HNSW build {n_build / build_s:,.0f} vectors/s")
        if graph is None and n_build == len(vectors):
            graph = (ix, np.arange(n_build))
    if graph is not None:
        ix, key_slot = graph
        times = []
        found = []
        for q in queries:
            t0 = time.perf_counter()
            keys = ix.search(q, K, threads=1).keys
            times.append(time.perf_counter() - t0)
            found.append([texts[int(key_slot[k])] for k in keys if key_slot[k] >= 0])
        out["hnsw_raw"] = {**latency(times), "recall_at_10_vs_exact": overlap(found, exact)}
    return out


def ratios(block: dict[str, Any]) -> dict[str, Any]:
    """Severance against each peer at one size, and its overhead over the raw index."""
    systems = block["systems"]
    sev = systems.get("severance")
    out: dict[str, Any] = {}
    if not sev or sev.get("status") != "ok":
        return out
    ceiling = block.get("ceiling", {})
    raw = ceiling.get("hnsw_raw") if sev.get("hnsw") else ceiling.get("numpy_exact")
    raw_name = "hnsw_raw" if sev.get("hnsw") else "numpy_exact"
    if raw and raw.get("p50_ms"):
        out["overhead_vs_raw_index"] = {
            "raw_index": raw_name,
            "hybrid_p50": sev["recall"]["p50_ms"] / raw["p50_ms"],
            "dense_p50": sev["recall_dense"]["p50_ms"] / raw["p50_ms"],
        }
    for peer in ("mem0", "chroma"):
        p = systems.get(peer)
        if not p or p.get("status") != "ok":
            continue
        r: dict[str, Any] = {}
        r["remember_batched"] = (
            sev["remember_batched"]["per_second"] / p["remember_batched"]["per_second"]
        )
        r["remember_single"] = (
            sev["remember_single"]["per_second"] / p["remember_single"]["per_second"]
        )
        r["recall_p50_speedup_hybrid"] = p["recall"]["p50_ms"] / sev["recall"]["p50_ms"]
        r["recall_p50_speedup_dense"] = p["recall"]["p50_ms"] / sev["recall_dense"]["p50_ms"]
        r["recall_p99_speedup_hybrid"] = p["recall"]["p99_ms"] / sev["recall"]["p99_ms"]
        sw, pw = sev.get("wake", {}), p.get("wake", {})
        if sw.get("wake_seconds") and pw.get("wake_seconds"):
            r["wake_speedup"] = pw["wake_seconds"] / sw["wake_seconds"]
        if sw.get("rss_delta_bytes") and pw.get("rss_delta_bytes"):
            r["rss"] = sw["rss_delta_bytes"] / pw["rss_delta_bytes"]
        r["disk"] = sev["disk_bytes"] / p["disk_bytes"]
        out[f"vs_{peer}"] = r
    return out
