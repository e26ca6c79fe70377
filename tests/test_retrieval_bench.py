"""The retrieval section end to end on one small synthetic chat: every system and ablation row
is measured through the public API, the lab reproduces the store's ranking, and the section
renders."""

from __future__ import annotations

from pathlib import Path

from bench.devset_chat import generate
from bench.retrieval_bench import render
from bench.retrieval_data import DevSet, TwoCacheEmbedder
from bench.retrieval_eval import STEPS, run_lab, run_systems
from bench.systems.severance_store import ABLATION


def test_one_chat_through_systems_ablation_and_lab(tmp_path: Path) -> None:
    chat = DevSet("chat", list(generate(3, conversations=1).conversations))
    embedder = TwoCacheEmbedder([chat], cache_dir=tmp_path / "cache")
    systems = run_systems([chat], embedder, 10, ablation=True)["chat"]
    names = {"bm25", "severance-hybrid", "severance-plain-hybrid", "severance-dense"}
    assert names | {name for name, _, _ in ABLATION} <= set(systems)
    for row in systems.values():
        assert 0.0 <= row["all"] <= 1.0 and row["n"] == len(chat.conversations[0].questions)
    lab = run_lab([chat], embedder, 10, only=["episode 6:", "episode 7:", "plain 7:"])["chat"]
    # The lab's model of the 0.2 default, of the one before, and of today's default give the
    # store's figures.
    assert lab["lab: default (episode ingest)"]["all"] == systems["ablation-5-context"]["all"]
    (before,) = [n for n, _ in STEPS if n.startswith("episode 6:")]
    assert lab[before]["all"] == systems["ablation-11-addressed"]["all"]
    (today,) = [n for n, _ in STEPS if n.startswith("episode 7:")]
    assert lab[today]["all"] == systems["severance-hybrid"]["all"]
    (plain,) = [n for n, _ in STEPS if n.startswith("plain 7:")]
    assert lab[plain]["all"] == systems["severance-plain-hybrid"]["all"]
    result = {
        "sets": {"chat": {"conversations": 1, "turns": 1, "questions": 1}},
        "chat": {"seed": 3, "conversations": 1, "turns": 1, "questions": 1},
        "ablation": [[name, change] for name, change, _ in ABLATION],
        "variants_rotated": True,
        "systems": {"chat": systems},
        "lab": {"chat": lab},
        "machine": {},
        "generated_at": "2026-01-01T00:00:00+00:00",
        "duration_seconds": 1.0,
    }
    text = render(result)
    assert "### Systems (recall@10)" in text and "### Ablation on every set" in text
    assert "What it costs" in text
