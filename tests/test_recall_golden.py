"""Search results are what they were: the recorded searches of :mod:`tests.recall_golden`
give the same memories in the same order with the same scores (to float rounding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.recall_golden import GOLDEN, build, run


def test_recall_results_match_the_recording(tmp_path: Path) -> None:
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    store, session = build(tmp_path / "store")
    try:
        got = run(session)
    finally:
        session.close()
        store.close()
    assert sorted(got) == sorted(want)
    for label, hits in want.items():
        assert [h[0] for h in got[label]] == [h[0] for h in hits], label
        assert [h[1] for h in got[label]] == pytest.approx([h[1] for h in hits], rel=1e-6), label
