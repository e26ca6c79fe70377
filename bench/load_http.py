"""Concurrent load on a real ``severance serve --http`` over the loopback.

    python -m bench.load_http                       # 8 clients x 500 requests
    python -m bench.load_http --clients 4 --requests 50 --out -

Each client holds its own pass (half the clients on persona ``work``, half on ``home``) and a
keep-alive connection, and sends a mix of ``remember`` (POST /v1/memories) and ``recall``
(POST /v1/recall) requests as fast as the server answers. The run checks what a load test
should: no error of any kind, no lost write (the memories counted afterwards equal the
``201 Created`` answers) and no crossing (a recall never returns the other persona's text).
It prints requests/s and latency percentiles and writes them to
``bench/results/http_load.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "http_load.json"
PERSONAS = (("work", "office"), ("home", "house"))


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def _client(
    base_url: str,
    token: str,
    marker: str,
    requests: int,
    write_every: int,
    out: dict[str, Any],
) -> None:
    latencies: dict[str, list[float]] = {"remember": [], "recall": []}
    errors: list[str] = []
    acknowledged = 0
    crossings = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        for i in range(requests):
            write = i % write_every == 0
            start = time.perf_counter()
            try:
                if write:
                    r = http.post("/v1/memories", json={"text": f"{marker} note {i}: load test"})
                else:
                    r = http.post("/v1/recall", json={"query": f"note {i} load test", "k": 5})
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            elapsed = time.perf_counter() - start
            latencies["remember" if write else "recall"].append(elapsed)
            if r.status_code not in (200, 201):
                errors.append(f"{r.status_code}: {r.text[:200]}")
            elif write:
                acknowledged += 1
            else:
                texts = [hit["memory"]["text"] for hit in r.json()["results"]]
                crossings += sum(1 for t in texts if not t.startswith(marker.split("/")[0]))
    out.update(latencies=latencies, errors=errors, acknowledged=acknowledged, crossings=crossings)


def run_load(
    base_url: str,
    tokens: dict[str, list[str]],
    *,
    requests: int,
    write_every: int = 2,
) -> dict[str, Any]:
    """Run one client thread per token (``tokens`` maps persona -> its clients' passes).

    Returns the raw outcome: latencies by operation, errors, writes acknowledged per persona
    and recall results that showed another persona's memory (``crossings``).
    """
    results: list[tuple[str, dict[str, Any]]] = []
    threads = []
    for persona, persona_tokens in tokens.items():
        for n, token in enumerate(persona_tokens):
            out: dict[str, Any] = {}
            results.append((persona, out))
            args = (base_url, token, f"{persona}/client{n}", requests, write_every, out)
            threads.append(threading.Thread(target=_client, args=args))
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    latencies: dict[str, list[float]] = {"remember": [], "recall": []}
    acknowledged: dict[str, int] = {p: 0 for p in tokens}
    errors: list[str] = []
    crossings = 0
    for persona, out in results:
        for op, values in out["latencies"].items():
            latencies[op] += values
        acknowledged[persona] += out["acknowledged"]
        errors += out["errors"]
        crossings += out["crossings"]
    return {
        "elapsed_s": elapsed,
        "latencies": latencies,
        "acknowledged": acknowledged,
        "errors": errors,
        "crossings": crossings,
    }


def summarise(outcome: dict[str, Any], counted: dict[str, int]) -> dict[str, Any]:
    """Figures for a report: requests/s and latency percentiles in milliseconds."""
    all_latencies = [v for values in outcome["latencies"].values() for v in values]
    total = len(all_latencies) + len(outcome["errors"])

    def ms(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(percentile(values, 50) * 1000, 2),
            "p95_ms": round(percentile(values, 95) * 1000, 2),
            "p99_ms": round(percentile(values, 99) * 1000, 2),
            "max_ms": round(max(values, default=0.0) * 1000, 2),
        }

    return {
        "requests": total,
        "elapsed_s": round(outcome["elapsed_s"], 3),
        "requests_per_s": round(total / outcome["elapsed_s"], 1) if outcome["elapsed_s"] else 0,
        "errors": len(outcome["errors"]),
        "first_errors": outcome["errors"][:5],
        "acknowledged_writes": outcome["acknowledged"],
        "counted_after": counted,
        "lost_writes": sum(outcome["acknowledged"][p] - counted.get(p, 0) for p in counted),
        "crossings": outcome["crossings"],
        "latency": {"all": ms(all_latencies)}
        | {op: ms(values) for op, values in outcome["latencies"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_http", description=__doc__)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--requests", type=int, default=500, help="requests per client")
    parser.add_argument(
        "--write-every",
        type=int,
        default=2,
        help="one remember every N requests, recall otherwise (default 2)",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON result file, or -")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(BENCH_DIR.parent))
    # The suite's helper for a real server (importable: the repository root is on the path).
    from tests.server_process import server_env, serving

    import severance
    from bench.machine import load_average, machine_info, package_versions
    from severance.passes import Passes

    with tempfile.TemporaryDirectory(prefix="severance-load-") as tmp:
        env = server_env(tmp)
        location = os.path.join(tmp, "store")
        tokens: dict[str, list[str]] = {}
        with severance.Store.init(location, key_file=os.path.join(tmp, "master.key")) as store:
            passes = Passes(store)
            for i, (persona, floor) in enumerate(PERSONAS):
                store.add_persona(persona)
                store.add_floor(floor, persona=persona)
                share = args.clients // len(PERSONAS) + (i < args.clients % len(PERSONAS))
                tokens[persona] = [passes.issue(floor).token for _ in range(share)]
        # As before, the run judges the answers; the suite's exit checks are the suite's.
        args_ = ("--http", "127.0.0.1:0", "--rate", "0")
        with serving(location, *args_, env=env, check_exit=False, check_output=False) as served:
            outcome = run_load(
                served.http, tokens, requests=args.requests, write_every=args.write_every
            )
        with severance.Store.open(location) as store:
            counted = {}
            for persona, floor in PERSONAS:
                with store.enter(floor=floor) as s:
                    counted[persona] = s.count()
    figures = summarise(outcome, counted)
    result = {
        "benchmark": "http_load",
        "command": " ".join(["python -m bench.load_http", *(argv or sys.argv[1:])]),
        "clients": args.clients,
        "requests_per_client": args.requests,
        "write_every": args.write_every,
        **figures,
        "machine": machine_info(),
        "load_average": load_average(),
        "packages": package_versions(("severance", "fastapi", "uvicorn", "httpx", "onnxruntime")),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    all_ms = figures["latency"]["all"]
    print(
        f"{figures['requests']} requests from {args.clients} clients in {figures['elapsed_s']} s:"
        f" {figures['requests_per_s']} requests/s; latency p50 {all_ms['p50_ms']} ms,"
        f" p99 {all_ms['p99_ms']} ms (remember p99 {figures['latency']['remember']['p99_ms']} ms,"
        f" recall p99 {figures['latency']['recall']['p99_ms']} ms); errors {figures['errors']},"
        f" lost writes {figures['lost_writes']}, crossings {figures['crossings']}"
    )
    text = json.dumps(result, indent=2) + "\n"
    if args.out == "-":
        print(text, end="")
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    ok = figures["errors"] == 0 and figures["lost_writes"] == 0 and figures["crossings"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
