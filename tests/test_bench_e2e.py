"""The speed section's end-to-end row (bench/speed_e2e.py): hybrid recall with the real bundled
model against embedding alone, measured on a checkpointed store opened again, and rendered.
No timing is asserted: only that the row is measured and shown."""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path

from bench import speed_e2e
from bench.speed_render import render

import severance

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def test_the_row_is_measured_on_the_checkpointed_store(tmp_path: Path) -> None:
    key = os.urandom(32)
    location = str(tmp_path / "store")
    with severance.Store.init(location, key=key) as store:
        store.add_persona("bench")
        store.add_floor("f-bench", persona="bench")
        with store.enter(floor="f-bench") as s:
            s.remember_many([f"The heron {i} fished by the lake at dawn" for i in range(40)])
            s.checkpoint()
    cfg = {"path": location, "key": base64.b64encode(key).decode(), "floor": "f-bench"}
    lines: list[str] = []
    queries = ["where did the heron fish?", "when at dawn?", "what lake?"]
    out = speed_e2e.end_to_end(cfg, queries, lines.append, "severance")
    assert out["mode"] == "hybrid" and out["embedder"] == "minilm-l6-v2-int8"
    for probe in ("embed", "recall", "recall_repeated"):
        assert out[probe]["n"] == len(queries) and out[probe]["p50_ms"] > 0
    assert out["over_embedding_p50_ms"] == out["recall"]["p50_ms"] - out["embed"]["p50_ms"]
    assert len(lines) == 1 and "end to end" in lines[0]


def test_the_row_is_rendered_when_measured_and_absent_before() -> None:
    res = json.loads((RESULTS / "speed.json").read_text(encoding="utf-8"))
    for block in res["sizes"].values():  # results from before the row: rendered unchanged
        block.get("systems", {}).get("severance", {}).pop("end_to_end", None)
    assert "End to end" not in render(res)
    with_row = copy.deepcopy(res)
    lat = {"n": 200, "p50_ms": 6.25, "p99_ms": 9.5, "mean_ms": 6.5}
    with_row["sizes"]["100000"]["systems"]["severance"]["end_to_end"] = {
        "mode": "hybrid",
        "embedder": "minilm-l6-v2-int8",
        "embed": {**lat, "p50_ms": 5.25},
        "recall": lat,
        "recall_repeated": {**lat, "p50_ms": 1.5},
        "over_embedding_p50_ms": 1.0,
    }
    text = render(with_row)
    assert "End to end" in text
    assert "| 100k | 5.25 | 6.25 / 9.50 | +1.00 | 1.50 |" in text
