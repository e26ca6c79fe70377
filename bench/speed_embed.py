"""Import embedding throughput at ~70 tokens, and one query's latency:
``python -m bench.speed_embed [--texts N] [--queries N]``.

The speed section's ingest figures exclude embedding (every system gets the same cached
vectors), so this measures the embedding an import pays, with the bundled MiniLM, on texts of
about 70 tokens (consecutive LoCoMo turns joined, the length of a chat message with context,
not a bare short turn). Each configuration embeds the same texts in the same order; figures
are texts/s and the ratio against the previous default (window 256, batch 64) measured in
the same run, configurations interleaved round by round so that a change in the machine's
load hits them alike:

* ``window``: how many texts an import hands to one ``embed`` call (``remember_many`` hands
  it :data:`severance.session_writes.IMPORT_WINDOW`; the embedder sorts by length within a
  call, so a wider window pads less);
* ``batch``: the embedder's inference batch; ``threads``: onnxruntime intra-op threads.

One query: p50 / p99 of embedding one LoCoMo question at a time (cache off) on the one-thread
session single texts use (``query_threads=1``, the default) and on a session with the batch
threads, interleaved query by query.

Writes one JSON object to ``--out`` (default ``bench/results/speed_embed.json``), rendered in
the speed section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.locomo import load_locomo
from bench.machine import machine_info

OLD_DEFAULT = {"window": 256, "batch": 64, "threads": 0}
CONFIGS = [
    OLD_DEFAULT,
    {"window": 1024, "batch": 64, "threads": 0},
    {"window": 2048, "batch": 64, "threads": 0},
    {"window": 4096, "batch": 64, "threads": 0},
    {"window": 2048, "batch": 16, "threads": 0},
    {"window": 2048, "batch": 32, "threads": 0},
    {"window": 2048, "batch": 128, "threads": 0},
    {"window": 2048, "batch": 64, "threads": 1},
]
OUT = Path(__file__).resolve().parent / "results" / "speed_embed.json"


def long_texts(n: int, tokens: int = 60) -> list[str]:
    """``n`` texts of at least ``tokens`` tokens (about 70 on average): consecutive turns of
    one conversation joined."""
    from severance.embedders.minilm import MiniLM

    model = MiniLM(cache_size=0)
    out: list[str] = []
    for conv in load_locomo(None).conversations:
        parts: list[str] = []
        size = 0
        counts = model.token_counts([turn.document for turn in conv.turns])
        for turn, count in zip(conv.turns, counts, strict=True):
            parts.append(turn.document)
            size += count - 2  # without [CLS] and [SEP], added once to the joined text
            if size >= tokens:
                out.append(" ".join(parts))
                parts, size = [], 0
                if len(out) == n:
                    return out
    return out


def questions(n: int) -> list[str]:
    """``n`` distinct LoCoMo questions (one-query latency)."""
    qs = list(
        dict.fromkeys(q.question for c in load_locomo(None).conversations for q in c.questions)
    )
    return qs[:: max(1, len(qs) // n)][:n]


def _model(batch: int, threads: int, query_threads: int = 1) -> Any:
    from severance.embedders.minilm import MiniLM

    return MiniLM(
        cache_size=0, batch_size=batch, threads=threads or None, query_threads=query_threads
    )


def throughput(texts: list[str], rounds: int) -> list[dict[str, Any]]:
    """texts/s of every configuration, over ``rounds`` interleaved rounds, each on a share of
    ``texts`` (so that load changes hit every configuration alike). One model is alive at a
    time (built, warmed up and timed, then dropped): eight live sessions with their arenas
    took several GiB."""
    seconds = [0.0] * len(CONFIGS)
    threads = [0] * len(CONFIGS)
    share = -(-len(texts) // rounds)
    for r in range(rounds):
        part = texts[r * share : (r + 1) * share]
        for i, cfg in enumerate(CONFIGS):
            model = _model(cfg["batch"], cfg["threads"])
            model.embed(texts[-16:])  # warm-up: the first run allocates onnxruntime's arenas
            t0 = time.perf_counter()
            for start in range(0, len(part), cfg["window"]):
                model.embed(part[start : start + cfg["window"]])
            seconds[i] += time.perf_counter() - t0
            threads[i] = model.threads
            del model
            gc.collect()
        print(f"round {r + 1}/{rounds} done", flush=True)
    rows = []
    for cfg, n_threads, secs in zip(CONFIGS, threads, seconds, strict=True):
        rows.append(
            {
                "window": cfg["window"],
                "batch": cfg["batch"],
                "threads": n_threads,
                "seconds": secs,
                "texts_per_second": len(texts) / secs,
            }
        )
    base = rows[0]["texts_per_second"]
    for row in rows:
        row["vs_old_default"] = row["texts_per_second"] / base
    return rows


def one_query(qs: list[str]) -> dict[str, Any]:
    """One-query latency on the one-thread session and on a multi-threaded one."""
    one = _model(64, 0, query_threads=1)
    many = _model(64, 0, query_threads=one.threads)
    times: dict[str, list[float]] = {"one_thread": [], "batch_threads": []}
    for model in (one, many):
        model.embed(["warm-up query"])
    for q in qs:
        for key, model in (("one_thread", one), ("batch_threads", many)):
            t0 = time.perf_counter()
            model.embed([q])
            times[key].append(time.perf_counter() - t0)
    out: dict[str, Any] = {"queries": len(qs), "threads": many.threads}
    for key, secs in times.items():
        ms = np.asarray(secs) * 1000.0
        out[key] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.speed_embed")
    p.add_argument("--texts", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    texts = long_texts(args.texts)
    from severance.embedders.minilm import BATCH_SIZE, MiniLM
    from severance.session_writes import IMPORT_WINDOW

    lengths = MiniLM(cache_size=0).token_counts(texts)
    rows = throughput(texts, args.rounds)
    for row in rows:
        print(
            f"window {row['window']:>5} batch {row['batch']:>4} threads {row['threads']:>2}: "
            f"{row['texts_per_second']:7.1f} texts/s ({row['vs_old_default']:.2f}x)"
        )
    query = one_query(questions(args.queries))
    print(
        f"one query p50: {query['one_thread']['p50_ms']:.2f} ms on one thread, "
        f"{query['batch_threads']['p50_ms']:.2f} ms on {query['threads']} threads"
    )
    out = {
        "command": "python -m bench.speed_embed " + shlex.join(a for a in argv if a),
        "generated_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "import_window": IMPORT_WINDOW,
        "default_batch": BATCH_SIZE,
        "texts": len(texts),
        "mean_tokens": sum(lengths) / len(lengths),
        "mean_chars": sum(map(len, texts)) / len(texts),
        "rounds": args.rounds,
        "configs": rows,
        "one_query": query,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
