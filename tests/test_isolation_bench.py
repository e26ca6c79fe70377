"""The isolation benchmark (bench/isolation): its leak counters on hand-made answers, its probes
on a system that leaks by design, and a smoke run on Severance and one peer.

The Severance part needs nothing beyond the test extra; the peer part skips cleanly when the
bench extra (chromadb) is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from bench.__main__ import main as bench_main
from bench.isolation import report
from bench.isolation.base import Adapter, Call, capture
from bench.isolation.plants import (
    SCOPES,
    Plant,
    canaries_in,
    file_stats,
    make_plants,
    revealed_in,
    scan_files,
)
from bench.isolation.probes import SelfCheckFailed, run_probes
from bench.isolation.tally import (
    VECTORS,
    Outcome,
    Tally,
    mann_whitney_u,
    same_answer,
    summarize,
    timing_oracle,
)

VECTOR_KEYS = [k for k, _ in VECTORS]


def _victims() -> list[Plant]:
    return [Plant("home", 0, "0123456789ab"), Plant("home", 1, "ba9876543210")]


# -- the counters, on hand-made answers ---------------------------------------------------------
def test_plants_are_unique_and_carry_their_canary_in_every_form() -> None:
    plants = make_plants(3)
    assert set(plants) == set(SCOPES)
    keys = [p.key for ps in plants.values() for p in ps]
    assert len(keys) == len(set(keys)) == 9
    p = plants["home"][0]
    for form in (p.text, p.tag, p.metadata["ref"], p.chosen_id):
        assert canaries_in(form, [p.key]) == {p.key}
    # No form contains another, so an echo of one cannot pass for another.
    for a in p.forms:
        assert [b for b in p.forms if a != b and a in b] == []
    with pytest.raises(ValueError):
        make_plants(1)


def test_an_echo_of_the_callers_input_is_not_a_leak() -> None:
    v = _victims()[0]
    call = f"open_nodes(names=[{v.chosen_id!r}])"
    assert revealed_in(f"Entity with name {v.chosen_id} not found", call, [v]) == set()
    # The same id echoed, and the memory's text beside it: a leak.
    assert revealed_in(f"{v.chosen_id}: {v.text}", call, [v]) == {v.key}
    # A search for the bare canary: any planted form coming back counts.
    assert revealed_in(f"[{v.tag}]", f"recall({v.canary!r})", [v]) == {v.key}
    assert revealed_in("nothing here", f"recall({v.canary!r})", [v]) == set()


def test_tally_counts_victim_memories_once_however_many_calls_reach_them() -> None:
    a, b = _victims()
    t = Tally([a, b])
    t.read("search", "s1", Outcome("ok", a.text))
    t.read("search", "s2", Outcome("ok", f"{a.text} {b.tag}"))
    t.read("search", "s3", Outcome("ok", "[]"))
    t.changed("ids", "update(x)", {b.key, "not-a-victim"}, "now reads 'x'")
    t.counted("listing", "count()", reported=7, own=5)
    t.counted("listing", "total", reported=5, own=5)
    t.na("forgotten", "no scope argument")
    t.not_run("servers", "no server here")
    res = t.result()
    assert res["search"]["leaked"] == 2 and res["search"]["probes"] == 3
    assert [leak["call"] for leak in res["search"]["leaks"]] == ["s1", "s2"]
    assert res["ids"]["leaked"] == 1 and res["ids"]["leaks"][0]["items"] == [b.key]
    assert res["listing"]["leaked"] == 2  # a count two above the caller's own
    assert res["forgotten"] == {
        "leaked": None,
        "status": "n/a",
        "probes": 0,
        "notes": ["no scope argument"],
        "leaks": [],
    }
    assert res["servers"]["status"] == "not run"
    assert res["oracles"]["leaked"] is None and res["oracles"]["status"] == "not run"
    assert summarize(res)["search"] == 2
    with pytest.raises(KeyError):
        t.read("nonsense", "x", "y")


def test_existence_oracles_compare_answers_with_the_ids_masked() -> None:
    a, _ = _victims()
    t = Tally([a])
    same = t.oracle(
        "get",
        a,
        Outcome("MemoryNotFoundError", "m_THEIRS"),
        Outcome("MemoryNotFoundError", "m_NOBODY"),
        ids=["m_THEIRS", "m_NOBODY"],
    )
    differs = t.oracle(
        "delete", a, Outcome("ok", "null"), Outcome("KeyError", "m_NOBODY"), ids=["m_THEIRS"]
    )
    assert (same, differs) == (False, True)
    assert t.result()["oracles"]["leaked"] == 1
    assert same_answer(Outcome("404", "no m_1"), Outcome("404", "no m_2"), ids=["m_1", "m_2"])
    assert not same_answer(Outcome("404", "x"), Outcome("403", "x"), ids=[])


def test_mann_whitney_u_and_the_timing_verdict() -> None:
    # By hand: U = 0, mean 12.5, variance 25 * 11 / 12, continuity-corrected z = 2.507.
    assert mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(0.0122, abs=5e-4)
    assert mann_whitney_u([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mann_whitney_u([1.0], [2.0, 3.0])
    slow = [1e-3 + i * 1e-7 for i in range(60)]
    fast = [1e-4 + i * 1e-7 for i in range(60)]
    assert timing_oracle(slow, fast).significant
    assert not timing_oracle(slow, list(reversed(slow))).significant
    # Significant but a hair apart (< 10 %): not counted.
    near = [x * 1.02 for x in slow]
    assert timing_oracle(near, slow).p_value < 0.001
    assert not timing_oracle(near, slow).significant


def test_file_scan_reads_every_byte(tmp_path: Path) -> None:
    a, b = _victims()
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "wal").write_bytes(b"\x00\xff" + a.text.encode() + b"\x00")
    (tmp_path / "clean.db").write_bytes(b"nothing " * 100)
    hits = scan_files([tmp_path], [a.key, b.key])
    assert [(Path(h.path).name, set(h.keys)) for h in hits] == [("wal", {a.key})]
    assert file_stats([tmp_path]) == (2, (tmp_path / "deep/er/wal").stat().st_size + 800)
    t = Tally([a, b])
    t.files("at_rest", "while running", hits)
    assert t.result()["at_rest"]["leaked"] == 1


def test_report_cells_and_table() -> None:
    assert report.cell({"leaked": 0, "status": "measured"}) == "**0**"
    assert report.cell({"leaked": 3, "status": "measured"}) == "**3** ⚠"
    assert report.cell({"leaked": None, "status": "n/a"}) == "n/a"
    assert report.cell({"leaked": None, "status": "not run"}) == "not run"
    t = Tally(_victims())
    t.read("search", "s", "x")
    result = {
        "systems": {"x": {"label": "System X", "vectors": t.result()}},
        "skipped": {"y": "not installed"},
        "sizes": {"scopes": ["work", "home"], "memories_per_scope": 2},
    }
    table = report.summary_table(result)
    assert "| System X | **0** | not run |" in table
    assert "| y | —" in table
    assert "of 2)" in report.render_summary(result)


# -- the probes, on a system that leaks by design ---------------------------------------------
class OneBag(Adapter):
    """Every scope's memories in one dict, every call ignoring the scope, deletes that only
    mark a memory deleted (a history table): it must leak through every vector the probes
    measure."""

    label = "one bag"
    handle = "ignored"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.bag: dict[str, dict[str, str]] = {}
        self.path = workdir / "bag.json"

    def _save(self) -> None:
        self.path.write_text(json.dumps(self.bag))

    def _live(self, ident: str) -> dict[str, str]:
        item = self.bag[ident]
        if item.get("deleted"):
            raise KeyError(ident)
        return item

    def _delete(self, ident: str) -> None:
        self._live(ident)["deleted"] = "yes"
        self._save()

    def plant(self, plants: Mapping[str, Sequence[Plant]]) -> None:
        for scope, items in plants.items():
            for p in items:
                self.bag[p.chosen_id] = {"scope": scope, "text": p.text, "tag": p.tag}
                self.ids[p.key] = p.chosen_id
        self._save()

    def files(self) -> list[Path]:
        return [self.workdir]

    def close(self) -> None:
        self._save()

    def reopen(self) -> None:
        self.bag = json.loads(self.path.read_text())

    def erase(self, scope: str, plants: Sequence[Plant]) -> list[str]:
        for p in plants:
            if not self.bag[self.ids[p.key]].get("deleted"):
                self._delete(self.ids[p.key])
        return ["delete(id) for each memory"]

    def info(self) -> dict[str, Any]:
        return {}

    def search(self, scope: str, query: str) -> list[Call]:
        return [Call(f"search({query!r})", Outcome("ok", json.dumps(self.bag)))]

    def get(self, scope: str, ident: str) -> Call:
        return capture(f"get({ident!r})", lambda: self._live(ident))

    def update(self, scope: str, ident: str, text: str) -> Call:
        return capture(f"update({ident!r})", lambda: self._live(ident).update(text=text))

    def delete(self, scope: str, ident: str) -> Call:
        return capture(f"delete({ident!r})", lambda: self._delete(ident))

    def listing(self, scope: str) -> list[Call]:
        return [Call("list()", Outcome("ok", json.dumps(self.bag)))]

    def counts(self, scope: str) -> list[tuple[str, int]]:
        return [("count()", len(self.bag))]

    def absent_id(self) -> str:
        return "no-such-id"

    def forgotten(self) -> list[Call]:
        return [Call("list(scope=None)", Outcome("ok", json.dumps(self.bag)))]

    def victim_view(self, scope: str, plant: Plant) -> str | None:
        item = self.bag[self.ids[plant.key]]
        return None if item.get("deleted") else item["text"]


def test_probes_catch_a_system_that_ignores_scopes(tmp_path: Path) -> None:
    plants = make_plants(4)
    tally, check = run_probes(OneBag(tmp_path), plants, timing_reps=10, log=lambda _m: None)
    res = tally.result()
    victims = 8
    assert check == {"own_found_by_canary": True, "own_listed": 4}
    assert res["search"]["leaked"] == victims
    assert res["ids"]["leaked"] == victims  # read by get; half updated, half deleted
    assert res["listing"]["leaked"] == victims
    assert res["forgotten"]["leaked"] == victims
    assert res["oracles"]["leaked"] == victims // 2  # the updated half is still there
    assert res["at_rest"]["leaked"] == victims
    assert res["residue"]["leaked"] == victims  # deleted memories stay in the file
    assert res["servers"]["status"] == "n/a"
    call = res["ids"]["leaks"][0]["call"]
    assert call.startswith("get('idcnry")


def test_a_handle_blind_to_its_own_memories_fails_the_self_check(tmp_path: Path) -> None:
    class Blind(OneBag):
        def listing(self, scope: str) -> list[Call]:
            return [Call("list()", Outcome("ok", "[]"))]

    with pytest.raises(SelfCheckFailed):
        run_probes(Blind(tmp_path), make_plants(2), log=lambda _m: None)


# -- smoke runs ---------------------------------------------------------------------------------
def test_severance_shows_zero_in_every_cell(tmp_path: Path) -> None:
    """The real benchmark on Severance (SQLite, Python API, HTTP and MCP stdio), tiny."""
    out, docs = tmp_path / "results", tmp_path / "isolation.md"
    code = bench_main(
        [
            "run",
            "--only",
            "isolation",
            "--isolation-systems",
            "severance-sqlite",
            "--isolation-per-scope",
            "2",
            "--isolation-timing-reps",
            "20",
            "--out",
            str(out),
            "--docs",
            str(tmp_path / "benchmarks.md"),
            "--isolation-docs",
            str(docs),
        ]
    )
    assert code == 0
    result = json.loads((out / "isolation.json").read_text())
    row = result["systems"]["severance-sqlite"]
    assert {k: v["leaked"] for k, v in row["vectors"].items()} == dict.fromkeys(VECTOR_KEYS, 0)
    assert all(v["probes"] > 0 for v in row["vectors"].values())
    assert row["self_check"]["own_listed"] == 2
    text = docs.read_text()
    assert "| Severance (SQLite) | **0** | **0** |" in text
    assert "--isolation-systems severance-sqlite" in text  # the command is reproducible
    assert "[isolation.md](isolation.md)" in (tmp_path / "benchmarks.md").read_text()


def test_a_peer_leaks_where_its_design_does(tmp_path: Path) -> None:
    pytest.importorskip("chromadb")
    from bench.isolation.section import IsolationOptions, run_isolation

    opts = IsolationOptions(systems=("chroma-filter",), per_scope=2, timing_reps=10)
    result = run_isolation(opts, log=lambda _m: None)
    assert result["failed"] == {}
    cells = summarize(result["systems"]["chroma-filter"]["vectors"])
    victims = 4
    assert cells["search"] == 0  # where= is honoured by query
    assert cells["forgotten"] == victims  # query without where= returns everyone's
    assert cells["ids"] == victims // 2  # update() takes no where=: the updated half
    assert cells["at_rest"] == victims
    assert cells["servers"] is None
