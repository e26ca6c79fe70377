"""Smoke test of the benchmark harness on a tiny, hand-checkable LoCoMo-shaped slice.

The fixture: one conversation, two sessions, seven turns, three questions:

* q0 (single-hop) — evidence ``D1:3``, the only turn mentioning "axolotl": BM25 ranks it 1st;
* q1 (multi-hop) — evidence written as one malformed string ``"D2:1; D2:3"`` (split into two
  turns), each holding one rare query word ("Reykjavik", "cello"): BM25 ranks them 1st and 2nd
  (order not asserted), so recall@1 = 0.5, hit@1 = 1, recall@5 = 1;
* q2 (temporal) — evidence ``D9:9`` and ``D``: names no turn and is malformed, so the question
  is counted as unscorable and excluded.

Headline (categories 1-4) BM25 by hand: recall@1 = (1 + 0.5) / 2 = 0.75, hit@1 = 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# bench/ is importable because pytest puts the repository root on sys.path (pyproject).
from bench import report
from bench.__main__ import main as bench_main
from bench.locomo import load_locomo, parse_evidence, parse_session_datetime
from bench.locomo_bench import LocomoOptions, run_locomo
from bench.metrics import score_question

FIXTURE: list[dict[str, Any]] = [
    {
        "sample_id": "conv-t1",
        "conversation": {
            "speaker_a": "Alice",
            "speaker_b": "Bob",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Alice", "dia_id": "D1:1", "text": "Hi Bob, how was your week?"},
                {"speaker": "Bob", "dia_id": "D1:2", "text": "Busy with work, and you?"},
                {
                    "speaker": "Alice",
                    "dia_id": "D1:3",
                    "text": "I adopted a pet axolotl and named it Pebbles.",
                    "blip_caption": "a photo of a small pink amphibian in a tank",
                },
                {"speaker": "Bob", "dia_id": "D1:4", "text": "That is lovely, congratulations."},
            ],
            "session_2_date_time": "10:05 am on 2 June, 2023",
            "session_2": [
                {"speaker": "Bob", "dia_id": "D2:1", "text": "I just came back from Reykjavik."},
                {"speaker": "Alice", "dia_id": "D2:2", "text": "Wow, how was the trip?"},
                {"speaker": "Bob", "dia_id": "D2:3", "text": "Cold! I practised my cello there."},
            ],
            "session_3_date_time": "9:00 am on 3 June, 2023",
        },
        "qa": [
            {
                "question": "What kind of pet is the axolotl Alice adopted?",
                "answer": "an axolotl",
                "evidence": ["D1:3"],
                "category": 4,
            },
            {
                "question": "Did Bob play his cello in Reykjavik?",
                "answer": "Reykjavik, cello",
                "evidence": ["D2:1; D2:3"],
                "category": 1,
            },
            {
                "question": "When did Alice go skiing?",
                "answer": "never",
                "evidence": ["D9:9", "D"],
                "category": 2,
            },
        ],
    }
]


@pytest.fixture()
def locomo_file(tmp_path: Path) -> Path:
    path = tmp_path / "locomo-tiny.json"
    path.write_text(json.dumps(FIXTURE), encoding="utf-8")
    return path


@pytest.fixture()
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep peers' and Severance's side files inside tmp_path; restored afterwards."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    monkeypatch.setenv("MEM0_DIR", str(tmp_path / "mem0"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-not-used")
    return tmp_path


def test_session_dates_and_evidence_parsing() -> None:
    when = parse_session_datetime("1:56 pm on 8 May, 2023")
    assert (when.year, when.month, when.day, when.hour, when.minute) == (2023, 5, 8, 13, 56)
    assert parse_session_datetime("12:04 am on 1 January, 2024").hour == 0

    ids = {"D8:6", "D9:17", "D11:26", "D30:5"}
    ev, issues = parse_evidence("q", ["D8:6; D9:17", "D:11:26", "D30:05", "D", "D4:4"], ids)
    assert ev == ("D8:6", "D9:17", "D11:26", "D30:5")
    assert sorted(i.kind for i in issues) == [
        "malformed",
        "repaired",
        "repaired",
        "split",
        "unknown_turn",
    ]


def test_metrics_by_hand() -> None:
    s = score_question("q", 1, ["a", "b"], ["x", "a", "x", "y", "b"], ks=(1, 2, 5))
    assert s.recall == {1: 0.0, 2: 0.5, 5: 1.0}
    assert s.hit == {1: 0.0, 2: 1.0, 5: 1.0}
    assert s.first_rank == 2


def test_loader_counts_what_it_drops(locomo_file: Path) -> None:
    data = load_locomo(locomo_file)
    (conv,) = data.conversations
    assert len(conv.turns) == 7
    assert conv.turns[2].document == (
        "Alice: I adopted a pet axolotl and named it Pebbles."
        " [image: a photo of a small pink amphibian in a tank]"
    )
    assert conv.turns[4].occurred_at.isoformat() == "2023-06-02T10:05:00+00:00"
    assert [q.evidence for q in conv.questions] == [("D1:3",), ("D2:1", "D2:3"), ()]
    assert data.issue_counts() == {
        "malformed": 1,
        "no_evidence": 1,
        "split": 1,
        "unknown_turn": 1,
    }


def test_bm25_and_severance_end_to_end(locomo_file: Path, isolated_env: Path) -> None:
    pytest.importorskip("severance")
    opts = LocomoOptions(
        locomo_path=locomo_file,
        systems=("bm25", "severance"),
        cache_dir=isolated_env / "cache",
        workdir=isolated_env,
        raw_path=isolated_env / "raw.jsonl",
    )
    res = run_locomo(opts, log=lambda _msg: None)
    assert res["failed"] == {} and res["skipped"] == {}
    assert res["dataset"]["questions_scored"] == 2
    assert res["dataset"]["questions_unscorable"] == 1

    bm25 = res["systems"]["bm25"]
    assert bm25["overall"]["n"] == 2
    assert bm25["overall"]["recall@1"] == pytest.approx(0.75)
    assert bm25["overall"]["hit@1"] == 1.0
    assert bm25["overall"]["recall@5"] == 1.0
    assert bm25["by_category"]["4"]["recall@1"] == 1.0
    assert bm25["by_category"]["1"]["recall@1"] == 0.5
    assert bm25["query_latency"]["n"] == 2

    for mode in ("hybrid", "dense", "keyword"):
        row = res["systems"][f"severance-{mode}"]
        assert row["overall"]["n"] == 2
        for k in (1, 5, 10, 20):
            assert 0.0 <= row["overall"][f"recall@{k}"] <= row["overall"][f"hit@{k}"] <= 1.0
        assert row["ingest"]["memories"] == 7
    # Seven turns and k = 20: dense ranking returns every turn, so all evidence is found.
    assert res["systems"]["severance-dense"]["overall"]["recall@20"] == 1.0
    # The single rare shared word puts the evidence turn first for keyword search too.
    raw = [json.loads(line) for line in (isolated_env / "raw.jsonl").read_text().splitlines()]
    q0 = {r["system"]: r for r in raw if r["qid"] == "conv-t1#0"}
    assert q0["bm25"]["first_rank"] == 1
    assert q0["severance-keyword"]["first_rank"] == 1
    turn_ids = {t.dia_id for t in load_locomo(locomo_file).conversations[0].turns}
    assert all(set(r["ranked"]) <= turn_ids for r in raw)

    md = report.render_locomo(res)
    assert "| BM25 (plain, k1 1.2, b 0.75) | **1.000** |" in md  # recall@10 column
    assert "conv-t1#2" in md  # the dropped evidence is listed, not silently skipped


@pytest.mark.parametrize("peer", ["chroma", "mem0"])
def test_peers_when_installed(peer: str, locomo_file: Path, isolated_env: Path) -> None:
    pytest.importorskip("severance")
    pytest.importorskip({"chroma": "chromadb", "mem0": "mem0"}[peer])
    opts = LocomoOptions(
        locomo_path=locomo_file,
        systems=(peer,),
        cache_dir=isolated_env / "cache",
        workdir=isolated_env,
    )
    res = run_locomo(opts, log=lambda _msg: None)
    assert res["failed"] == {}, res["failed"]
    row = res["systems"][peer]
    assert row["overall"]["n"] == 2
    assert row["overall"]["recall@20"] == 1.0  # seven turns, k = 20: everything comes back


def test_a_failing_system_is_recorded_not_fatal(
    locomo_file: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.systems as systems_mod
    from bench.systems.bm25 import BM25System

    class Broken(BM25System):
        name = "chroma"

        @property
        def variants(self) -> tuple[str, ...]:
            return ("chroma",)

        def search(self, variant: str, query: str, k: int) -> list[str]:
            raise RuntimeError("boom")

    real_build = systems_mod.build
    monkeypatch.setattr(
        systems_mod,
        "build",
        lambda name, make, **kw: Broken() if name == "chroma" else real_build(name, make, **kw),
    )
    opts = LocomoOptions(locomo_path=locomo_file, systems=("bm25", "chroma"), cache_dir=None)
    res = run_locomo(opts, embedder_factory=lambda: _FakeEmbedder(), log=lambda _msg: None)
    assert res["failed"] == {"chroma": "RuntimeError: boom"}
    assert set(res["systems"]) == {"bm25"}
    assert res["systems"]["bm25"]["overall"]["recall@1"] == pytest.approx(0.75)


class _FakeEmbedder:
    name = "fake"
    dimension = 4

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        return np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32), (len(texts), 1))


def test_cli_writes_json_and_docs(locomo_file: Path, isolated_env: Path) -> None:
    out = isolated_env / "results"
    docs = isolated_env / "benchmarks.md"
    code = bench_main(
        [
            "run",
            "--only",
            "locomo",
            "--locomo",
            str(locomo_file),
            "--systems",
            "bm25",
            "--out",
            str(out),
            "--docs",
            str(docs),
            "--cache-dir",
            str(isolated_env / "cache"),
        ]
    )
    assert code == 0
    result = json.loads((out / "locomo.json").read_text())
    assert result["section"] == "locomo"
    assert result["systems"]["bm25"]["overall"]["hit@10"] == 1.0
    text = docs.read_text()
    assert "## Retrieval quality: LoCoMo" in text
    assert "python -m bench run --only locomo" in text
    assert "_Not yet measured_" in text or "## Speed and scale" in text
