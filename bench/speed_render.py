"""Rendering of the speed section (and the PostgreSQL one): Markdown tables and the plot."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_latency", "render"]

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


def plot_latency(results: dict[str, Any], path: Path, log: Callable[[str], None]) -> str | None:
    """The recall-latency-against-size plot (PNG) at ``path``; its file name, or ``None``."""
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
