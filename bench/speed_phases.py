"""The phases of one system at one size in the speed section: write, query, persist and wake.

:func:`ingest` builds the system and times its batched and one-call writes; :func:`query_phase`
times every system's searches on the same queries, interleaved; :func:`finish` persists the
store, measures its disk use and times a cold wake in a fresh process (:mod:`bench.speed_wake`)
and, for Severance, an import into the persona from a fresh process (:mod:`bench.speed_import`).
:mod:`bench.speed` runs them for each size and system.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.speed_data import Corpus, LookupEmbedder, Synthetic
from bench.speed_e2e import E2E_MAX, end_to_end
from bench.speed_import import save_import_set
from bench.systems import SpeedFactory, SpeedSystem
from bench.systems.severance_store import SeveranceSystem

__all__ = [
    "FILTER_TAG",
    "K",
    "Log",
    "Run",
    "discard",
    "failed",
    "finish",
    "ingest",
    "latency",
    "overlap",
    "probes_of",
    "projection",
    "query_phase",
    "settle",
    "wake",
]

K = 10
REPO_ROOT = Path(__file__).resolve().parent.parent
FILTER_TAG = "conv-07"  # one of 50 tags: a 2% filter
Log = Callable[[str], None]


def latency(seconds: Sequence[float]) -> dict[str, Any]:
    """Count, p50, p99 and mean in milliseconds of ``seconds``."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None}
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": len(arr),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
    }


def overlap(got: Sequence[Sequence[str]], want: Sequence[Sequence[str]]) -> float | None:
    """Mean share of the exact top-k texts found in each result list (recall@k vs exact)."""
    if not got:
        return None
    scores = [len(set(g) & set(w)) / max(1, len(w)) for g, w in zip(got, want, strict=False)]
    return float(np.mean(scores))


class Run:
    """One system at one size, between its phases."""

    def __init__(self, name: str, system: SpeedSystem, workdir: Path, n: int) -> None:
        self.name = name
        self.system = system
        self.workdir = workdir
        self.res: dict[str, Any] = {"memories": n}
        #: The memories of the after-wake import probe (Severance only), once saved.
        self.import_set: Path | None = None


def ingest(
    name: str,
    factory: SpeedFactory,
    syn: Synthetic,
    n: int,
    corpus: Corpus,
    lookup: LookupEmbedder,
    opts: argparse.Namespace,
    root: Path,
    log: Log,
) -> Run:
    """Batched writes of ``n - single`` memories, then ``single`` one-call writes."""
    single = min(opts.single, n // 10)
    workdir = Path(tempfile.mkdtemp(prefix=f"speed-{name}-{n}-", dir=root))
    run = Run(name, factory(lookup, workdir), workdir, n)
    system, res = run.system, run.res
    try:
        system.open_scope()
    except BaseException:
        discard(run)
        raise
    bulk = syn.slice(0, n - single)
    t0 = time.perf_counter()
    system.remember_batch(bulk)
    dt = time.perf_counter() - t0
    res["remember_batched"] = {"memories": len(bulk), "seconds": dt, "per_second": len(bulk) / dt}
    log(f"  {name}: {len(bulk):,} batched in {dt:.1f}s ({len(bulk) / dt:,.0f}/s)")
    if isinstance(system, SeveranceSystem) and n <= E2E_MAX:
        run.import_set = workdir / "import.npz"
        save_import_set(run.import_set, syn, n)
    if isinstance(system, SeveranceSystem):
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


def probes_of(run: Run) -> list[tuple[str, Callable[[str], list[str]]]]:
    """The timed searches of a system: Severance's hybrid, dense and filtered recall; a
    peer's one (dense) search."""
    system = run.system
    if isinstance(system, SeveranceSystem):
        sev = system
        return [
            ("recall", lambda q: sev.recall(q, K)),
            ("recall_dense", lambda q: sev.recall(q, K, dense=True)),
            ("recall_filtered", lambda q: sev.recall_filtered(q, K, FILTER_TAG)),
        ]
    return [("recall", lambda q: system.recall(q, K))]


def query_phase(
    runs: Sequence[Run],
    queries: Sequence[str],
    exact: list[list[str]],
    budget_s: float,
    log: Log,
    min_n: int = 20,
) -> None:
    """Every probe of every system answers the same queries, interleaved query by query (so
    a change in the machine's load hits every system alike). A probe stops once it has
    spent ``budget_s`` (after at least ``min_n`` queries)."""
    probes = [(run, key, fn) for run in runs for key, fn in probes_of(run)]
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
        block = latency(times[i])
        if key != "recall_filtered":
            dense = not isinstance(run.system, SeveranceSystem) or key == "recall_dense"
            block["mode"] = "dense" if dense else "hybrid"
            if dense:
                block["recall_at_10_vs_exact"] = overlap(got[i], exact)
        else:
            block["filter"] = f"tags=[{FILTER_TAG}] (2%)"
        run.res[key] = block
    for run in runs:
        r = run.res["recall"]
        log(
            f"  {run.name}: recall p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
            f"({r['n']} queries)"
        )


def finish(
    run: Run, n: int, corpus: Corpus, queries_npz: Path, log: Log
) -> tuple[dict[str, Any], Any]:
    """Snapshot / flush, disk bytes, cold wake in a fresh process; returns the figures and
    Severance's graph (for the ceiling) when it has one."""
    system, res = run.system, run.res
    graph = None
    if isinstance(system, SeveranceSystem):
        dense = system.dense_graph()
        if dense is not None:
            # The ceiling searches this very graph with no memory layer around it.
            graph, res["hnsw"] = dense
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
        res["wake"] = wake(cfg, run.workdir, log, run.name)
        if res["wake"].get("rss_delta_bytes") is not None:
            res["wake"]["rss_delta_bytes_per_memory"] = res["wake"]["rss_delta_bytes"] / n
        if isinstance(system, SeveranceSystem) and n <= E2E_MAX:
            res["end_to_end"] = end_to_end(cfg, corpus.queries, log, run.name)
        if run.import_set is not None:
            res["import_after_wake"] = import_after_wake(cfg, run.import_set, log, run.name)
        res["info"] = system.speed_info()
        res["status"] = "ok"
    finally:
        discard(run)
    return res, graph


def discard(run: Run) -> None:
    """Close the system and remove everything it wrote."""
    run.system.close()
    gc.collect()
    shutil.rmtree(run.workdir, ignore_errors=True)


def settle(log: Log, limit_s: float = 300.0, window_s: float = 2.0) -> float:
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


def wake(cfg: dict[str, Any], workdir: Path, log: Log, name: str) -> dict[str, Any]:
    """Open the persisted store in a fresh process (:mod:`bench.speed_wake`); its figures."""
    path = workdir / "wake.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    out = _process("bench.speed_wake", [str(path)], 1800)
    if "error" in out:
        log(f"  {name}: wake FAILED: {out['error']}")
        return out
    log(
        f"  {name}: wake {out['wake_seconds']:.2f}s, RSS +{out['rss_delta_bytes'] / 2**20:,.0f} MiB"
    )
    return out


def _process(module: str, args: Sequence[str], timeout: float) -> dict[str, Any]:
    """The JSON object a bench module run in a fresh process prints last; ``{"error": ...}``
    if it fails."""
    env = dict(
        os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def import_after_wake(cfg: dict[str, Any], import_set: Path, log: Log, name: str) -> dict[str, Any]:
    """Imports into the checkpointed persona, each from a fresh process (a CLI run, a server
    restart): the persona's first memories again (all duplicates: a resumed import), then as
    many new ones. What a user waits for, from ``enter`` to the last commit."""
    path = import_set.with_suffix(".json")
    path.write_text(json.dumps({**cfg, "import": str(import_set)}), encoding="utf-8")
    out: dict[str, Any] = {}
    for which in ("again", "new"):  # "new" writes: last
        out[which] = r = _process("bench.speed_import", ["after-wake", str(path), which], 1800)
        if "error" in r:
            log(f"  {name}: import after wake ({which}) FAILED: {r['error']}")
            continue
        log(
            f"  {name}: import of {r['memories']:,} after a wake ({which}): {r['seconds']:.2f}s, "
            f"first commit after {r['first_commit_seconds']:.2f}s"
        )
    return out


def projection(prev: dict[str, Any] | None, n: int, n_queries: int) -> dict[str, Any] | None:
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


def failed(n: int, exc: BaseException) -> dict[str, Any]:
    """The record of a system that failed at size ``n``."""
    return {"memories": n, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
