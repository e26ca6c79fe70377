"""An import into a large persona from a new process: ``python -m bench.speed_import``.

What a user sees when they import into a big persona from a CLI run or after a server
restart: open the store, enter, ``remember_many`` of new memories (vectors precomputed, as in
the speed section: the embedder is not timed), then the first recall and the close (which
snapshots). Each measured run starts from a copy of the same checkpointed persona, so runs
do not add up. Steps:

* ``prepare DIR --memories N --import M --runs R``: the synthetic memories of
  :mod:`bench.speed_data` (the first N stored and checkpointed; the next M*R saved with their
  vectors for the imports), in ``DIR``.
* ``run DIR --label L``: one measured import in this process (the code on ``sys.path``), one
  JSON line on stdout. Pass ``--profile`` for a cProfile listing on stderr.
* ``migrate DIR``: open the persona once with the code on ``sys.path`` and close it (a
  snapshot written by an older format is migrated and written again), timed.
* ``after-wake CONFIG``: the speed section's probe (:func:`import_after_wake`, run by
  :func:`bench.speed_phases.finish` on the checkpointed store of its own run).

Interleave runs of two trees (``PYTHONPATH=<tree>/src``) for an A/B figure in one run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

KEY = bytes(range(32))
FLOOR = "f-speed"
#: Memories the speed section's after-wake probe imports (at most a tenth of the persona).
AFTER_WAKE_IMPORT = 10_000


def _lookup(dimension: int, name: str, texts: list[str], vectors: Any) -> Any:
    from bench.speed_data import LookupEmbedder

    return LookupEmbedder(name, dimension, texts, vectors)


def _drafts(texts: list[str], tags: list[str], when: Any) -> list[Any]:
    import severance

    return [
        severance.MemoryDraft(
            text=t,
            kind="episode",
            tags=(tag,),
            occurred_at=datetime.fromtimestamp(float(ts), UTC),
        )
        for t, tag, ts in zip(texts, tags, when, strict=True)
    ]


def prepare(root: Path, n: int, m: int, runs: int) -> None:
    import severance
    from bench.speed_data import load_corpus, synthesise

    corpus = load_corpus(4)
    syn = synthesise(corpus, n + m * runs)
    root.mkdir(parents=True, exist_ok=True)
    extra = syn.slice(n, n + m * runs)
    np.save(root / "import_vectors.npy", extra.vectors)
    info = {
        "embedder": corpus.embedder,
        "dimension": corpus.dimension,
        "memories": n,
        "import": m,
        "runs": runs,
        "texts": extra.texts,
        "tags": extra.tags,
        "occurred_at": extra.occurred_at.tolist(),
        "query": corpus.queries[0],
        "query_vector": corpus.query_vectors[0].tolist(),
    }
    (root / "import.json").write_text(json.dumps(info))
    base = syn.slice(0, n)
    lookup = _lookup(corpus.dimension, corpus.embedder, base.texts, base.vectors)
    lookup.add([corpus.queries[0]], corpus.query_vectors[:1])
    t0 = time.perf_counter()
    with severance.Store.init(root / "store", key=KEY, embedder=lookup) as store:
        store.add_persona("speed")
        store.add_floor(FLOOR, persona="speed")
        with store.enter(floor=FLOOR) as session:
            for at in range(0, n, 10_000):
                part = base.slice(at, at + 10_000)
                session.remember_many(_drafts(part.texts, part.tags, part.occurred_at))
                print(f"stored {at + len(part):,}", file=sys.stderr, flush=True)
            session.checkpoint()
    print(f"prepared {n:,} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


def _open(root: Path, store_dir: Path, part: int | None) -> tuple[Any, dict[str, Any]]:
    import severance

    info = json.loads((root / "import.json").read_text())
    m = info["import"]
    texts, tags, when = info["texts"], info["tags"], info["occurred_at"]
    vectors = np.load(root / "import_vectors.npy")
    lookup = _lookup(info["dimension"], info["embedder"], texts, vectors)
    lookup.add([info["query"]], np.asarray([info["query_vector"]], dtype=np.float32))
    store = severance.Store.open(store_dir, key=KEY, embedder=lookup)
    if part is not None:
        sel = slice(part * m, (part + 1) * m)
        info["drafts"] = _drafts(texts[sel], tags[sel], when[sel])
    return store, info


def run(root: Path, label: str, part: int, profile: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="speed-import-", dir=root))
    try:
        shutil.copytree(root / "store", work / "store")
        store, info = _open(root, work / "store", part)
        drafts = info["drafts"]
        out: dict[str, Any] = {"label": label, "memories": info["memories"], "import": len(drafts)}
        prof = cProfile.Profile() if profile else None
        t0 = time.perf_counter()
        session = store.enter(floor=FLOOR)
        out["enter_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        timed = _timed_import(session, drafts, t0)
        if prof is not None:
            prof.disable()
        out["remember_many_s"] = timed["seconds"]
        # The stall before the first batch is committed (the duplicate check is built first).
        out["first_commit_s"] = timed["first_commit_seconds"]
        out["new"] = len(drafts) - timed["duplicates"]
        t0 = time.perf_counter()
        again = session.remember_many(drafts[:256])
        out["repeat_256_s"] = time.perf_counter() - t0
        out["repeat_duplicates"] = sum(s.duplicate for s in again)
        t0 = time.perf_counter()
        session.recall(info["query"], k=10)
        out["first_recall_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        session.close()
        store.close()
        out["close_s"] = time.perf_counter() - t0
        if prof is not None:
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def migrate(root: Path) -> dict[str, Any]:
    store, info = _open(root, root / "store", None)
    t0 = time.perf_counter()
    with store.enter(floor=FLOOR) as session:
        session.recall(info["query"], k=1)  # wakes the index (migrating an old snapshot)
        opened = time.perf_counter() - t0
    closed = time.perf_counter() - t0
    store.close()
    return {"migrate_wake_s": opened, "migrate_total_s": closed}


def save_import_set(path: Path, syn: Any, n: int) -> int:
    """The after-wake probe's memories for a persona of the first ``n`` of ``syn``: its first
    ``m`` memories again (a resumed import: all duplicates) and ``m`` new ones (their texts
    with a suffix, their vectors), saved in ``path``; ``m``."""
    m = min(AFTER_WAKE_IMPORT, n // 10)
    part = syn.slice(0, m)
    np.savez(
        path,
        texts=np.array(part.texts),
        vectors=part.vectors,
        tags=np.array(part.tags),
        occurred_at=part.occurred_at,
    )
    return m


def _timed_import(session: Any, drafts: list[Any], t0: float) -> dict[str, Any]:
    """``remember_many`` of ``drafts``, timed from ``t0``: to the first commit and to the end."""
    first: list[float] = []

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter())

    stored = session.remember_many(drafts, progress=progress)
    total = time.perf_counter() - t0
    return {
        "memories": len(drafts),
        "seconds": total,
        "first_commit_seconds": (first[0] - t0) if first else total,
        "duplicates": sum(m.duplicate for m in stored),
    }


def import_after_wake(cfg: dict[str, Any], which: str) -> dict[str, Any]:
    """In this (fresh) process: open the store, then enter and ``remember_many`` the import
    set's memories again (``which="again"``: every one a duplicate) or new ones (``"new"``),
    timed from ``enter`` (the index wakes within) to the last commit; then close."""
    import base64

    import severance
    from bench.speed_data import LookupEmbedder

    with np.load(cfg["import"], allow_pickle=False) as z:
        texts = [str(t) for t in z["texts"]]
        vectors = np.asarray(z["vectors"], dtype=np.float32)
        tags = [str(t) for t in z["tags"]]
        when = z["occurred_at"].tolist()
    if which == "new":
        texts = [f"{t} (imported later)" for t in texts]
    lookup = LookupEmbedder(cfg["embedder"], int(cfg["dimension"]), texts, vectors)
    store = severance.Store.open(cfg["path"], key=base64.b64decode(cfg["key"]), embedder=lookup)
    try:
        drafts = _drafts(texts, tags, when)
        t0 = time.perf_counter()
        with store.enter(floor=cfg["floor"]) as session:
            out = _timed_import(session, drafts, t0)
    finally:
        store.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.speed_import")
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("dir", type=Path)
    p.add_argument("--memories", type=int, default=100_000)
    p.add_argument("--import", dest="m", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=1)
    r = sub.add_parser("run")
    r.add_argument("dir", type=Path)
    r.add_argument("--label", default="")
    r.add_argument("--part", type=int, default=0)
    r.add_argument("--profile", action="store_true")
    g = sub.add_parser("migrate")
    g.add_argument("dir", type=Path)
    a = sub.add_parser("after-wake")
    a.add_argument("config", type=Path)
    a.add_argument("which", choices=("again", "new"))
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.dir, args.memories, args.m, args.runs)
    elif args.step == "run":
        print(json.dumps(run(args.dir, args.label, args.part, args.profile)), flush=True)
    elif args.step == "migrate":
        print(json.dumps(migrate(args.dir)), flush=True)
    else:
        cfg = json.loads(args.config.read_text(encoding="utf-8"))
        print(json.dumps(import_after_wake(cfg, args.which)), flush=True)


if __name__ == "__main__":
    main()
