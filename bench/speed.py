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
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import machine_info, package_versions
from bench.speed_ceiling import ceiling, exact_top, ratios
from bench.speed_data import LookupEmbedder, derived_vs_real, load_corpus
from bench.speed_data import synthesise as make_synthetic
from bench.speed_phases import (
    K,
    Log,
    Run,
    discard,
    failed,
    finish,
    ingest,
    latency,
    projection,
    query_phase,
    settle,
)
from bench.speed_render import plot_latency, render
from bench.systems import SPEED_SYSTEMS, SpeedFactory

__all__ = ["Log", "add_arguments", "render", "run", "run_options", "run_speed"]

SECTION = "speed"
SCHEMA = 1
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000,)
#: ``--speed-scale``: the sizes, and the file the result goes to (its own subsection of the
#: speed section, rendered from ``speed_scale.json`` beside ``speed.json``).
SCALE_SIZES = (1_000_000,)
SCALE_FILE = "speed_scale.json"
#: Bytes written (and fsynced) to measure the disk a checkpoint writes to, in the same run.
DISK_PROBE_BYTES = 256 * 2**20
SYSTEM_ORDER = ("severance", "mem0", "chroma")
REPO_ROOT = Path(__file__).resolve().parent.parent


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
    q_lat = latency(corpus.query_embed_seconds)
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
        exact = exact_top(vectors, texts, corpus.query_vectors, K)
        block: dict[str, Any] = {"memories": n, "systems": {}}
        graph = None
        runs: list[Run] = []
        for name in opts.systems:
            proj = projection(previous.get(name), n, len(corpus.queries))
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
                factory = opts.factories[name]
                runs.append(ingest(name, factory, syn, n, corpus, lookup, opts, root, log))
            except Exception as exc:  # record, keep the other systems' figures
                ok = False
                log(traceback.format_exc())
                block["systems"][name] = failed(n, exc)
        block["settle_seconds"] = settle(log)
        try:
            query_phase(runs, corpus.queries, exact, opts.query_budget, log)
        except Exception as exc:
            ok = False
            log(traceback.format_exc())
            for run in runs:
                block["systems"][run.name] = failed(n, exc)
                discard(run)
            runs = []
        for run in runs:
            try:
                res, g = finish(run, n, corpus, queries_npz, log)
            except Exception as exc:
                ok = False
                log(traceback.format_exc())
                res, g = failed(n, exc), None
            block["systems"][run.name] = res
            if g is not None:
                graph = g
        for name in opts.systems:
            if name in block["systems"]:
                previous[name] = block["systems"][name]
        block["ceiling"] = ceiling(
            vectors,
            corpus.query_vectors,
            exact,
            texts,
            graph=graph,
            build_sample=opts.build_sample,
            log=log,
        )
        block["ratios"] = ratios(block)
        if opts.scale:
            block["disk_write"] = disk_write(root, DISK_PROBE_BYTES, log)
        results[str(n)] = block
        del graph
        gc.collect()
    shutil.rmtree(root, ignore_errors=True)

    from severance.search import dense as sdense
    from severance.search import index as sindex

    plot = plot_latency(results, opts.plot_path, log) if opts.plot_path else None
    scale = {"result_file": SCALE_FILE, "scale": True} if opts.scale else {}
    return {
        **scale,
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


def disk_write(root: Path, size: int, log: Log) -> dict[str, Any]:
    """Sequential write and fsync of ``size`` random bytes where the stores live: what the
    disk gives a checkpoint in this run (a checkpoint writes its snapshot file, fsynced)."""
    import os

    block = os.urandom(16 * 2**20)
    path = root / "disk-probe.bin"
    t0 = time.perf_counter()
    with path.open("wb") as f:
        for _ in range(0, size, len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    seconds = time.perf_counter() - t0
    path.unlink()
    log(f"  disk: {size / seconds / 2**20:,.0f} MiB/s written and fsynced")
    return {"bytes": size, "seconds": seconds, "bytes_per_second": size / seconds}


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
    g.add_argument(
        "--speed-scale",
        action="store_true",
        help=f"the scale run: default sizes {','.join(map(str, SCALE_SIZES))}, systems "
        f"severance; result written to {SCALE_FILE} (its own subsection), no plot",
    )


def run_options(
    args: argparse.Namespace,
    systems: list[str],
    full_sizes: tuple[int, ...],
    plot_path: Path | None,
    factories: Mapping[str, SpeedFactory] = SPEED_SYSTEMS,
    *,
    scale: bool = False,
) -> argparse.Namespace:
    """What :func:`run_speed` needs, from the command line (shared by the PostgreSQL section,
    which adds its systems to ``factories``)."""
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
        factories=dict(factories),
        scale=scale,
    )


def run(args: argparse.Namespace, log: Log = print) -> tuple[dict[str, Any], bool]:
    scale = bool(args.speed_scale)
    chosen = "severance" if scale and args.speed_systems == ",".join(SYSTEM_ORDER) else None
    systems = [s.strip() for s in (chosen or args.speed_systems).split(",") if s.strip()]
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
        SCALE_SIZES if scale else FULL_SIZES,
        None if scale else plot_dir / "benchmarks-speed.png",
        scale=scale,
    )
    result = run_speed(opts, log=log)
    return result, bool(result["ok"])
