"""The harness's frame: the section registry, the document it renders, and the peer classes.

* ``docs/benchmarks.md`` is generated from ``bench/results/*.json``: rendering it again from
  the committed results gives the committed file byte for byte (through the CLI too).
* Sections are a dict of callables that import their module only when called: ``--help``,
  ``render`` and a retrieval run with the peers' libraries made unimportable still work, and
  the missing peers are recorded as skipped.
* One class per peer serves both the retrieval and the speed sections; the speed face of each
  installed peer writes, recalls, persists and is woken cold by :mod:`bench.speed_wake`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bench import report
from bench.__main__ import main as bench_main
from bench.sections import SECTIONS, Section, by_name
from bench.speed_data import LookupEmbedder, Synthetic
from bench.speed_import import save_import_set
from bench.speed_phases import import_after_wake
from bench.systems import SPEED_SYSTEMS, SYSTEM_NAMES, PeerSystem, RetrievalSystem, SpeedSystem

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
PEER_LIBRARIES = ("chromadb", "mem0", "qdrant_client", "psycopg", "matplotlib", "psutil")


def test_document_renders_byte_identical_from_the_committed_results(tmp_path: Path) -> None:
    assert report.render_document(RESULTS, docs_path=DOCS) == DOCS.read_text(encoding="utf-8")
    out = tmp_path / "benchmarks.md"
    assert bench_main(["render", "--out", str(RESULTS), "--docs", str(out)]) == 0
    assert out.read_bytes() == DOCS.read_bytes()


def test_sections_are_a_dict_of_callables_in_document_order() -> None:
    assert list(SECTIONS) == ["locomo", "retrieval", "speed", "postgres", "isolation"]
    for name, section in SECTIONS.items():
        assert isinstance(section, Section) and section.name == name
        assert by_name(name) is section
        for hook in (section.add_arguments, section.run, section.render):
            assert callable(hook)
    with pytest.raises(KeyError):
        by_name("nope")
    parser = argparse.ArgumentParser()
    for section in SECTIONS.values():
        section.add_arguments(parser)
    options = set(vars(parser.parse_args([])))
    assert {"systems", "speed_sizes", "speed_postgres", "isolation_systems"} <= options


def test_a_section_without_results_is_listed_as_not_measured(tmp_path: Path) -> None:
    (tmp_path / "speed.json").write_text((RESULTS / "speed.json").read_text(), encoding="utf-8")
    text = report.render_document(tmp_path)
    for name, section in SECTIONS.items():
        assert f"## {section.title}\n" in text
        not_measured = f"_Not yet measured_ (`python -m bench run --only {name}`)."
        assert (not_measured in text) == (name != "speed")


_BLOCKER = """
import importlib.abc, runpy, sys

BLOCKED = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, Block())
sys.argv = ["bench", *sys.argv[2:]]
runpy.run_module("bench", run_name="__main__")
"""


def _bench_without_peers(*args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, ",".join(PEER_LIBRARIES), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_help_and_render_need_no_peer_library(tmp_path: Path) -> None:
    top = _bench_without_peers("--help")
    assert top.returncode == 0, top.stderr
    assert "run" in top.stdout and "render" in top.stdout
    run_help = _bench_without_peers("run", "--help")
    assert run_help.returncode == 0, run_help.stderr
    for option in ("--only", "--systems", "--speed-systems", "--speed-postgres"):
        assert option in run_help.stdout
    for name in SECTIONS:
        assert name in run_help.stdout
    out = tmp_path / "benchmarks.md"
    rendered = _bench_without_peers("render", "--out", str(RESULTS), "--docs", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert out.read_bytes() == DOCS.read_bytes()


def test_a_run_skips_the_peers_that_are_not_installed(tmp_path: Path) -> None:
    from tests.test_bench_smoke import FIXTURE

    locomo = tmp_path / "locomo.json"
    locomo.write_text(json.dumps(FIXTURE), encoding="utf-8")
    out = tmp_path / "results"
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), MEM0_DIR=str(tmp_path / "m"))
    done = _bench_without_peers(
        *("run", "--only", "locomo", "--locomo", str(locomo), "--systems", "bm25,chroma,mem0"),
        *("--out", str(out), "--no-docs", "--cache-dir", str(tmp_path / "cache")),
        env=env,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads((out / "locomo.json").read_text(encoding="utf-8"))
    assert set(result["skipped"]) == {"chroma", "mem0"}
    assert "chromadb is not installed" in result["skipped"]["chroma"]
    assert "mem0ai is not installed" in result["skipped"]["mem0"]
    assert result["systems"]["bm25"]["overall"]["hit@1"] == 1.0


def test_one_class_per_peer_serves_both_sections() -> None:
    import bench.systems as systems

    assert set(SPEED_SYSTEMS) == {"severance", "mem0", "chroma"}
    assert set(SYSTEM_NAMES) == set(SPEED_SYSTEMS) | {"bm25"}
    from bench.systems.bm25 import BM25System
    from bench.systems.chroma_peer import ChromaSystem
    from bench.systems.mem0_peer import Mem0System
    from bench.systems.severance_store import SeveranceSystem

    for cls in (SeveranceSystem, ChromaSystem, Mem0System):
        assert issubclass(cls, PeerSystem)
        assert issubclass(cls, RetrievalSystem) and issubclass(cls, SpeedSystem)
    assert issubclass(BM25System, RetrievalSystem) and not issubclass(BM25System, SpeedSystem)
    assert not hasattr(systems, "speed_systems")


def _synthetic(n: int, dim: int) -> Synthetic:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Synthetic(
        texts=[f"memory {i} about topic {i % 5}" for i in range(n)],
        vectors=vectors,
        occurred_at=np.arange(n, dtype=np.float64) * 60.0 + 1.7e9,
        tags=[f"conv-{i % 3:02d}" for i in range(n)],
        pairs=np.zeros((n, 2), dtype=np.int64),
    )


@pytest.mark.parametrize("peer", ["severance", "chroma", "mem0"])
def test_the_speed_face_writes_recalls_and_wakes_cold(
    peer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looked up, not imported: mem0 must first be imported with telemetry off, by the peer.
    for library in (
        "psutil",
        {"severance": "severance", "chroma": "chromadb", "mem0": "mem0"}[peer],
    ):
        if importlib.util.find_spec(library) is None:
            pytest.skip(f"{library} is not installed")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MEM0_DIR", str(tmp_path / "mem0"))
    n, dim, k = 24, 16, 5
    syn = _synthetic(n, dim)
    queries = ["what about topic 1", "what about topic 3"]
    qvec = syn.vectors[[1, 3]]
    lookup = LookupEmbedder("bench-test-lookup", dim, syn.texts, syn.vectors)
    lookup.add(queries, qvec)

    system = SPEED_SYSTEMS[peer](lookup, tmp_path)
    try:
        assert system.root.parent == tmp_path
        system.open_scope()
        system.remember_batch(syn.slice(0, n - 2))
        for i in (n - 2, n - 1):
            system.remember_one(syn.texts[i], syn.tags[i], float(syn.occurred_at[i]))
        got = system.recall(queries[0], k, dense=True)
        assert len(got) == k and got[0] == syn.texts[1]  # its own vector: the nearest
        assert set(got) <= set(syn.texts)
        cfg = system.wake_config()
        system.persist()
        assert system.disk_bytes() > 0
        assert system.speed_info()
        npz = tmp_path / "queries.npz"
        np.savez(npz, texts=np.array(queries), vectors=qvec)
        cfg.update(queries=str(npz), embedder=lookup.name, dimension=dim, k=k, after=1)
        cfg_path = tmp_path / "wake.json"
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
        woke = subprocess.run(
            [sys.executable, "-m", "bench.speed_wake", str(cfg_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert woke.returncode == 0, woke.stderr
        figures = json.loads(woke.stdout.strip().splitlines()[-1])
        assert figures["first_results"] == k
        assert figures["wake_seconds"] > 0 and figures["rss_after_bytes"] > 0
        if peer == "severance":
            # The import probe: the first memories again (duplicates), then new ones.
            assert save_import_set(tmp_path / "import.npz", syn, n) == 2
            cfg.update(embedder=lookup.name, dimension=dim)
            probe = import_after_wake(cfg, tmp_path / "import.npz", print, peer)
            assert probe["again"]["duplicates"] == probe["again"]["memories"] == 2
            assert probe["new"]["duplicates"] == 0 and probe["new"]["memories"] == 2
    finally:
        root = system.root
        system.close()
    assert not root.exists()
