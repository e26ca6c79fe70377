"""Import embedding throughput at ~70 tokens: ``python -m bench.speed_embed [--texts N]``.

The speed section's ingest figures exclude embedding (every system gets the same cached
vectors), so this measures the embedding an import pays, with the bundled MiniLM, on texts of
about 70 tokens (consecutive LoCoMo turns joined, the length of a chat message with context,
not a bare short turn). Each configuration embeds the same texts in the same order; figures
are texts/s and the ratio against the default configuration measured in the same run:

* ``window``: how many texts are handed to one ``embed`` call (``remember_many`` hands it one
  commit batch, 256; the embedder sorts by length within a call, so a wider window pads less);
* ``batch``: the embedder's inference batch; ``threads``: onnxruntime intra-op threads.

Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.locomo import load_locomo

DEFAULT = {"window": 256, "batch": 64, "threads": 0}
CONFIGS = [
    DEFAULT,
    {"window": 4096, "batch": 64, "threads": 0},
    {"window": 256, "batch": 32, "threads": 0},
    {"window": 256, "batch": 128, "threads": 0},
    {"window": 4096, "batch": 32, "threads": 0},
    {"window": 256, "batch": 64, "threads": 1},
]


def long_texts(n: int, tokens: int = 70) -> list[str]:
    """``n`` texts of about ``tokens`` tokens: consecutive turns of one conversation joined."""
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


def measure(texts: list[str], window: int, batch: int, threads: int) -> dict[str, Any]:
    from severance.embedders.minilm import MiniLM

    model = MiniLM(cache_size=0, batch_size=batch, threads=threads or None)
    model.embed(texts[:8])  # warm-up: the first run allocates onnxruntime's arenas
    t0 = time.perf_counter()
    for start in range(0, len(texts), window):
        model.embed(texts[start : start + window])
    seconds = time.perf_counter() - t0
    return {
        "window": window,
        "batch": batch,
        "threads": threads or "default",
        "seconds": seconds,
        "texts_per_second": len(texts) / seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed_embed")
    p.add_argument("--texts", type=int, default=2048)
    args = p.parse_args(argv)
    texts = long_texts(args.texts)
    from severance.embedders.minilm import MiniLM

    lengths = MiniLM(cache_size=0).token_counts(texts)
    rows = [measure(texts, **cfg) for cfg in CONFIGS]
    base = rows[0]["texts_per_second"]
    for row in rows:
        row["vs_default"] = row["texts_per_second"] / base
        print(
            f"window {row['window']:>5} batch {row['batch']:>4} threads {row['threads']!s:>7}: "
            f"{row['texts_per_second']:7.1f} texts/s ({row['vs_default']:.2f}x)"
        )
    out = {
        "texts": len(texts),
        "mean_tokens": sum(lengths) / len(lengths),
        "configs": rows,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
