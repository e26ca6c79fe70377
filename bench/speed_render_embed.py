"""The speed section's parts about imports: the embedder's throughput
(``bench.speed_embed``) and an import into a woken persona."""

from __future__ import annotations

from typing import Any

from bench.speed_cells import cell, size_label, table

__all__ = ["import_after_wake", "render_embed"]


def render_embed(emb: dict[str, Any]) -> str:
    """The embedder's import throughput and one-query latency (``speed_embed.json``)."""
    out = ["### Embedding at import: window, batch and threads", ""]
    load = emb.get("load_average_1min") or {}
    machine = emb.get("machine") or {}
    out.append(
        f"The bundled MiniLM on {emb['texts']:,} LoCoMo texts of {cell(emb['mean_tokens'], 0)} "
        f"tokens on average (~{cell(emb.get('mean_chars'), 0)} characters: consecutive turns "
        "joined, the length of a memory with context, not a bare short turn); every "
        f"configuration embeds the same texts, interleaved in {emb.get('rounds', 1)} round(s), "
        "and is compared with the previous default (window 256, batch 64) in the same run. "
        f"Measured {emb.get('generated_at', emb.get('measured'))} on "
        f"{machine.get('cpus', 2)} shared cores"
        + (
            f" (1-minute load average {cell(load.get('start'), 1)} at the start, "
            f"{cell(load.get('end'), 1)} at the end)"
            if load
            else ""
        )
        + "; the absolute rates are the machine's, the ratios are the evidence."
    )
    out.append("")
    rows = []
    window = emb.get("import_window", 256)
    batch = emb.get("default_batch", 64)
    for c in emb["configs"]:
        threads = c["threads"] if isinstance(c["threads"], int) else 0
        chosen = c["window"] == window and c["batch"] == batch and threads != 1
        rows.append(
            [
                f"**{c['window']:,}**" if chosen else f"{c['window']:,}",
                c["batch"],
                c["threads"],
                cell(c["texts_per_second"], 1),
                f"{cell(c.get('vs_old_default', c.get('vs_default')), 2)}×",
            ]
        )
    out.append(
        table(
            ["window (texts per embed call)", "batch", "threads", "texts/s", "vs window 256"], rows
        )
    )
    q = emb.get("one_query")
    out.append("")
    out.append(
        f"`remember_many` now embeds {window:,} texts per call (the embedder sorts "
        "them by length, so each inference batch is padded only to its own longest text) and "
        f"commits them in its batches of 256 as before; the bundled embedder's inference batch "
        f"is now {batch} (the bold row; it was 64). A window of 4,096 measured a little "
        "faster still, but doubles the texts embedded before the first commit of an import. "
        "Sealing and writing are not overlapped "
        "with embedding: the memory layer writes tens of times faster than the model embeds "
        "(the batched write rates above against these texts/s), so an overlap could save a "
        "few percent of an import at most."
    )
    if q:
        out.append("")
        out.append(
            f"One query ({q['queries']} LoCoMo questions, one at a time, cache off): p50 "
            f"{cell(q['one_thread']['p50_ms'], 2)} ms / p99 "
            f"{cell(q['one_thread']['p99_ms'], 2)} ms "
            f"on the one-thread session single texts use, against "
            f"{cell(q['batch_threads']['p50_ms'], 2)} ms / {cell(q['batch_threads']['p99_ms'], 2)} "
            f"ms on a {q.get('threads', 2)}-thread session, interleaved query by query."
        )
    out.append("")
    out.append(f"Produced by: `{emb['command']}`")
    return "\n".join(out)


def import_after_wake(res: dict[str, Any]) -> list[str]:
    """The after-wake import table (results that have it; none before it was measured)."""
    rows = []
    for size, block in res["sizes"].items():
        r = block["systems"].get("severance") or {}
        probe = r.get("import_after_wake") if r.get("status") == "ok" else None
        if not probe:
            continue
        cells = [size_label(int(size))]
        for which in ("again", "new"):
            one = probe.get(which) or {}
            cells.append(
                f"{cell(one.get('memories'), 0)}: {cell(one.get('seconds'), 2)} / "
                f"{cell(one.get('first_commit_seconds'), 2)}"
                if "seconds" in one
                else "–"
            )
        rows.append(cells)
    if not rows:
        return []
    return [
        "",
        table(
            [
                "memories",
                "import again (all duplicates): memories: total / first commit (s)",
                "import of new memories: memories: total / first commit (s)",
            ],
            rows,
        ),
        "",
        "*Import after a wake*: a fresh process (a CLI run, a server restart) enters the "
        "checkpointed persona and `remember_many`s memories into it, timed from `enter` to "
        "the last commit (*first commit*: how long before the first batch is stored). The "
        "duplicate check finds its leads in the woken index (each memory's identity key is "
        "kept there and in its encrypted snapshot) and decrypts only the memories a key "
        "points at, not the persona.",
    ]
