"""A bounded concurrent load on a real server subprocess: no errors, no lost writes, no
crossings. The full-size run is ``python -m bench.load_http`` (8 clients x 500 requests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# bench/ is importable because pytest puts the repository root on sys.path (pyproject).
from bench.load_http import percentile, run_load, summarise

import severance
from server_process import server_env, serving
from severance.passes import Passes


@pytest.fixture
def served_store(tmp_path: Path) -> Iterator[tuple[str, dict[str, list[str]], dict[str, str]]]:
    location = str(tmp_path / "store")
    with severance.Store.init(location, key_file=tmp_path / "master.key") as s:
        tokens: dict[str, list[str]] = {}
        for persona, floor in (("work", "office"), ("home", "house")):
            s.add_persona(persona)
            s.add_floor(floor, persona=persona)
            tokens[persona] = [Passes(s).issue(floor).token for _ in range(2)]
    yield location, tokens, server_env(str(tmp_path / "home"))


def test_concurrent_load_loses_nothing_and_never_crosses(
    served_store: tuple[str, dict[str, list[str]], dict[str, str]],
) -> None:
    location, tokens, env = served_store
    with serving(location, "--http", "127.0.0.1:0", "--rate", "0", env=env) as served:
        outcome = run_load(served.http, tokens, requests=50)
    with severance.Store.open(location) as store:
        counted = {}
        for persona, floor in (("work", "office"), ("home", "house")):
            with store.enter(floor=floor) as s:
                counted[persona] = s.count()
    figures = summarise(outcome, counted)
    assert figures["errors"] == 0, figures["first_errors"]
    assert figures["requests"] == 4 * 50
    assert figures["acknowledged_writes"] == {"work": 50, "home": 50}
    assert figures["counted_after"] == figures["acknowledged_writes"]
    assert figures["lost_writes"] == 0
    assert figures["crossings"] == 0
    assert figures["requests_per_s"] > 0 and figures["latency"]["all"]["p99_ms"] > 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 99) == 0.0
