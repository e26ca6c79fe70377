"""The speed and scale section: write throughput, recall latency, wake time, memory and disk.

For each size (10k, 100k, 1M memories, all in ONE persona / user / collection) and each
system (Severance, mem0 with ``infer=False`` on local Qdrant, Chroma's persistent client), on
identical texts and vectors (:mod:`bench.speed_data`):

* **remember, batched** — memories/s through the system's batch path for ``n - single``
  memories; **single** — memories/s for ``single`` more memories, one call each. Vectors are
  precomputed and served by a lookup, so these are memory-layer figures; the embedder's own
  throughput is reported apart (``embedder``).
* **recall** — p50/p99 over the same LoCoMo questions, k = 10, query vectors precomputed
  (query embedding time reported apart). Severance: hybrid (its default) and dense-only, plus
  a selective tag filter; peers: their only (dense) search.
* **wake** — a fresh process opens the store and runs the first query (Severance: ``enter`` +
  first ``recall``, i.e. loading the encrypted snapshot); **RSS** after that, minus the
  process's RSS after imports; **disk** — bytes under the store directory per memory.
* **ceiling** — the same vectors with no memory layer: numpy brute-force top-10, and the raw
  HNSW graph (usearch, Severance's parameters) top-10; Severance's overhead is its recall
  latency divided by the raw index's (the index Severance uses at that size).

A peer whose projected run time at a size exceeds ``--speed-budget`` minutes (projected from
its rates at the previous size) is not run; the projection is recorded instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import machine_info, package_versions
from bench.speed_data import Corpus, LookupEmbedder, Synthetic, derived_vs_real, load_corpus
from bench.speed_data import synthesise as make_synthetic
from bench.speed_systems import SYSTEMS, SeveranceSpeed, SpeedSystem, remove_tree

__all__ = ["add_arguments", "render", "run", "run_speed"]

SECTION = "speed"
SCHEMA = 1
K = 10
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000,)
SYSTEM_ORDER = ("severance", "mem0", "chroma")
REPO_ROOT = Path(__file__).resolve().parent.parent
FILTER_TAG = "conv-07"  # one of 50 tags: a 2% filter
Log = Callable[[str], None]


# -- small helpers ----------------------------------------------------------------------------


def _lat(seconds: Sequence[float]) -> dict[str, Any]:
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None}
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": len(arr),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }


def _overlap(got: Sequence[Sequence[str]], want: Sequence[Sequence[str]]) -> float | None:
    """Mean share of the exact top-k texts found in each result list (recall@k vs exact)."""
    if not got:
        return None
    scores = [len(set(g) & set(w)) / max(1, len(w)) for g, w in zip(got, want, strict=False)]
    return float(np.mean(scores))


def _exact_top(
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


def _usearch_index() -> Any:
    # onnxruntime must be imported before usearch (see severance.search.dense._usearch_index).
    import onnxruntime  # noqa: F401
    from usearch.index import Index

    return Index


# -- ceiling ----------------------------------------------------------------------------------


def _ceiling(
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
    out["numpy_exact"] = _lat(times)
    # A fresh graph on a sample: insertion throughput of the raw index.
    n_build = len(vectors)
    if 1000 <= n_build <= build_sample:
        index_cls = _usearch_index()
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
        out["hnsw_raw"] = {**_lat(times), "recall_at_10_vs_exact": _overlap(found, exact)}
    return out


# -- one system at one size -------------------------------------------------------------------


class _Run:
    """One system at one size, between its phases."""

    def __init__(self, name: str, system: SpeedSystem, workdir: Path, n: int) -> None:
        self.name = name
        self.system = system
        self.workdir = workdir
        self.res: dict[str, Any] = {"memories": n}


def _ingest(
    name: str,
    syn: Synthetic,
    n: int,
    corpus: Corpus,
    lookup: LookupEmbedder,
    opts: argparse.Namespace,
    root: Path,
    log: Log,
) -> _Run:
    """Batched writes of ``n - single`` memories, then ``single`` one-call writes."""
    single = min(opts.single, n // 10)
    workdir = Path(tempfile.mkdtemp(prefix=f"speed-{name}-{n}-", dir=root))
    run = _Run(name, SYSTEMS[name](workdir, lookup), workdir, n)
    system, res = run.system, run.res
    bulk = syn.slice(0, n - single)
    t0 = time.perf_counter()
    system.remember_batch(bulk)
    dt = time.perf_counter() - t0
    res["remember_batched"] = {"memories": len(bulk), "seconds": dt, "per_second": len(bulk) / dt}
    log(f"  {name}: {len(bulk):,} batched in {dt:.1f}s ({len(bulk) / dt:,.0f}/s)")
    if isinstance(system, SeveranceSpeed):
        # The first recall after an import in the same session: no stall (the index was
        # kept up to date by the import itself).
        t0 = time.perf_counter()
        system.recall(corpus.queries[0], K)
        res["first_recall_after_import_s"] = time.perf_counter() - t0
        log(f"  {name}: first recall after the import {res['first_recall_after_import_s']:.3f}s")
    t0 = time.perf_counter()
    for i in range(n - single, n):
        system.remember_one(syn.texts[i], syn.tags[i], float(syn.occurred_at[i]))
    dt = time.perf_counter() - t0
    res["remember_single"] = {"memories": single, "seconds": dt, "per_second": single / dt}
    log(f"  {name}: {single} single in {dt:.1f}s ({single / dt:,.0f}/s)")
    return run


def _probes(run: _Run) -> list[tuple[str, Callable[[str], list[str]]]]:
    system = run.system
    if isinstance(system, SeveranceSpeed):
        sev = system
        return [
            ("recall", lambda q: sev.recall(q, K)),
            ("recall_dense", lambda q: sev.recall(q, K, dense=True)),
            ("recall_filtered", lambda q: sev.recall_filtered(q, K, FILTER_TAG)),
        ]
    return [("recall", lambda q: system.recall(q, K))]


def _query_phase(
    runs: Sequence[_Run],
    queries: Sequence[str],
    exact: list[list[str]],
    budget_s: float,
    log: Log,
    min_n: int = 20,
) -> None:
    """Every probe of every system answers the same queries, interleaved query by query (so
    a change in the machine's load hits every system alike). A probe stops once it has
    spent ``budget_s`` (after at least ``min_n`` queries)."""
    probes = [(run, key, fn) for run in runs for key, fn in _probes(run)]
    times: dict[int, list[float]] = {i: [] for i in range(len(probes))}
    got: dict[int, list[list[str]]] = {i: [] for i in range(len(probes))}
    for _run, _key, fn in probes:
        fn(queries[-1])  # warm-up, not timed
    for qi, q in enumerate(queries):
        for i, (_run, _key, fn) in enumerate(probes):
            if qi >= min_n and sum(times[i]) > budget_s:
                continue
            t0 = time.perf_counter()
            got[i].append(fn(q))
            times[i].append(time.perf_counter() - t0)
    for i, (run, key, _fn) in enumerate(probes):
        block = _lat(times[i])
        if key != "recall_filtered":
            dense = not isinstance(run.system, SeveranceSpeed) or key == "recall_dense"
            block["mode"] = "dense" if dense else "hybrid"
            if dense:
                block["recall_at_10_vs_exact"] = _overlap(got[i], exact)
        else:
            block["filter"] = f"tags=[{FILTER_TAG}] (2%)"
        run.res[key] = block
    for run in runs:
        r = run.res["recall"]
        log(
            f"  {run.name}: recall p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
            f"({r['n']} queries)"
        )


def _finish(
    run: _Run, n: int, corpus: Corpus, queries_npz: Path, log: Log
) -> tuple[dict[str, Any], Any]:
    """Snapshot / flush, disk bytes, cold wake in a fresh process; returns the figures and
    Severance's graph (for the ceiling) when it has one."""
    system, res = run.system, run.res
    graph = None
    if isinstance(system, SeveranceSpeed):
        index = system.session._index
        if index is not None and getattr(index, "hnsw", None) is not None:
            # The ceiling searches this very graph with no memory layer around it.
            graph = (index.hnsw._ix, np.array(index.hnsw.key_slot, copy=True))
            res["hnsw"] = {
                "in_graph": len(index.hnsw),
                "pending": index.n_slots - index.hnsw.covered,
                "memory_bytes": index.hnsw.memory_bytes(),
            }
    try:
        t0 = time.perf_counter()
        cfg = system.wake_config()
        system.persist()
        res["persist_seconds"] = time.perf_counter() - t0
        disk = system.disk_bytes()
        res["disk_bytes"] = disk
        res["disk_bytes_per_memory"] = disk / n
        cfg.update(
            queries=str(queries_npz),
            embedder=corpus.embedder,
            dimension=corpus.dimension,
            k=K,
            after=20,
        )
        res["wake"] = _wake(cfg, run.workdir, log, run.name)
        if res["wake"].get("rss_delta_bytes") is not None:
            res["wake"]["rss_delta_bytes_per_memory"] = res["wake"]["rss_delta_bytes"] / n
        res["info"] = system.info()
        res["status"] = "ok"
    finally:
        _discard(run)
    return res, graph


def _discard(run: _Run) -> None:
    run.system.close()
    gc.collect()
    remove_tree(run.workdir)


def _settle(log: Log, limit_s: float = 300.0, window_s: float = 2.0) -> float:
    """Wait until this process stops using CPU between calls: Chroma indexes what ``add()``
    wrote in background threads, which would otherwise slow every system's queries."""
    import psutil

    proc = psutil.Process()
    t0 = time.perf_counter()
    before = sum(proc.cpu_times()[:2])
    while time.perf_counter() - t0 < limit_s:
        time.sleep(window_s)
        now = sum(proc.cpu_times()[:2])
        busy, before = now - before, now
        if busy < 0.05 * window_s:
            break
    waited = time.perf_counter() - t0
    log(f"  settled after {waited:.0f}s (background work of the stores)")
    return waited


def _wake(cfg: dict[str, Any], workdir: Path, log: Log, name: str) -> dict[str, Any]:
    path = workdir / "wake.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    env = dict(
        os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench.speed_wake", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        log(f"  {name}: wake FAILED: {' | '.join(tail)}")
        return {"error": " | ".join(tail)}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    log(
        f"  {name}: wake {out['wake_seconds']:.2f}s, RSS +{out['rss_delta_bytes'] / 2**20:,.0f} MiB"
    )
    return out


def _projection(prev: dict[str, Any] | None, n: int, n_queries: int) -> dict[str, Any] | None:
    """Minutes a system would need at size ``n``, from its rates at a smaller size."""
    if not prev or prev.get("status") != "ok":
        return None
    scale = n / prev["memories"]
    ingest = n / prev["remember_batched"]["per_second"]
    single = prev["remember_single"]["memories"] / prev["remember_single"]["per_second"]
    # Query latency grows at most linearly with size for these systems.
    query = n_queries * (prev["recall"]["mean_ms"] or 0.0) / 1000.0 * scale
    return {
        "from_size": prev["memories"],
        "ingest_minutes": ingest / 60,
        "minutes": (ingest + single * scale + query) / 60,
        "remember_batched_per_second": prev["remember_batched"]["per_second"],
    }


# -- the section ------------------------------------------------------------------------------


def run_speed(opts: argparse.Namespace, log: Log = print) -> dict[str, Any]:
    started = datetime.now(UTC)
    sizes = sorted(opts.sizes)
    root = Path(tempfile.mkdtemp(prefix="bench-speed-", dir=opts.workdir))
    log(f"speed: sizes {', '.join(f'{s:,}' for s in sizes)}; systems {', '.join(opts.systems)}")
    corpus = load_corpus(opts.queries)
    log(
        f"embedder {corpus.embedder}: {len(corpus.turns):,} turn vectors "
        f"({corpus.turns_embedded_now} embedded now), {len(corpus.queries)} queries"
    )
    t0 = time.perf_counter()
    syn = make_synthetic(corpus, max(sizes))
    log(f"synthesised {len(syn):,} memories in {time.perf_counter() - t0:.1f}s")
    emb = derived_vs_real(corpus, syn, opts.embed_sample)
    q_lat = _lat(corpus.query_embed_seconds)
    embedder = {
        "name": corpus.embedder,
        "dimension": corpus.dimension,
        "model_load_seconds": corpus.model_load_seconds,
        "batch_texts_per_second": emb["texts_per_second"],
        "batch_size": emb["batch_size"],
        "batch_sample": emb["texts"],
        "sample_mean_chars": emb["mean_chars"],
        "single_query_ms": q_lat,
        "derived_vs_real_cosine_mean": emb["derived_vs_real_cosine_mean"],
        "derived_vs_real_cosine_p10": emb["derived_vs_real_cosine_p10"],
    }
    log(
        f"embedder: {emb['texts_per_second']:.0f} texts/s at batch {emb['batch_size']}, "
        f"one query p50 {q_lat['p50_ms']:.1f} ms; derived vectors vs real: cosine "
        f"{emb['derived_vs_real_cosine_mean']:.3f}"
    )
    corpus.model = None  # free the model before the stores grow
    gc.collect()

    lookup = LookupEmbedder(corpus.embedder, corpus.dimension, syn.texts, syn.vectors)
    lookup.add(corpus.queries, corpus.query_vectors)
    queries_npz = root / "queries.npz"
    np.savez(queries_npz, texts=np.array(corpus.queries), vectors=corpus.query_vectors)

    results: dict[str, Any] = {}
    ok = True
    previous: dict[str, dict[str, Any]] = {}
    for n in sizes:
        log(f"== {n:,} memories")
        vectors = syn.vectors[:n]
        texts = syn.texts[:n]
        exact = _exact_top(vectors, texts, corpus.query_vectors, K)
        block: dict[str, Any] = {"memories": n, "systems": {}}
        graph = None
        runs: list[_Run] = []
        for name in opts.systems:
            proj = _projection(previous.get(name), n, len(corpus.queries))
            if name != "severance" and proj and proj["minutes"] > opts.budget:
                block["systems"][name] = {
                    "memories": n,
                    "status": "not run",
                    "reason": f"projected {proj['minutes']:.0f} min from its {proj['from_size']:,}"
                    f"-memory rates, over the {opts.budget:g}-minute budget",
                    "projected": proj,
                }
                log(f"  {name}: not run ({block['systems'][name]['reason']})")
                continue
            try:
                runs.append(_ingest(name, syn, n, corpus, lookup, opts, root, log))
            except Exception as exc:  # record, keep the other systems' figures
                ok = False
                log(traceback.format_exc())
                block["systems"][name] = _failed(n, exc)
        block["settle_seconds"] = _settle(log)
        try:
            _query_phase(runs, corpus.queries, exact, opts.query_budget, log)
        except Exception as exc:
            ok = False
            log(traceback.format_exc())
            for run in runs:
                block["systems"][run.name] = _failed(n, exc)
                _discard(run)
            runs = []
        for run in runs:
            try:
                res, g = _finish(run, n, corpus, queries_npz, log)
            except Exception as exc:
                ok = False
                log(traceback.format_exc())
                res, g = _failed(n, exc), None
            block["systems"][run.name] = res
            if g is not None:
                graph = g
        for name in opts.systems:
            if name in block["systems"]:
                previous[name] = block["systems"][name]
        block["ceiling"] = _ceiling(
            vectors,
            corpus.query_vectors,
            exact,
            texts,
            graph=graph,
            build_sample=opts.build_sample,
            log=log,
        )
        block["ratios"] = _ratios(block)
        results[str(n)] = block
        del graph
        gc.collect()
    remove_tree(root)

    from severance.search import dense as sdense
    from severance.search import index as sindex

    plot = _plot(results, opts.plot_path, log) if opts.plot_path else None
    return {
        "section": SECTION,
        "schema": SCHEMA,
        "generated_at": started.isoformat(timespec="seconds"),
        "duration_seconds": (datetime.now(UTC) - started).total_seconds(),
        "command": opts.command,
        "quick": opts.quick,
        "ok": ok,
        "machine": machine_info(),
        "versions": package_versions(),
        "settings": {
            "sizes": sizes,
            "systems": list(opts.systems),
            "k": K,
            "queries": len(corpus.queries),
            "query_budget_seconds": opts.query_budget,
            "single_sample": opts.single,
            "peer_budget_minutes": opts.budget,
            "hnsw": {
                "threshold": getattr(sindex, "HNSW_THRESHOLD", None),
                "batch": getattr(sindex, "HNSW_BATCH", None),
                "dtype": getattr(sdense, "HNSW_DTYPE", None),
                "connectivity": getattr(sdense, "HNSW_CONNECTIVITY", None),
                "expansion_add": getattr(sdense, "HNSW_EXPANSION_ADD", None),
                "expansion_search": getattr(sdense, "HNSW_EXPANSION_SEARCH", None),
            },
            "data": "synthetic memories: two random LoCoMo turns concatenated (seeded); vector = "
            "normalise(v[a] + v[b]) of the two turns' real MiniLM vectors; queries: LoCoMo "
            "questions with real vectors",
        },
        "embedder": embedder,
        "sizes": results,
        "plot": plot,
    }


def _failed(n: int, exc: BaseException) -> dict[str, Any]:
    return {"memories": n, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def _ratios(block: dict[str, Any]) -> dict[str, Any]:
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


def _plot(results: dict[str, Any], path: Path, log: Log) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot")
        return None
    series: dict[str, list[tuple[int, float, float]]] = {}
    for size, block in results.items():
        for name, res in block["systems"].items():
            if res.get("status") != "ok":
                continue
            label = {"severance": "Severance (hybrid)", "mem0": "mem0", "chroma": "Chroma"}[name]
            series.setdefault(label, []).append(
                (int(size), res["recall"]["p50_ms"], res["recall"]["p99_ms"])
            )
            if name == "severance":
                d = res["recall_dense"]
                series.setdefault("Severance (dense)", []).append(
                    (int(size), d["p50_ms"], d["p99_ms"])
                )
        for key, label in (("numpy_exact", "numpy brute force"), ("hnsw_raw", "raw HNSW")):
            c = block.get("ceiling", {}).get(key)
            if c and c.get("p50_ms") is not None:
                series.setdefault(label, []).append((int(size), c["p50_ms"], c["p99_ms"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, pts in series.items():
        pts.sort()
        xs = [p[0] for p in pts]
        dashed = label in ("numpy brute force", "raw HNSW")
        ax.plot(xs, [p[1] for p in pts], marker="o", linestyle="--" if dashed else "-", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("memories in one persona")
    ax.set_ylabel("recall latency p50 (ms, log)")
    ax.set_title("Recall latency against size (k = 10, query vectors precomputed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    log(f"wrote {path}")
    return path.name


# -- section hooks used by ``python -m bench`` ---------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("speed and scale")
    g.add_argument(
        "--speed-sizes",
        default=None,
        help="comma-separated sizes (default 10000,100000,1000000; --quick: 10000)",
    )
    g.add_argument(
        "--speed-systems",
        default=",".join(SYSTEM_ORDER),
        help="comma-separated subset of: " + ", ".join(SYSTEM_ORDER),
    )
    g.add_argument("--speed-queries", type=int, default=None, help="queries (default 200/60)")
    g.add_argument(
        "--speed-single", type=int, default=None, help="one-call remembers (default 500/200)"
    )
    g.add_argument(
        "--speed-budget",
        type=float,
        default=12.0,
        help="minutes a peer may take at one size before it is projected instead of run",
    )
    g.add_argument(
        "--speed-workdir", type=Path, default=None, help="where the stores go (default: $TMPDIR)"
    )


def run_options(
    args: argparse.Namespace,
    systems: list[str],
    full_sizes: tuple[int, ...],
    plot_path: Path | None,
) -> argparse.Namespace:
    """What :func:`run_speed` needs, from the command line (shared by the PostgreSQL section)."""
    quick = bool(args.quick)
    sizes = (
        [int(s) for s in args.speed_sizes.split(",") if s.strip()]
        if args.speed_sizes
        else list(QUICK_SIZES if quick else full_sizes)
    )
    return argparse.Namespace(
        sizes=sizes,
        systems=systems,
        queries=args.speed_queries or (60 if quick else 200),
        single=args.speed_single or (200 if quick else 500),
        budget=args.speed_budget,
        query_budget=20.0 if quick else 60.0,
        embed_sample=128 if quick else 512,
        build_sample=100_000,
        workdir=args.speed_workdir,
        quick=quick,
        command=args.command_line,
        plot_path=plot_path,
    )


def run(args: argparse.Namespace, log: Log = print) -> tuple[dict[str, Any], bool]:
    systems = [s.strip() for s in args.speed_systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEM_ORDER))
    if unknown:
        raise ValueError(f"unknown system(s): {', '.join(unknown)}")
    if args.no_docs:
        plot_dir = args.out
    elif args.docs:
        plot_dir = args.docs.parent
    else:
        plot_dir = args.out if args.quick else REPO_ROOT / "docs"
    opts = run_options(
        args,
        [s for s in SYSTEM_ORDER if s in systems],
        FULL_SIZES,
        plot_dir / "benchmarks-speed.png",
    )
    result = run_speed(opts, log=log)
    return result, bool(result["ok"])


# -- rendering --------------------------------------------------------------------------------

_LABELS = {
    "severance": "Severance",
    "mem0": "mem0 (`infer=False`, local Qdrant)",
    "chroma": "Chroma (persistent)",
    "severance-pg-sealed": "Severance on PostgreSQL, sealed vectors",
    "severance-pg-indexed": "Severance on PostgreSQL, indexed vectors (pgvector HNSW)",
}


def _f(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}{unit}"
        return f"{value:.{digits}f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    st = res["settings"]
    emb = res["embedder"]
    out: list[str] = []
    scope = "QUICK SUBSET — not the published figures. " if res.get("quick") else ""
    out.append(
        f"{scope}Measured {res['generated_at']} on {m['cpus']} CPU cores "
        f"({m.get('cpu_model') or 'unknown CPU'}, {m.get('memory_gib')} GiB), Python "
        f"{m['python']}, run time {res['duration_seconds'] / 60:.1f} min. The machine is shared "
        "and noisy: compare systems through the ratios below (measured in the same run), not "
        "through absolute figures."
    )
    out.append("")
    out.append(
        f"Every system holds all memories in **one** persona / user / collection and gets the "
        f"same texts and vectors. Data: {st['data']}. Writes are fed precomputed vectors "
        "(memory-layer cost only); the embedder is measured apart. Recall: k = 10, one query "
        f"at a time, {st['queries']} LoCoMo questions (fewer when a system's queries exceed "
        f"{st['query_budget_seconds']:g} s), query vectors precomputed, interleaved query by "
        "query across systems, and only once the process's background work has settled "
        "(Chroma builds its HNSW index from what `add()` wrote in background threads, so its "
        "batched write rate does not include indexing; the wait is recorded as "
        "`settle_seconds`)."
    )
    out.append("")
    out.append("### Speed, memory and disk")
    out.append("")
    rows = []
    for size, block in res["sizes"].items():
        n = int(size)
        # Severance's rows first, then the peers', each in the order they were run.
        for name in sorted(block["systems"], key=lambda s: not s.startswith("severance")):
            r = block["systems"].get(name)
            if r is None:
                continue
            label = f"{_LABELS[name]}"
            if r.get("status") != "ok":
                why = r.get("reason", r.get("status"))
                rows.append([_size(n), label, f"_{r.get('status')}: {why}_", *[""] * 7])
                continue
            w = r.get("wake", {})
            rows.append(
                [
                    _size(n),
                    label,
                    _f(r["remember_batched"]["per_second"], 0),
                    _f(r["remember_single"]["per_second"], 0),
                    _f(r["recall"]["p50_ms"], 2),
                    _f(r["recall"]["p99_ms"], 2),
                    _f(w.get("wake_seconds"), 2),
                    _f((w.get("rss_delta_bytes") or 0) / 2**20, 0)
                    if w.get("rss_delta_bytes")
                    else "–",
                    _f(w.get("rss_delta_bytes_per_memory"), 0),
                    _f(r["disk_bytes_per_memory"], 0),
                ]
            )
    out.append(
        _table(
            [
                "memories",
                "system",
                "remember/s batched",
                "remember/s single",
                "recall p50 (ms)",
                "recall p99 (ms)",
                "wake (s)",
                "RSS after wake (MiB)",
                "RSS bytes/memory",
                "disk bytes/memory",
            ],
            rows,
        )
    )
    out.append("")
    out.append(
        "Severance's recall is its default hybrid search (dense + BM25, fused) and includes "
        "decrypting the 10 returned memories; mem0 and Chroma rank by dense similarity only. "
        "**Wake**: a fresh process opens the store and answers one query (Severance: `enter` + "
        "first `recall`, which loads the encrypted index snapshot written by "
        "`session.checkpoint()`: with SQLite its own file beside the database, read through "
        "`mmap` and decrypted into one buffer); **RSS** is that process's resident set after "
        "the wake minus its resident set after imports. **Disk** is everything under the "
        "store's directory (Severance: SQLite database and WAL, memories, history and the "
        "encrypted snapshot file)."
    )

    # Severance details.
    out.append("")
    out.append("### Severance: search modes, filters and quality")
    out.append("")
    rows = []
    for size, block in res["sizes"].items():
        r = block["systems"].get("severance")
        if not r or r.get("status") != "ok":
            continue
        d, f_ = r["recall_dense"], r["recall_filtered"]
        h = r.get("hnsw")
        rows.append(
            [
                _size(int(size)),
                "HNSW" if h else "exact",
                f"{_f(r['recall']['p50_ms'], 2)} / {_f(r['recall']['p99_ms'], 2)}",
                f"{_f(d['p50_ms'], 2)} / {_f(d['p99_ms'], 2)}",
                f"{_f(f_['p50_ms'], 2)} / {_f(f_['p99_ms'], 2)}",
                _f(d.get("recall_at_10_vs_exact"), 3),
                _f(r["wake"].get("after_wake_p50_ms"), 2),
                _f(r.get("first_recall_after_import_s"), 2),
                _f(r.get("persist_seconds"), 1),
            ]
        )
    out.append(
        _table(
            [
                "memories",
                "dense index",
                "hybrid p50 / p99 (ms)",
                "dense p50 / p99 (ms)",
                "2% tag filter p50 / p99 (ms)",
                "dense recall@10 vs exact",
                "recall p50 after wake (ms)",
                "first recall after the import (s)",
                "checkpoint (s)",
            ],
            rows,
        )
    )
    hn = st["hnsw"]
    out.append("")
    out.append(
        f"Dense search is exact below {hn['threshold']:,} live memories and goes through an "
        f"HNSW graph above (usearch, {hn['dtype']} vectors in the graph, connectivity "
        f"{hn['connectivity']}, expansion {hn['expansion_add']} on insert); graph candidates "
        "are re-scored exactly against the persona's own rows (float16 once it has a graph: "
        "half the snapshot, the memory and the wake's decryption), and a selective filter is "
        "scored exactly. *Recall@10 vs exact* is the share of the brute-force (float32) top 10 "
        "that dense mode "
        "returns. *First recall after the import* is the same session's first `recall` after "
        "its `remember_many` calls: the import keeps the index up to date, so nothing is "
        "rebuilt. A search runs with numpy's BLAS limited to one thread, ranks from arrays the "
        "index owns (fusion, conversation context and the query-analysis re-ranking, which "
        "reads per-memory features kept in the index), and decrypts only the k memories it "
        "returns; `tests/test_recall_golden.py` checks that the results are the same as "
        "before these changes."
    )

    # Ratios against peers.
    peer_rows = []
    for size, block in res["sizes"].items():
        for peer in ("mem0", "chroma"):
            r = block.get("ratios", {}).get(f"vs_{peer}")
            if not r:
                continue
            peer_rows.append(
                [
                    _size(int(size)),
                    _LABELS[peer],
                    f"{_f(r['remember_batched'], 2)}×",
                    f"{_f(r['remember_single'], 2)}×",
                    f"{_f(r['recall_p50_speedup_hybrid'], 1)}×",
                    f"{_f(r['recall_p50_speedup_dense'], 1)}×",
                    f"{_f(r.get('wake_speedup'), 1)}×",
                    f"{_f(r.get('rss'), 2)}×",
                    f"{_f(r['disk'], 2)}×",
                ]
            )
    if peer_rows:
        out.append("")
        out.append("### Severance against its peers (same run)")
        out.append("")
        out.append(
            _table(
                [
                    "memories",
                    "peer",
                    "remember batched (ours/theirs)",
                    "remember single (ours/theirs)",
                    "recall p50 speed-up, hybrid",
                    "recall p50 speed-up, dense",
                    "wake speed-up",
                    "RSS (ours/theirs)",
                    "disk (ours/theirs)",
                ],
                peer_rows,
            )
        )
        out.append("")
        out.append(
            "Throughput ratios above 1 and speed-ups above 1 favour Severance; RSS and disk "
            "ratios below 1 favour Severance. Severance encrypts every memory (AES-256-GCM), "
            "commits each write with fsync, keeps version history and a BM25 index; the peers "
            "do not encrypt."
        )
    projected = [
        (size, name, r)
        for size, block in res["sizes"].items()
        for name, r in block["systems"].items()
        if r.get("status") == "not run"
    ]
    if projected:
        out.append("")
        for size, name, r in projected:
            p = r["projected"]
            out.append(
                f"- {_LABELS[name]} at {_size(int(size))}: not run (projected from trend): about "
                f"{p['minutes']:.0f} min, of which {p['ingest_minutes']:.0f} min to write at its "
                f"{_size(p['from_size'])} batched rate of {p['remember_batched_per_second']:,.0f}"
                " memories/s."
            )

    # Ceilings.
    out.append("")
    out.append("### Ceilings: the embedder and the raw index")
    out.append("")
    ql = emb["single_query_ms"]
    out.append(
        f"Embedder `{emb['name']}` ({emb['dimension']} dims, CPU): "
        f"**{_f(emb['batch_texts_per_second'], 0)} texts/s** at batch {emb['batch_size']} "
        f"({emb['batch_sample']} synthetic memories of ~{_f(emb['sample_mean_chars'], 0)} "
        f"characters); one query: p50 {_f(ql['p50_ms'], 1)} ms, p99 {_f(ql['p99_ms'], 1)} ms; "
        f"model load {_f(emb['model_load_seconds'], 2)} s. Embedding, not the memory layer, "
        "bounds end-to-end ingest (every row above writes faster than the model embeds), and "
        "a recall adds one query embedding to the figures above. The synthetic vectors are "
        f"within cosine {_f(emb['derived_vs_real_cosine_mean'], 3)} (mean; 10th percentile "
        f"{_f(emb['derived_vs_real_cosine_p10'], 3)}) of the model's real embedding of the "
        "same texts."
    )
    out.append("")
    rows = []
    for size, block in res["sizes"].items():
        c = block.get("ceiling", {})
        ne, hr, hb = c.get("numpy_exact", {}), c.get("hnsw_raw", {}), c.get("hnsw_build", {})
        ov = block.get("ratios", {}).get("overhead_vs_raw_index", {})
        sev = block["systems"].get("severance", {})
        rows.append(
            [
                _size(int(size)),
                f"{_f(ne.get('p50_ms'), 2)} / {_f(ne.get('p99_ms'), 2)}",
                f"{_f(hr.get('p50_ms'), 3)} / {_f(hr.get('p99_ms'), 3)}" if hr else "–",
                _f(hr.get("recall_at_10_vs_exact"), 3) if hr else "–",
                _f(hb.get("per_second"), 0) if hb else "–",
                _f(sev.get("recall_dense", {}).get("p50_ms"), 2),
                f"{_f(ov.get('dense_p50'), 1)}× / {_f(ov.get('hybrid_p50'), 1)}× "
                f"({'HNSW' if ov.get('raw_index') == 'hnsw_raw' else 'numpy'})"
                if ov
                else "–",
            ]
        )
    out.append(
        _table(
            [
                "memories",
                "numpy top-10 p50 / p99 (ms)",
                "raw HNSW top-10 p50 / p99 (ms)",
                "raw HNSW recall@10",
                "raw HNSW build (vectors/s)",
                "Severance dense p50 (ms)",
                "overhead dense / hybrid vs raw index",
            ],
            rows,
        )
    )
    out.append("")
    out.append(
        "The overhead ratio is Severance's recall p50 divided by the raw index's top-10 p50 on "
        "the same vectors (the index Severance uses at that size: numpy below the HNSW "
        "threshold, the persona's own graph above it). It is the figure to drive down: it "
        "covers the memory layer — syncing with the database, the wider candidate list fused "
        "with BM25 (100 per list), exact re-scoring, fetching and decrypting the results."
    )
    if res.get("plot"):
        out.append("")
        out.append(f"![Recall latency against size]({res['plot']})")
    out.append("")
    out.append("### How each system was set up")
    out.append("")
    seen: set[str] = set()
    for block in res["sizes"].values():
        for name, r in block["systems"].items():
            if name in seen or r.get("status") != "ok":
                continue
            seen.add(name)
            info = "; ".join(f"{k}: {v}" for k, v in r.get("info", {}).items())
            out.append(f"- **{_LABELS[name]}** — {info}")
    versions = ", ".join(f"{k} {v}" for k, v in res.get("versions", {}).items() if v)
    out.append(f"- Versions: {versions}.")
    return "\n".join(out)
