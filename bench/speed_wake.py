"""Cold wake in a fresh process: ``python -m bench.speed_wake <config.json>``.

Imports the system's library, loads the precomputed query vectors, records the resident set
size (the *baseline*), then times opening the store plus the first query (for Severance:
``Store.open`` + ``enter`` + the first ``recall``, which loads the encrypted index snapshot and
applies the rows written after it), records the RSS again, and times a few more queries.
Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _peak_rss() -> int | None:
    """Peak RSS of this process image (VmHWM). Not ``ru_maxrss``: on Linux that one survives
    fork and exec, so it would report the (large) benchmark process that started us."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _open(cfg: dict[str, Any], lookup: Any) -> tuple[Any, Any]:
    """(query function, closer) for the configured system, opened cold."""
    system = cfg["system"]
    if system == "severance":
        import base64

        import severance

        store = severance.Store.open(cfg["path"], key=base64.b64decode(cfg["key"]), embedder=lookup)
        session = store.enter(floor=cfg["floor"])

        def query(q: str, k: int) -> list[str]:
            return [h.memory.text for h in session.recall(q, k=k)]

        def close() -> None:
            session.close()
            store.close()

        return query, close
    if system == "mem0":
        from bench.systems.mem0_peer import SPEED_USER, make_memory

        memory = make_memory(Path(cfg["path"]), lookup)

        def query(q: str, k: int) -> list[str]:
            res = memory.search(q, top_k=k, filters={"user_id": SPEED_USER}, threshold=0.0)
            return [str(r["memory"]) for r in res["results"]]

        return query, memory.close
    if system == "chroma":
        from bench.systems.chroma_peer import SPEED_COLLECTION, open_client, open_collection

        client = open_client(Path(cfg["path"]))
        col, _key = open_collection(
            client, SPEED_COLLECTION, lookup, create=False, key=cfg.get("ef_key")
        )

        def query(q: str, k: int) -> list[str]:
            res = col.query(query_texts=[q], n_results=k, include=["documents"])
            return [str(d) for d in res["documents"][0]]

        return query, lambda: None
    raise ValueError(f"unknown system {system!r}")


def _import_system(system: str) -> None:
    if system == "severance":
        # onnxruntime is part of Severance's footprint (its default embedder); a real wake
        # loads it at enter. Imported here so that its cost is in the baseline, not the wake.
        import onnxruntime  # noqa: F401

        import severance  # noqa: F401
    elif system == "mem0":
        from bench.systems.mem0_peer import import_mem0

        import_mem0(Path(json.loads(Path(sys.argv[1]).read_text())["path"]) / "mem0dir")
        import qdrant_client  # noqa: F401
    elif system == "chroma":
        import chromadb  # noqa: F401


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    t_start = time.perf_counter()
    import numpy as np

    from bench.speed_data import LookupEmbedder

    _import_system(cfg["system"])
    import_s = time.perf_counter() - t_start
    with np.load(cfg["queries"], allow_pickle=False) as z:
        texts = [str(t) for t in z["texts"]]
        vectors = np.asarray(z["vectors"], dtype=np.float32)
    lookup = LookupEmbedder(cfg["embedder"], int(cfg["dimension"]), texts, vectors)
    k = int(cfg.get("k", 10))
    gc.collect()
    baseline = _rss()

    t0 = time.perf_counter()
    query, close = _open(cfg, lookup)
    t1 = time.perf_counter()
    first = query(texts[0], k)
    t2 = time.perf_counter()
    after = _rss()
    lat = []
    for q in texts[1 : 1 + int(cfg.get("after", 20))]:
        t = time.perf_counter()
        query(q, k)
        lat.append(time.perf_counter() - t)
    snapshots = Path(cfg["path"]) / "snapshots"
    snapshot_bytes = (
        sum(p.stat().st_size for p in snapshots.glob("*.snap"))
        if cfg["system"] == "severance" and snapshots.is_dir()
        else None
    )
    out = {
        "snapshot_bytes": snapshot_bytes,
        "import_seconds": import_s,
        "open_seconds": t1 - t0,
        "first_query_seconds": t2 - t1,
        "wake_seconds": t2 - t0,
        "first_results": len(first),
        "rss_baseline_bytes": baseline,
        "rss_after_bytes": after,
        "rss_delta_bytes": after - baseline,
        "peak_rss_bytes": _peak_rss(),
        "after_wake_p50_ms": float(np.median(lat) * 1000) if lat else None,
    }
    close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
